// systemd's side of the notify and socket-activation protocols, played by
// test/ops/fixtures/fake-systemd.py (binds NOTIFY_SOCKET, creates the listening sockets a
// .socket unit would, passes them as fds 3.. with LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES),
// against the real daemon (dist/cli.js) and the test front-end.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConsoleDriver } from '../frontend/index.js';
import { CLI, ROOT, tmpDir, until } from '../helpers/daemon.js';
import { QmpClient } from '../helpers/qmp.js';

const FAKE = join(ROOT, 'test/ops/fixtures/fake-systemd.py');
const hasPython = spawnSync('python3', ['--version']).status === 0;
if (!hasPython) console.warn('test/ops/systemd.test.ts: python3 (which plays systemd) is not installed: skipped');

interface Ev {
  event: string;
  data?: string;
  pid?: number;
  code?: number | null;
  signal?: number | null;
  listening?: Record<string, boolean>;
}

class Manager {
  readonly events: Ev[] = [];
  stderr = '';
  readonly child: ChildProcess;
  constructor(opts: string[], daemonArgs: string[]) {
    this.child = spawn('python3', [FAKE, ...opts, '--', process.execPath, CLI, ...daemonArgs], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let part = '';
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      part += d;
      const lines = part.split('\n');
      part = lines.pop()!;
      for (const l of lines) if (l.trim()) this.events.push(JSON.parse(l) as Ev);
    });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.stderr += d;
    });
  }
  notifications(): string[] {
    return this.events.filter((e) => e.event === 'notify').map((e) => e.data!);
  }
  async waitFor(pred: (e: Ev) => boolean, what: string, timeoutMs = 15_000): Promise<Ev> {
    await until(
      () => this.events.some(pred),
      `${what}; events: ${JSON.stringify(this.events)}; stderr: ${this.stderr.slice(-2000)}`,
      timeoutMs,
    );
    return this.events.find(pred)!;
  }
  daemonPid(): number {
    return this.events.find((e) => e.event === 'start')!.pid!;
  }
  async close(): Promise<void> {
    if (this.child.exitCode === null) {
      this.child.kill('SIGTERM');
      await new Promise((r) => this.child.once('exit', r));
    }
  }
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

function vmArgs(dir: string, id: string): string[] {
  return ['--socket', join(dir, `${id}.sock`)];
}

