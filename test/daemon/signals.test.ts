// Signals to the real daemon process: SIGTERM/SIGINT shut it down cleanly (exit 0, every socket
// and pty link it made removed); SIGHUP reopens log files so logrotate can move them away.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import * as libc from '../../src/sys/libc.js';
import { CLI, tmpDir } from '../helpers/daemon.js';
import { Rig, present, settled, spawnCli, until } from './util.js';

const NUM_QUEUES = 2 * (2 + 1);
let rig: Rig | undefined;
afterEach(async () => {
  await rig?.dispose();
  rig = undefined;
});

/** Console on hub0 = {pty (linked), con (socket, with a logfile), out (file)}, the hub logging too; a qga-like port. */
async function start(): Promise<Rig> {
  rig = await Rig.start((dir) => ({
    args: [
      '--socket',
      `${dir}/vm.sock`,
      '--max-ports',
      '2',
      '--control',
      `${dir}/ctl.sock`,
      '--chardev',
      `pty,id=pty0,path=${dir}/con.pty`,
      '--chardev',
      `socket,id=con,path=${dir}/con.sock,server=on,wait=off,logfile=${dir}/con.log`,
      '--chardev',
      `file,id=out,path=${dir}/out.log`,
      '--chardev',
      `hub,id=hub0,chardevs.0=pty0,chardevs.1=con,chardevs.2=out,logfile=${dir}/hub.log`,
      '--device',
      'virtconsole,id=console,chardev=hub0',
      '--chardev',
      `socket,id=qga,path=${dir}/qga.sock,server=on,wait=off`,
      '--device',
      'virtserialport,chardev=qga,name=org.qemu.guest_agent.0',
    ],
    wait: [`${dir}/vm.sock`, `${dir}/ctl.sock`, `${dir}/con.sock`, `${dir}/qga.sock`, `${dir}/con.pty`],
  }));
  return rig;
}

describe('shutdown', () => {
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    it(`${sig}: exit 0, vhost-user, control and chardev sockets and the pty link removed`, async () => {
      const r = await start();
      // With a front-end, a host client and a control client connected: shutdown must not wait for them.
      const d = await r.driver({ numQueues: NUM_QUEUES });
      await d.waitPorts(2, settled);
      await r.host('con.sock');
      await r.qmp();
      const files = ['vm.sock', 'ctl.sock', 'con.sock', 'qga.sock', 'con.pty'].map((f) => r.path(f));
      expect(present(files)).toEqual(files);
      process.kill(r.daemon.pid, sig);
      await until(() => !r.daemon.alive, `the daemon to exit on ${sig}`);
      expect(r.daemon.exit).toEqual({ code: 0, signal: null });
      expect(present(files)).toEqual([]);
      // Logs are kept.
      expect(present(['con.log', 'out.log', 'hub.log'].map((f) => r.path(f)))).toHaveLength(3);
    });
  }
});

describe('terminal', () => {
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    it(`${sig} restores the terminal a stdio chardev made raw`, async () => {
      const { path: dir, remove } = tmpDir('vhc-daemon-');
      const term = libc.openpty();
      const child = spawn(
        process.execPath,
        [CLI, '--socket', `${dir}/vm.sock`, '--chardev', 'stdio,id=io', '--device', 'virtconsole,chardev=io'],
        {
          cwd: dir,
          stdio: [term.slave, term.slave, 'pipe'],
        },
      );
      let stderr = '';
      child.stderr!.setEncoding('utf8').on('data', (d: string) => {
        stderr += d;
      });
      const exited = new Promise<{ code: number | null; signal: string | null }>((r) =>
        child.once('exit', (code, signal) => r({ code, signal })),
      );
      try {
        expect(libc.isCanonical(libc.tcgetattr(term.master))).toBe(true);
        await until(() => fs.existsSync(`${dir}/vm.sock`) || child.exitCode !== null, 'the daemon to listen');
        expect(child.exitCode, stderr).toBe(null);
        expect(libc.isCanonical(libc.tcgetattr(term.master))).toBe(false); // raw while it runs
        child.kill(sig);
        expect(await exited).toEqual({ code: 0, signal: null });
        expect(libc.isCanonical(libc.tcgetattr(term.master))).toBe(true);
        expect(fs.existsSync(`${dir}/vm.sock`)).toBe(false);
      } finally {
        if (child.exitCode === null) child.kill('SIGKILL');
        libc.close(term.master);
        libc.close(term.slave);
        remove();
      }
    });
  }
});

