// Console logs that rotate like virtlogd (max-size=, backups=), through the real daemon: a
// guest (the test front-end) prints a steady stream on the console port and on a named port;
// the file backend's output and a logfile= rotate several times; the files, oldest first, hold
// exactly the stream (or its tail, once the oldest are dropped), across a daemon restart with
// append=on and across SIGHUP reopens.
import { existsSync, readFileSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ConsolePort } from '../frontend/index.js';
import { tmpDir, until } from '../helpers/daemon.js';
import { Vm } from '../helpers/vm.js';

let vm: Vm | undefined;
const dirs: { remove: () => void }[] = [];
afterEach(async () => {
  await vm?.dispose();
  vm = undefined;
  for (const d of dirs.splice(0)) d.remove();
});

const settled = (p: ConsolePort) => (p.id === 0 ? p.console : p.name !== undefined);

/** Distinct, line-shaped bytes: any loss, duplicate or reorder shows. */
function stream(from: number, n: number): Buffer {
  let s = '';
  for (let i = from; s.length < n; i++) s += `line ${i} ${'x'.repeat(i % 37)}\n`;
  return Buffer.from(s.slice(0, n));
}

/** PATH.N ... PATH.1, PATH: the rotated family, oldest first, with each file's size. */
function family(path: string, max = 99): { files: string[]; sizes: number[]; bytes: Buffer } {
  const files: string[] = [];
  for (let k = max; k >= 1; k--) if (existsSync(`${path}.${k}`)) files.push(`${path}.${k}`);
  if (existsSync(path)) files.push(path);
  const parts = files.map((f) => readFileSync(f));
  return { files, sizes: parts.map((p) => p.length), bytes: Buffer.concat(parts) };
}

async function startVm(logs: string, append: boolean): Promise<Vm> {
  return Vm.start({
    ports: [
      { driver: 'virtconsole', chardev: 'f0' },
      { driver: 'virtserialport', chardev: 'c1', name: 'org.example.port1' },
    ],
    chardevs: {
      f0: `file,path=${join(logs, 'console.log')},append=${append ? 'on' : 'off'},max-size=4K,backups=20`,
      c1: `ringbuf,size=65536,logfile=${join(logs, 'port1.log')},logappend=${append ? 'on' : 'off'},max-size=3000,backups=2`,
    },
  });
}

async function guest(v: Vm): Promise<{ con: ConsolePort; p1: ConsolePort }> {
  const d = await v.driver();
  await d.waitPorts(2, settled);
  const p1 = d.port(1);
  await p1.open();
  return { con: d.port(0), p1 };
}

/** The guest prints `data` in uneven writes (so rotations fall mid-write). */
async function print(p: ConsolePort, data: Buffer, step = 997): Promise<void> {
  for (let at = 0; at < data.length; at += step) await p.write(data.subarray(at, at + step), { ignoreHostOpen: true });
}

