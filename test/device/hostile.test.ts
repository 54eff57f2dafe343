// Hostile guests and front-ends against the native core (issue 9), outside Node:
// native/test/hostile.cc sets up real VMs (socketpair, memfd RAM, eventfds) on one poll(2)
// loop, as the daemon serves them, misbehaves in one way per scenario and checks that only
// that connection suffers while a second VM on the same loop still moves data both ways.
// Built with ASan and UBSan; a scenario that hangs the loop fails on its own alarm.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = new URL('../../', import.meta.url).pathname;
const haveCompiler = spawnSync('g++', ['--version']).status === 0;
const dir = mkdtempSync(join(tmpdir(), 'vhc-hostile-'));
const exe = join(dir, 'hostile');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(scenario: string): string {
  const r = spawnSync(exe, [scenario, '30'], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1' },
  });
  const out = `${r.stdout}${r.stderr}`;
  expect(out, scenario).toMatch(new RegExp(`^ok ${scenario}\\b`, 'm'));
  expect(r.status, out).toBe(0);
  return r.stdout;
}

describe.runIf(haveCompiler)('hostile guests and front-ends (native core, one loop, two VMs)', () => {
  beforeAll(() => {
    const core = readdirSync(join(ROOT, 'native/core'))
      .filter((f) => f.endsWith('.cc'))
      .map((f) => join(ROOT, 'native/core', f));
    execFileSync(
      'g++',
      [
        '-std=c++17',
        '-O1',
        '-g',
        '-pthread',
        '-fsanitize=address,undefined',
        '-fno-sanitize-recover=undefined',
        `-I${join(ROOT, 'native')}`,
        join(ROOT, 'native/test/hostile.cc'),
        ...core,
        '-o',
        exe,
      ],
      { stdio: 'pipe' },
    );
  }, 300_000);

  it('receive chains without device-writable bytes fault their queue instead of pinning a host write', () => {
    run('pin');
    run('pin-zero');
  });
  it('a host write stops after its descriptor budget (queue size 32768, buffers re-posted as they come back)', () => {
    expect(run('budget')).toMatch(/visited 4096 descriptors/);
  });
  it('one kick on a 32768-entry queue of 32768-descriptor chains visits at most the budget plus one chain', () => {
    run('bigqueue');
  });
  it('a full pipe as call fd and a saturated blocking eventfd as err fd do not block; the kick fd keeps its flags', () => {
    run('signalfds');
  });
  it('a front-end that truncates its guest memory ends its own connection; other SIGBUS go to the earlier handler', () => {
    run('sigbus');
  });
  it('at most 8 fds per message, however the message is split', () => {
    run('fds');
  });
  it('malformed control messages log at a bounded rate with a count of what was suppressed', () => {
    run('logflood');
  });
  it('REM_MEM_REG matches guest address, user address and size', () => {
    run('memreg');
  });
  it('indirect descriptors only when INDIRECT_DESC was negotiated', () => {
    run('indirect');
    run('indirect-negotiated');
  });
  it('a region is mapped from its page-aligned mmap_offset, not from the start of the file', () => {
    run('mapoffset');
  });
});
