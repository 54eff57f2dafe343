// The native core under random input, outside Node: native/test/fuzz.cc drives random split
// rings and random vhost-user streams (with odd fds, split messages, truncated memory and host
// API calls in between) through the core, built with ASan and UBSan. The harness aborts on any
// pointer handed out beyond guest memory, any fault that was not reported, any watch left
// behind or fd leaked; the sanitizers catch the rest. The coverage-guided fuzzers are in
// native/fuzz (npm run fuzz); this is the quick randomised check that runs with every test.
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = new URL('../../', import.meta.url).pathname;
const haveCompiler = spawnSync('g++', ['--version']).status === 0;
const dir = mkdtempSync(join(tmpdir(), 'vhc-fuzz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.runIf(haveCompiler)('native core under random input', () => {
  it('never crashes, never points outside guest memory, and reports every fault', async () => {
    const exe = join(dir, 'fuzz');
    const sources = [
      join(ROOT, 'native/test/fuzz.cc'),
      ...readdirSync(join(ROOT, 'native/core'))
        .filter((f) => f.endsWith('.cc'))
        .map((f) => join(ROOT, 'native/core', f)),
    ];
    // -O0, one compiler per file in parallel: the build is most of this test's time.
    const flags = ['-std=c++17', '-O0', '-g1', '-fsanitize=address,undefined', '-fno-sanitize-recover=undefined'];
    const objects = await Promise.all(
      sources.map(
        (src, i) =>
          new Promise<string>((resolve, reject) => {
            const obj = join(dir, `${i}.o`);
            execFile('g++', [...flags, `-I${join(ROOT, 'native')}`, '-c', src, '-o', obj], (err, _out, stderr) =>
              err ? reject(new Error(`${src}: ${stderr}`)) : resolve(obj),
            );
          }),
      ),
    );
    execFileSync('g++', [...flags, ...objects, '-o', exe], { stdio: 'pipe' });
    for (const seed of [1, 2, 3]) {
      const r = spawnSync(exe, ['2000', String(seed)], {
        encoding: 'utf8',
        env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1' },
      });
      expect(r.stderr, `seed ${seed}`).toBe('');
      expect(r.status, `seed ${seed}`).toBe(0);
      const c = Object.fromEntries([...r.stdout.matchAll(/([a-z-]+) (\d+)/g)].map(([, k, v]) => [k, Number(v)]));
      // The run exercised both outcomes: good chains taken and bad rings refused.
      expect(c.chains).toBeGreaterThan(1000);
      expect(c.faults).toBeGreaterThan(100);
      expect(c.messages).toBeGreaterThan(c.connections);
      // The set-up (features, memory, plausible rings) stands: connections end on the random
      // messages that follow, not during their own set-up (a broken indirect table did that).
      expect(c['ended-in-setup']).toBeLessThan(c.connections / 20);
      // The host API ran between the front-end's messages, and some writes reached the guest.
      expect(c['host-calls']).toBeGreaterThan(100);
      expect(c['host-bytes']).toBeGreaterThan(0);
    }
  }, 120_000);
});