describe('shutdown while starting', () => {
  it('SIGTERM while a wait=on chardev holds start-up: exit 0, what was opened is removed', async () => {
    const { path: dir, remove } = tmpDir('vhc-daemon-');
    const p = spawnCli(
      [
        '--socket',
        `${dir}/vm.sock`,
        '--control',
        `${dir}/ctl.sock`,
        '--chardev',
        `pty,id=pty0,path=${dir}/con.pty`,
        '--chardev',
        `socket,id=con,path=${dir}/con.sock,server=on,wait=on`,
        '--chardev',
        'hub,id=hub0,chardevs.0=pty0,chardevs.1=con',
        '--device',
        'virtconsole,chardev=hub0',
      ],
      dir,
    );
    try {
      await until(
        () => present([`${dir}/con.sock`, `${dir}/con.pty`]).length === 2 || p.child.exitCode !== null,
        'the daemon to wait for its first client',
      );
      expect(p.child.exitCode, p.stderr).toBe(null);
      expect(present([`${dir}/vm.sock`, `${dir}/ctl.sock`])).toEqual([]); // still waiting: nothing after the chardev
      p.child.kill('SIGTERM');
      expect(await p.exited).toEqual({ code: 0, signal: null });
      expect(fs.readdirSync(dir)).toEqual([]);
    } finally {
      await p.kill();
      remove();
    }
  });
});

describe('SIGHUP', () => {
  it('reopens logfile=, file backends and the hub log at their paths; nothing is lost across the rotation', async () => {
    const r = await start();
    const h = await r.host('con.sock');
    const d = await r.driver({ numQueues: NUM_QUEUES });
    await d.waitPorts(2, settled);
    const c = d.port(0);
    const logs = ['con.log', 'out.log', 'hub.log'].map((f) => r.path(f));
    const size = (f: string) => (fs.existsSync(f) ? fs.statSync(f).size : -1);

    const first = Buffer.from(`before rotation ${randomBytes(2000).toString('hex')}\n`);
    await c.write(first);
    expect((await h.read(first.length)).equals(first)).toBe(true);
    await until(() => logs.every((f) => size(f) === first.length), 'the first part in every log');

    // logrotate: move the files away, then SIGHUP.
    for (const f of logs) fs.renameSync(f, `${f}.1`);
    const mark = r.daemon.stderrLines.length;
    process.kill(r.daemon.pid, 'SIGHUP');
    await r.daemon.waitForLog(/SIGHUP/, { since: mark });
    expect(r.daemon.alive).toBe(true);

    const second = Buffer.from(`after rotation ${randomBytes(3000).toString('hex')}\n`);
    await c.write(second);
    expect((await h.read(second.length)).equals(second)).toBe(true);
    await until(
      () => logs.every((f) => size(f) === second.length),
      'the second part in new files at the original paths',
    );
    for (const f of logs) {
      expect(fs.readFileSync(`${f}.1`).equals(first), `${f}.1`).toBe(true);
      expect(fs.readFileSync(f).equals(second), f).toBe(true);
    }
    // A second rotation works too (the reopened files are the ones rotated now).
    for (const f of logs) fs.renameSync(f, `${f}.2`);
    const mark2 = r.daemon.stderrLines.length;
    process.kill(r.daemon.pid, 'SIGHUP');
    await r.daemon.waitForLog(/SIGHUP/, { since: mark2 });
    const third = Buffer.from('third\n');
    await c.write(third);
    await until(() => logs.every((f) => size(f) === third.length), 'the third part after a second rotation');
    for (const f of logs) expect(fs.readFileSync(`${f}.2`).equals(second)).toBe(true);
    expect(d.problems()).toEqual([]);
  });
});