describe('rotation (max-size=, backups=)', () => {
  it('the file backend and a logfile= rotate exactly under a steady stream, across a restart with append=on', async () => {
    const logs = tmpDir('vhc-rot-');
    dirs.push(logs);
    const con = join(logs.path, 'console.log');
    const p1log = join(logs.path, 'port1.log');

    vm = await startVm(logs.path, true);
    let g = await guest(vm);
    const a = stream(0, 30_001);
    const b = stream(10_000, 9_500);
    await print(g.con, a);
    await print(g.p1, b);
    await until(() => family(con).bytes.length === a.length, 'the console log family to hold the stream');
    // backups=2 at 3000 bytes: rotations at 3000, 6000 and 9000; bytes 0..2999 were dropped.
    await until(() => family(p1log).bytes.length === 6500, 'port 1 log to hold the last 6500 bytes');

    // Console: 30001 bytes at 4 KiB per file = 7 full rotated files + 1329 in console.log.
    let f = family(con);
    expect(f.bytes.equals(a)).toBe(true);
    expect(f.files.map((x) => x.slice(con.length))).toEqual(['.7', '.6', '.5', '.4', '.3', '.2', '.1', '']);
    expect(f.sizes).toEqual([4096, 4096, 4096, 4096, 4096, 4096, 4096, 30_001 - 7 * 4096]);
    // Port 1's logfile=, backups=2: 9500 bytes in 3000-byte files = 3 rotations; the oldest
    // file was dropped; what is kept is exactly the tail, and no PATH.3 exists.
    const g1 = family(p1log);
    expect(g1.files.map((x) => x.slice(p1log.length))).toEqual(['.2', '.1', '']);
    expect(g1.sizes).toEqual([3000, 3000, 500]);
    expect(g1.bytes.equals(b.subarray(3000))).toBe(true);

    // Restart with append=on: the size of console.log counts, rotation goes on where it was.
    await vm.dispose();
    vm = await startVm(logs.path, true);
    g = await guest(vm);
    const c = stream(50_000, 12_345);
    await print(g.con, c);
    await until(() => family(con).bytes.length === a.length + c.length, 'the console log family after the restart');
    f = family(con);
    expect(f.bytes.equals(Buffer.concat([a, c]))).toBe(true);
    expect(f.sizes.slice(0, -1).every((s) => s === 4096)).toBe(true);
    expect(f.sizes.at(-1)).toBe((a.length + c.length) % 4096);
  });

  it('SIGHUP still reopens: after an outside rename the stream goes on in a new file, nothing lost or doubled', async () => {
    const logs = tmpDir('vhc-rot-');
    dirs.push(logs);
    const con = join(logs.path, 'console.log');
    vm = await startVm(logs.path, false);
    const g = await guest(vm);
    const a = stream(0, 5_000);
    await print(g.con, a);
    await until(() => family(con).bytes.length === a.length, 'the first part');
    // logrotate-style: move the current file away, then SIGHUP.
    renameSync(con, `${con}.moved`);
    process.kill(vm.daemon.pid, 'SIGHUP');
    await vm.daemon.waitForLog(/SIGHUP/);
    const b = stream(7_000, 6_000);
    await print(g.con, b);
    await until(
      () =>
        statSync(con, { throwIfNoEntry: false }) !== undefined &&
        family(con).bytes.length + readFileSync(`${con}.moved`).length === a.length + b.length,
      'the second part',
    );
    // The moved file holds what was written before the HUP (its newest part), the new family the rest.
    const moved = readFileSync(`${con}.moved`);
    const all = Buffer.concat([family(con).bytes.subarray(0, 4096), moved, family(con).bytes.subarray(4096)]);
    expect(moved.equals(a.subarray(4096))).toBe(true);
    expect(all.equals(Buffer.concat([a, b]))).toBe(true);
  });
});

describe('rotation options', () => {
  it('take sizes with suffixes, default to 3 backups, and refuse what cannot apply, naming the option', async () => {
    const { parseChardevOptions } = await import('../../src/chardev/registry.js');
    const f = parseChardevOptions('file', 'f', { path: '/tmp/x.log', 'max-size': '2M' });
    expect(f.common.rotate).toEqual({ maxSize: 2 * 1024 * 1024, backups: 3 });
    expect(
      parseChardevOptions('socket', 's', {
        path: '/tmp/s',
        server: 'on',
        logfile: '/tmp/l',
        'max-size': '64K',
        backups: '0',
      }).common.rotate,
    ).toEqual({ maxSize: 65536, backups: 0 });
    expect(parseChardevOptions('file', 'f', { path: '/tmp/x.log' }).common.rotate).toBeUndefined();
    expect(() => parseChardevOptions('socket', 's', { path: '/tmp/s', server: 'on', 'max-size': '1M' })).toThrow(
      /chardev 's': option 'max-size' applies to a file backend's output and to logfile=/,
    );
    expect(() => parseChardevOptions('file', 'f', { path: '/tmp/x.log', backups: '2' })).toThrow(
      /chardev 'f': option 'backups' needs max-size=/,
    );
    expect(() => parseChardevOptions('file', 'f', { path: '/tmp/x.log', 'max-size': '2X' })).toThrow(
      /option 'max-size' must be a size in bytes, not '2X'/,
    );
    expect(() => parseChardevOptions('file', 'f', { path: '/tmp/x.log', 'max-size': '1M', backups: '100' })).toThrow(
      /option 'backups' must be at most 99/,
    );
  });
});
