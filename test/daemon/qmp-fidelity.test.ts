// QMP as QEMU speaks it, through the real daemon (issue 8): device_del's reply before its
// DEVICE_DELETED event, query-version, query-vms with `vm`, query-chardev's 'disconnected:'
// prefix and the port a port=0 server got, a failing client connect said once at info, and the
// audit trail of every state-changing command.
import fs from 'node:fs';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { LogLine } from '../helpers/daemon.js';
import { Rig, qmpError, until } from './util.js';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.dispose();
  rig = undefined;
});

const version = (
  JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

type Chardev = { label: string; filename: string; 'frontend-open': boolean; vm: string };

async function start(extra: string[] = [], wait: string[] = []): Promise<Rig> {
  rig = await Rig.start((dir) => ({
    args: [
      '--socket',
      `${dir}/vm.sock`,
      '--max-ports',
      '4',
      '--control',
      `${dir}/ctl.sock`,
      '--log-level',
      'info',
      '--chardev',
      `socket,id=p1,path=${dir}/p1.sock,server=on,wait=off`,
      '--device',
      'virtserialport,id=port1,chardev=p1,name=org.example.port1',
      '--chardev',
      'ringbuf,id=rb,size=4096',
      '--chardev',
      'null,id=spare',
      ...extra,
    ],
    wait: [`${dir}/vm.sock`, `${dir}/ctl.sock`, `${dir}/p1.sock`, ...wait.map((f) => `${dir}/${f}`)],
  }));
  return rig;
}

/** Polls query-chardev until `label`'s filename is `want`; returns the last one seen. */
async function filenameBecomes(r: Rig, label: string, want: string, timeoutMs = 5000): Promise<string | undefined> {
  const end = Date.now() + timeoutMs;
  let seen: string | undefined;
  while (Date.now() < end) {
    seen = await filename(r, label);
    if (seen === want) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return seen;
}

const filename = async (r: Rig, label: string) => {
  const q = await r.qmp();
  const c = ((await q.execute('query-chardev')) as Chardev[]).find((x) => x.label === label);
  q.close();
  return c?.filename;
};

describe('QMP fidelity', () => {
  it("device_del replies before its DEVICE_DELETED event, as QEMU's documentation shows", async () => {
    const r = await start();
    const c = await r.raw();
    c.send('{"execute": "qmp_capabilities"}\n');
    await c.reply(1);
    c.send('{"execute": "device_add", "arguments": {"driver": "virtserialport", "id": "hot"}, "id": "add"}\n');
    expect(await c.reply(2)).toEqual({ return: {}, id: 'add' });
    c.send('{"execute": "device_del", "arguments": {"id": "hot"}, "id": "del"}\n');
    await until(() => c.messages.some((m) => m.event === 'DEVICE_DELETED'), 'DEVICE_DELETED');
    const order = c.messages
      .slice(3)
      .map((m) => (m.event !== undefined ? `event ${m.event as string}` : `reply ${m.id as string}`));
    expect(order).toEqual(['reply del', 'event DEVICE_DELETED']);
    expect(c.messages.find((m) => m.event === 'DEVICE_DELETED')!.data).toEqual({
      device: 'hot',
      path: '/machine/peripheral/hot',
      vm: 'vm0',
    });
  });

  it("query-version has QEMU's shape and says it is vhost-console's version", async () => {
    const r = await start();
    const q = await r.qmp();
    const [major, minor, micro] = version.split('.').map(Number);
    expect(await q.execute('query-version')).toEqual({
      qemu: { major, minor, micro },
      package: `vhost-console ${version}`,
    });
    expect(((await q.execute('query-commands')) as { name: string }[]).map((x) => x.name)).toContain('query-version');
  });

  it('query-vms takes `vm` like every command', async () => {
    const r = await start();
    const q = await r.qmp();
    expect(await q.execute('query-vms', { vm: 'vm0' })).toEqual([
      { id: 'vm0', socket: r.path('vm.sock'), 'max-ports': 4, multiport: true, 'console-size': { cols: 80, rows: 24 } },
    ]);
    expect(await qmpError(q.execute('query-vms', { vm: 'vm1' }))).toEqual({
      class: 'GenericError',
      desc: "vm 'vm1' does not exist (VMs: vm0); did you mean 'vm0'?",
    });
  });

  it("query-chardev shows a socket's connection as QEMU does ('disconnected:' while nobody is connected)", async () => {
    const r = await start();
    expect(await filename(r, 'p1')).toBe(`disconnected:unix:${r.path('p1.sock')},server=on`);
    const h = await r.host('p1.sock');
    expect(await filenameBecomes(r, 'p1', `unix:${r.path('p1.sock')},server=on`)).toBe(
      `unix:${r.path('p1.sock')},server=on`,
    );
    h.close();
    expect(await filenameBecomes(r, 'p1', `disconnected:unix:${r.path('p1.sock')},server=on`)).toBe(
      `disconnected:unix:${r.path('p1.sock')},server=on`,
    );
  });

  it('a TCP server on port=0 reports the port it got: query-chardev and a log line at info', async () => {
    const r = await start(['--chardev', 'socket,id=t0,host=127.0.0.1,port=0,server=on,wait=off']);
    const line = await r.daemon.waitForLog(/port=0/, { minLevel: 30 });
    const m = /listening on tcp:127\.0\.0\.1:(\d+) \(port=0: the port the system chose\)/.exec(String(line.msg));
    expect(m, JSON.stringify(line)).not.toBeNull();
    const port = Number(m![1]);
    expect(port).toBeGreaterThan(0);
    expect(line.chardev).toBe('t0');
    expect(await filename(r, 't0')).toBe(`disconnected:tcp:127.0.0.1:${port},server=on`);
    const sock = net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    try {
      const want = `tcp:127.0.0.1:${port},server=on <-> 127.0.0.1:${sock.localPort}`;
      expect(await filenameBecomes(r, 't0', want)).toBe(want);
    } finally {
      sock.destroy();
    }
  });

  it('a client socket that cannot connect says so once at info, and again when it connects', async () => {
    const r2 = await Rig.start((dir) => ({
      args: [
        '--socket',
        `${dir}/vm.sock`,
        '--control',
        `${dir}/ctl.sock`,
        '--log-level',
        'info',
        '--chardev',
        `socket,id=cl,path=${dir}/later.sock,reconnect-ms=50`,
      ],
      wait: [`${dir}/vm.sock`, `${dir}/ctl.sock`],
    }));
    rig = r2;
    const target = r2.path('later.sock');
    const first = await r2.daemon.waitForLog(/cannot connect/, { minLevel: 30 });
    expect(first.msg).toBe(`cannot connect to unix:${target}: connect ENOENT ${target}; retrying every 50 ms`);
    expect(first.chardev).toBe('cl');
    expect(await filename(r2, 'cl')).toBe(`disconnected:unix:${target}`);
    await new Promise((resolve) => setTimeout(resolve, 500)); // ~10 more attempts
    const info = () => r2.daemon.logs().filter((l) => (l.level ?? 0) >= 30 && /cannot connect/.test(String(l.msg)));
    expect(info()).toHaveLength(1);
    const accepted: net.Socket[] = [];
    const server = net.createServer((sock) => accepted.push(sock));
    await new Promise<void>((resolve) => server.listen(target, resolve));
    try {
      await r2.daemon.waitForLog(/connected to unix:/, { minLevel: 30, timeoutMs: 5000 });
      expect(await filenameBecomes(r2, 'cl', `unix:${target}`)).toBe(`unix:${target}`);
      expect(info()).toHaveLength(1);
    } finally {
      for (const sock of accepted) sock.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('audit trail', () => {
  it('logs every state-changing command at info with its arguments and the client (number, peer pid and uid); queries stay quiet', async () => {
    const r = await start();
    const q = await r.qmp();
    const since = r.daemon.stderrLines.length;
    await q.execute('chardev-add', { id: 'extra', backend: { type: 'null', data: {} } });
    await q.execute('hub-attach', { port: 'port1', chardev: 'extra' });
    await q.execute('hub-detach', { port: 'port1', chardev: 'extra' });
    await q.execute('chardev-remove', { id: 'extra' });
    await q.execute('device_add', { driver: 'virtserialport', id: 'hot', chardev: 'spare' });
    await q.execute('device_del', { id: 'hot' });
    await q.execute('console-resize', { cols: 100, rows: 30 });
    await q.execute('ringbuf-write', { device: 'rb', data: 'secret password' });
    await qmpError(q.execute('chardev-remove', { id: 'p1' }));
    await qmpError(q.execute('ringbuf-write', { device: 'nope', data: 'another secret' }));
    await qmpError(q.execute('console-resize', { cols: 'wide', rows: 30 }));
    await q.execute('query-ports');
    await q.execute('query-chardev');
    await q.execute('ringbuf-read', { device: 'rb', size: 4 });
    await until(() => audit().length === 11, 'eleven audit lines');

    function audit(): LogLine[] {
      return r.daemon
        .logs()
        .slice(since)
        .filter((l) => l.component === 'control' && l.level === 30 && l.command !== undefined);
    }
    const lines = audit();
    const who = { client: expect.any(Number), 'peer-pid': process.pid, 'peer-uid': process.getuid!() };
    expect(lines.map((l) => [l.command, l.arguments, l.error])).toEqual([
      ['chardev-add', { id: 'extra', backend: { type: 'null', data: {} } }, undefined],
      ['hub-attach', { port: 'port1', chardev: 'extra' }, undefined],
      ['hub-detach', { port: 'port1', chardev: 'extra' }, undefined],
      ['chardev-remove', { id: 'extra' }, undefined],
      ['device_add', { driver: 'virtserialport', id: 'hot', chardev: 'spare' }, undefined],
      ['device_del', { id: 'hot' }, undefined],
      ['console-resize', { cols: 100, rows: 30 }, undefined],
      ['ringbuf-write', { device: 'rb', 'data-length': 15 }, undefined],
      ['chardev-remove', { id: 'p1' }, "chardev 'p1' is busy: used by hub 'hub-port1'"],
      ['ringbuf-write', { device: 'nope', 'data-length': 14 }, "chardev 'nope' does not exist"],
      [
        'console-resize',
        { cols: 'wide', rows: 30 },
        'Invalid parameter type for \'cols\', expected: integer (got "wide")',
      ],
    ]);
    for (const l of lines) expect(l).toMatchObject(who);
    const client = lines[0]!.client as number;
    expect(lines.every((l) => l.client === client)).toBe(true);
    expect(lines[0]!.msg).toBe(`chardev-add by client ${client} (pid ${process.pid}, uid ${process.getuid!()})`);
    expect(lines[8]!.msg).toBe(
      `chardev-remove by client ${client} (pid ${process.pid}, uid ${process.getuid!()}), refused: chardev 'p1' is busy: used by hub 'hub-port1'`,
    );
    // The written data is not in the log.
    expect(r.daemon.stderrLines.some((l) => l.includes('secret password') || l.includes('another secret'))).toBe(false);

    // A second client has another number; quit is audited before the daemon goes.
    const q2 = await r.qmp();
    await q2.execute('quit');
    const quit = await r.daemon.waitForLog(/"command":"quit"/, { minLevel: 30 });
    expect(quit).toMatchObject({ command: 'quit', arguments: {}, ...who });
    expect(quit.client).not.toBe(client);
  });
});
