// The native core under random input, outside Node: native/test/fuzz.cc drives random split
// rings and random vhost-user streams (with fds) through the core, built with ASan and UBSan.
// The harness aborts on any pointer handed out beyond guest memory, any fault that was not
// reported, or any watch left behind; the sanitizers catch the rest.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = new URL('../../', import.meta.url).pathname;
const haveCompiler = spawnSync('g++', ['--version']).status === 0;
const dir = mkdtempSync(join(tmpdir(), 'vhc-fuzz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.runIf(haveCompiler)('native core under random input', () => {
  it('never crashes, never points outside guest memory, and reports every fault', () => {
    const exe = join(dir, 'fuzz');
    const core = readdirSync(join(ROOT, 'native/core')).filter((f) => f.endsWith('.cc')).map((f) => join(ROOT, 'native/core', f));
    execFileSync('g++', ['-std=c++17', '-O1', '-g', '-fsanitize=address,undefined', '-fno-sanitize-recover=undefined',
      `-I${join(ROOT, 'native')}`, join(ROOT, 'native/test/fuzz.cc'), ...core, '-o', exe], { stdio: 'pipe' });
    for (const seed of [1, 2, 3]) {
      const r = spawnSync(exe, ['2000', String(seed)], { encoding: 'utf8', env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1' } });
      expect(r.stderr, `seed ${seed}`).toBe('');
      expect(r.status, `seed ${seed}`).toBe(0);
      const [, chains, faults, messages] = /chains (\d+) faults (\d+) messages (\d+)/.exec(r.stdout) ?? [];
      // The run exercised both outcomes: good chains taken and bad rings refused.
      expect(Number(chains)).toBeGreaterThan(1000);
      expect(Number(faults)).toBeGreaterThan(100);
      expect(Number(messages)).toBeGreaterThan(100);
    }
  }, 120_000);
});