describe.skipIf(!hasPython)('systemd protocols against the real daemon (python3 plays systemd)', () => {
  it('Type=notify: READY=1 only once every vhost-user socket and the control socket listen; STATUS; STOPPING=1 on SIGTERM; watchdog pings', async () => {
    const { path: dir, remove } = tmpDir('vhc-sd-');
    cleanups.push(remove);
    const config = join(dir, 'vms.json');
    const sockets = ['a', 'b', 'c'].map((id) => join(dir, `${id}.sock`));
    const ctl = join(dir, 'ctl.sock');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(
      config,
      JSON.stringify({
        control: ctl,
        vm: ['a', 'b', 'c'].map((id) => ({
          id,
          socket: join(dir, `${id}.sock`),
          chardev: [`socket,id=s0,path=${join(dir, `${id}.con`)},server=on,wait=off`],
          device: ['virtconsole,chardev=s0'],
        })),
      }),
    );
    const m = new Manager(
      [
        '--notify',
        join(dir, 'notify'),
        '--watchdog-usec',
        '400000',
        ...[...sockets, ctl].flatMap((p) => ['--watch', p]),
      ],
      ['--config', config],
    );
    cleanups.push(() => m.close());
    const ready = await m.waitFor((e) => e.event === 'notify' && /^READY=1$/m.test(e.data!), 'READY=1');
    // At the moment systemd hears READY=1, QEMU (ordered After= us) can connect to every VM.
    expect(ready.listening).toEqual(Object.fromEntries([...sockets, ctl].map((p) => [p, true])));
    expect(ready.data).toMatch(/^STATUS=serving 3 VMs \(a, b, c\), 0 with a front-end connected$/m);
    expect(ready.pid).toBe(m.daemonPid());
    // Nothing claimed readiness earlier.
    expect(m.notifications().findIndex((d) => /READY=1/.test(d))).toBe(m.notifications().indexOf(ready.data!));
    // WatchdogSec=0.4s: pings every 200 ms.
    await m.waitFor((e) => e.event === 'notify' && e.data === 'WATCHDOG=1\n', 'WATCHDOG=1', 3000);
    process.kill(m.daemonPid(), 'SIGTERM');
    const exit = await m.waitFor((e) => e.event === 'exit', 'the daemon to exit');
    expect(exit.code).toBe(0);
    const n = m.notifications();
    const stopping = n.findIndex((d) => /^STOPPING=1$/m.test(d));
    expect(stopping).toBeGreaterThan(n.findIndex((d) => /READY=1/.test(d)));
    expect(n[stopping]).toMatch(/^STATUS=stopping$/m);
    // The daemon created these sockets itself, so it removed them.
    for (const p of sockets) expect(existsSync(p)).toBe(false);
  });

  it('socket activation: the vhost-user and control sockets come from systemd; a front-end that connected before the daemon ran is served; the sockets survive a restart', async () => {
    const { path: dir, remove } = tmpDir('vhc-sd-');
    cleanups.push(remove);
    const vmSock = join(dir, 'vm1.sock');
    const ctl = join(dir, 'ctl.sock');
    const m = new Manager(
      [
        '--notify',
        join(dir, 'notify'),
        '--listen',
        `${vmSock}=vm1`,
        '--listen',
        `${ctl}=control`,
        '--mode',
        '0660',
        '--watch',
        vmSock,
        '--watch',
        ctl,
        '--runs',
        '2',
      ],
      [
        ...vmArgs(dir, 'vm1'),
        '--max-ports',
        '4',
        '--chardev',
        `socket,id=s0,path=${join(dir, 'con.sock')},server=on,wait=off`,
        '--device',
        'virtconsole,chardev=s0',
        '--control',
        ctl,
        '--log-level',
        'debug',
      ],
    );
    cleanups.push(() => m.close());
    await m.waitFor((e) => e.event === 'sockets', 'the sockets');
    // QEMU starts now, before the daemon is up: with socket activation its connect succeeds
    // (systemd's socket queues it) and the handshake completes once the daemon serves the fd.
    const drv = await ConsoleDriver.start({ socketPath: vmSock, numQueues: 10 });
    cleanups.push(() => drv.close().catch(() => {}));
    const ready = await m.waitFor((e) => e.event === 'notify' && /READY=1/.test(e.data!), 'READY=1');
    expect(ready.listening).toEqual({ [vmSock]: true, [ctl]: true });
    // The socket keeps systemd's SocketMode=0660 (the daemon did not re-create it).
    expect(lstatSync(vmSock).mode & 0o777).toBe(0o660);
    // The control API is served on the passed control socket.
    const q = await QmpClient.connect(ctl);
    // STATUS= follows the front-end.
    await m.waitFor(
      (e) => e.event === 'notify' && /^STATUS=serving 1 VM \(vm0\), 1 with a front-end connected$/m.test(e.data!),
      'STATUS with the front-end',
    );
    const ports = (await q.execute('query-ports')) as { id: string; 'guest-open': boolean }[];
    expect(ports.map((p) => p.id)).toHaveLength(1);
    q.close();
    await drv.close();
    // Restart: the daemon exits, the sockets stay (systemd's), the next run serves them again.
    process.kill(m.daemonPid(), 'SIGTERM');
    await m.waitFor((e) => e.event === 'exit', 'the first run to exit');
    expect(lstatSync(vmSock).isSocket()).toBe(true);
    expect(lstatSync(ctl).isSocket()).toBe(true);
    await m.waitFor((e) => e.event === 'start' && e.pid !== m.daemonPid(), 'the second run');
    await until(() => m.notifications().filter((d) => /READY=1/.test(d)).length === 2, 'READY=1 of the second run');
    const drv2 = await ConsoleDriver.start({ socketPath: vmSock, numQueues: 10 });
    cleanups.push(() => drv2.close().catch(() => {}));
    await drv2.waitPorts(1); // served: the console port arrives
    await drv2.close();
    const second = m.events.filter((e) => e.event === 'start')[1]!.pid!;
    process.kill(second, 'SIGTERM');
    const done = await m.waitFor((e) => e.event === 'done', 'the manager to finish');
    expect(done.listening).toEqual({ [vmSock]: true, [ctl]: true });
    expect(m.events.filter((e) => e.event === 'exit').map((e) => e.code)).toEqual([0, 0]);
  });

  it('a passed socket no VM is configured at is closed with a warning naming it; the daemon runs on', async () => {
    const { path: dir, remove } = tmpDir('vhc-sd-');
    cleanups.push(remove);
    const stray = join(dir, 'stray.sock');
    const m = new Manager(
      ['--notify', join(dir, 'notify'), '--listen', `${stray}=stray`, '--watch', stray],
      [...vmArgs(dir, 'vm1')],
    );
    cleanups.push(() => m.close());
    const ready = await m.waitFor((e) => e.event === 'notify' && /READY=1/.test(e.data!), 'READY=1');
    expect(ready.listening![stray]).toBe(true); // systemd's own copy still listens
    await until(
      () => /no VM or control socket is configured at/.test(m.stderr) && m.stderr.includes(stray),
      'the warning',
    );
    expect(existsSync(join(dir, 'vm1.sock'))).toBe(true);
  });
});
