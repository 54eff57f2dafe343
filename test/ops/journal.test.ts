// The journal member through the real daemon: a fake journald (a unix datagram socket bound by
// python3, parsing the native protocol) receives the guest's console output line by line, with
// fields naming the VM, the port and the chardev.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ConsolePort } from '../frontend/index.js';
import { ROOT, tmpDir, until } from '../helpers/daemon.js';
import { Vm } from '../helpers/vm.js';

const hasPython = spawnSync('python3', ['--version']).status === 0;
if (!hasPython) console.warn('test/ops/journal.test.ts: python3 (the fake journald) is not installed: skipped');
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});
const settled = (p: ConsolePort) => (p.id === 0 ? p.console : p.name !== undefined);

function fakeJournal(path: string): { entries: Record<string, string>[]; ready: Promise<void>; child: ChildProcess } {
  const entries: Record<string, string>[] = [];
  const child = spawn('python3', [join(ROOT, 'test/ops/fixtures/fake-journal.py'), path], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let part = '';
  let resolveReady!: () => void;
  const ready = new Promise<void>((r) => {
    resolveReady = r;
  });
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    part += d;
    const lines = part.split('\n');
    part = lines.pop()!;
    for (const l of lines) {
      const m = JSON.parse(l) as { ready?: boolean; fields?: Record<string, string> };
      if (m.ready) resolveReady();
      if (m.fields) entries.push(m.fields);
    }
  });
  cleanups.push(() => {
    child.kill();
  });
  return { entries, ready, child };
}

describe.skipIf(!hasPython)('journal member (native protocol, fake journald)', () => {
  it('sends the console line by line with VM, port and chardev fields; a partial line follows after a pause', async () => {
    const dir = tmpDir('vhc-journal-');
    cleanups.push(dir.remove);
    const sock = join(dir.path, 'journal.sock');
    const j = fakeJournal(sock);
    await j.ready;
    const vm = await Vm.start({
      ports: [
        { driver: 'virtconsole', chardev: 'hub0' },
        { driver: 'virtserialport', chardev: 'j1', name: 'org.example.log' },
      ],
      chardevs: {
        s0: 'socket,path=@DIR@/s0.sock,server=on,wait=off',
        j0: `journal,path=${sock},identifier=web1-console`,
        hub0: 'hub,chardevs.0=s0,chardevs.1=j0',
        j1: `journal,path=${sock},priority=4`,
      },
    });
    cleanups.push(() => vm.dispose());
    const d = await vm.driver();
    await d.waitPorts(2, settled);
    const con = d.port(0);
    await con.write(Buffer.from('Booting Linux\r\nlogin: root\nWelcome\n'), { ignoreHostOpen: true });
    await con.write(Buffer.from('prompt# '), { ignoreHostOpen: true }); // no newline: sent after a pause
    const p1 = d.port(1);
    await p1.open();
    await p1.write(Buffer.from(`a line from port 1\n${'x'.repeat(9000)}\n`));
    await until(() => j.entries.length >= 7, `7 journal entries, got ${j.entries.length}`, 10_000);
    const con0 = j.entries.filter((e) => e.VHOST_CONSOLE_CHARDEV === 'j0');
    expect(con0.map((e) => e.MESSAGE)).toEqual(['Booting Linux', 'login: root', 'Welcome', 'prompt# ']);
    for (const e of con0) {
      expect(e).toMatchObject({
        PRIORITY: '6',
        SYSLOG_IDENTIFIER: 'web1-console',
        VHOST_CONSOLE_VM: 'vm0',
        VHOST_CONSOLE_PORT: 'port0',
      });
      expect(e.VHOST_CONSOLE_PORT_NAME).toBeUndefined();
    }
    const port1 = j.entries.filter((e) => e.VHOST_CONSOLE_CHARDEV === 'j1');
    expect(port1.map((e) => e.MESSAGE!.length)).toEqual([18, 8192, 808]); // an overlong line is cut at 8 KiB
    expect(port1[0]).toMatchObject({
      MESSAGE: 'a line from port 1',
      PRIORITY: '4',
      SYSLOG_IDENTIFIER: 'vhost-console',
      VHOST_CONSOLE_PORT: 'org.example.log',
      VHOST_CONSOLE_PORT_NAME: 'org.example.log',
    });
  });

  it('a missing journal drops entries with one warning; the port and the other members go on', async () => {
    const dir = tmpDir('vhc-journal-');
    cleanups.push(dir.remove);
    const vm = await Vm.start({
      ports: [{ driver: 'virtconsole', chardev: 'hub0' }],
      chardevs: {
        s0: 'socket,path=@DIR@/s0.sock,server=on,wait=off',
        j0: `journal,path=${join(dir.path, 'nobody.sock')}`,
        hub0: 'hub,chardevs.0=s0,chardevs.1=j0',
      },
    });
    cleanups.push(() => vm.dispose());
    const h = await vm.host('s0');
    const d = await vm.driver();
    await d.waitPorts(1, settled);
    await d.port(0).write(Buffer.from('one\ntwo\n'), { ignoreHostOpen: true });
    expect((await h.read(8)).toString()).toBe('one\ntwo\n');
    await vm.daemon.waitForLog(/journal entry dropped/, { minLevel: 40 });
    expect(vm.daemon.stderrLines.filter((l) => /journal entry dropped/.test(l))).toHaveLength(1);
  });
});
