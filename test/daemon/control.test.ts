// The control API end to end: the real daemon (node dist/cli.js), its real control socket,
// and the test front-end playing QEMU + the Linux driver where a guest is needed.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { Ctrl, type ConsoleDriver } from '../frontend/index.js';
import type { QmpClient } from '../helpers/qmp.js';
import { Rig, present, qmpError, settled, until } from './util.js';

const MAX_PORTS = 4;
const NUM_QUEUES = 2 * (MAX_PORTS + 1);

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.dispose();
  rig = undefined;
});

/**
 * The VM under test: a console on hub0 = {con (unix socket), rb (ringbuf)}, a named port on a
 * plain socket chardev p1, and an unused null chardev.
 */
async function start(extra: string[] = []): Promise<Rig> {
  rig = await Rig.start((dir) => ({
    args: [
      '--socket',
      `${dir}/vm.sock`,
      '--max-ports',
      String(MAX_PORTS),
      '--console-size',
      '80x25',
      '--control',
      `${dir}/ctl.sock`,
      '--chardev',
      `socket,id=con,path=${dir}/con.sock,server=on,wait=off`,
      '--chardev',
      'ringbuf,id=rb,size=4096',
      '--chardev',
      'hub,id=hub0,chardevs.0=con,chardevs.1=rb',
      '--device',
      'virtconsole,id=console,chardev=hub0',
      '--chardev',
      `socket,id=p1,path=${dir}/p1.sock,server=on,wait=off`,
      '--device',
      'virtserialport,id=port1,chardev=p1,name=org.example.port1',
      '--chardev',
      'null,id=spare',
      '--log-level',
      'debug',
      ...extra,
    ],
    wait: [`${dir}/vm.sock`, `${dir}/ctl.sock`, `${dir}/con.sock`, `${dir}/p1.sock`],
  }));
  return rig;
}

async function guest(r: Rig): Promise<ConsoleDriver> {
  const d = await r.driver({ numQueues: NUM_QUEUES });
  await d.waitPorts(2, settled);
  return d;
}

/** A daemon with a control client, the guest up, port 1 opened by the guest and its chardev's client connected. */
async function port1Open() {
  const r = await start();
  const q = await r.qmp();
  const h1 = await r.host('p1.sock');
  const d = await guest(r);
  const p = d.port(1);
  await p.open();
  await d.waitFor(() => p.hostOpen, 'port 1 host-open');
  return { r, q, h1, d, p };
}

type Port = {
  id: string;
  name?: string;
  nr: number;
  console: boolean;
  'guest-open': boolean;
  'host-open': boolean;
  chardev?: string;
  'bytes-out': number;
  'bytes-in': number;
  members: { chardev: string; open: boolean; 'bytes-out': number; 'bytes-in': number; drops: number }[];
  vm: string;
};
type Chardev = { label: string; filename: string; 'frontend-open': boolean; vm: string };

const ports = async (q: QmpClient) => (await q.execute('query-ports')) as Port[];
const port = async (q: QmpClient, id: string) => (await ports(q)).find((p) => p.id === id);
const chardevs = async (q: QmpClient) => (await q.execute('query-chardev')) as Chardev[];

describe('protocol', () => {
  it('greets, insists on qmp_capabilities, and keeps the connection usable after bad JSON and unknown commands', async () => {
    const r = await start();
    const c = await r.raw();
    const greeting = await c.reply(0);
    expect(greeting).toMatchObject({ QMP: { version: { qemu: { major: expect.any(Number) } }, capabilities: [] } });

    c.send('{"execute": "query-ports", "id": 1}\n');
    expect(await c.reply(1)).toEqual({
      error: { class: 'CommandNotFound', desc: expect.stringMatching(/qmp_capabilities/) },
      id: 1,
    });
    c.send('{"execute": "qmp_capabilities"}\n');
    expect(await c.reply(2)).toEqual({ return: {} });

    c.send('{"execute": "query-ports",, }\n');
    expect(await c.reply(3)).toMatchObject({
      error: { class: 'GenericError', desc: expect.stringMatching(/JSON parse error/) },
    });
    c.send('{"execute": "query-prots", "id": "x"}\n');
    expect(await c.reply(4)).toEqual({
      error: { class: 'CommandNotFound', desc: expect.stringMatching(/query-prots/) },
      id: 'x',
    });
    c.send('[1, 2]\n');
    expect(await c.reply(5)).toMatchObject({ error: { class: 'GenericError', desc: expect.stringMatching(/object/) } });
    c.send('{"execute": "ringbuf-read", "arguments": {"device": "rb", "size": 1, "fromat": "utf8"}}\n');
    expect(await c.reply(6)).toMatchObject({ error: { desc: expect.stringMatching(/'fromat'.*'format'/) } });
    // Still usable: a real command answers.
    c.send('{"execute": "query-ports", "id": 7}');
    const ok = await c.reply(7);
    expect(ok.id).toBe(7);
    expect((ok.return as Port[]).map((p) => p.id)).toEqual(['console', 'port1']);
    expect(r.daemon.alive).toBe(true);
  });
});

describe('queries', () => {
  it("query-chardev answers in QEMU's shape", async () => {
    const r = await start();
    const q = await r.qmp();
    const list = await chardevs(q);
    for (const c of list) expect(Object.keys(c).sort()).toEqual(['filename', 'frontend-open', 'label', 'vm']);
    const by = Object.fromEntries(list.map((c) => [c.label, c]));
    expect(Object.keys(by).sort()).toEqual(['con', 'hub0', 'p1', 'rb', 'spare']);
    // No client on con.sock yet: QEMU's 'disconnected:' prefix.
    expect(by.con).toEqual({
      label: 'con',
      filename: `disconnected:unix:${r.path('con.sock')},server=on`,
      'frontend-open': true,
      vm: 'vm0',
    });
    expect(by.p1!['frontend-open']).toBe(true);
    expect(by.rb!['frontend-open']).toBe(true);
    expect(by.hub0!.filename).toBe('hub');
    expect(by.spare).toEqual({ label: 'spare', filename: 'null', 'frontend-open': false, vm: 'vm0' });
    expect(await qmpError(q.execute('query-chardev', { vm: 'nope' }))).toMatchObject({
      class: 'GenericError',
      desc: expect.stringMatching(/vm 'nope'/),
    });
  });

  it('query-ports: name, nr, console, guest/host open, bytes each way, members with drops', async () => {
    const r = await start();
    const q = await r.qmp();
    const h = await r.host('p1.sock');
    const d = await guest(r);
    const p = d.port(1);
    await p.open();
    await d.waitFor(() => p.hostOpen, 'port 1 host-open');
    const out = randomBytes(3000);
    const inb = randomBytes(1234);
    await p.write(out);
    expect((await h.read(out.length)).equals(out)).toBe(true);
    await h.write(inb);
    expect((await p.read(inb.length)).equals(inb)).toBe(true);

    const info = await port(q, 'port1');
    expect(info).toEqual({
      id: 'port1',
      name: 'org.example.port1',
      nr: 1,
      console: false,
      'guest-open': true,
      'host-open': true,
      chardev: 'p1',
      'bytes-out': 3000,
      'bytes-in': 1234,
      'input-held': 0,
      'input-waiting': 0,
      members: [{ chardev: 'p1', open: true, 'bytes-out': 3000, 'bytes-in': 1234, drops: 0 }],
      vm: 'vm0',
    });
    const con = await port(q, 'console');
    expect(con).toMatchObject({ nr: 0, console: true, 'guest-open': true, 'host-open': true, chardev: 'hub0' });
    expect(con!.members.map((m) => m.chardev)).toEqual(['con', 'rb']);
    expect(d.problems()).toEqual([]);
  });
});

describe('chardev-add / chardev-remove', () => {
  it('adds socket, file, ringbuf, pty and null backends given in QMP shape; pty returns its path', async () => {
    const r = await start();
    const q = await r.qmp();
    const add = (id: string, type: string, data: Record<string, unknown>) =>
      q.execute('chardev-add', { id, backend: { type, data } });
    expect(
      await add('web', 'socket', {
        addr: { type: 'unix', data: { path: r.path('web.sock') } },
        server: true,
        wait: false,
      }),
    ).toEqual({});
    expect(fs.lstatSync(r.path('web.sock')).isSocket()).toBe(true);
    // QMP's defaults (server: true, wait: false) differ from -chardev's: a listening socket, at once.
    expect(await add('web2', 'socket', { addr: { type: 'unix', data: { path: r.path('web2.sock') } } })).toEqual({});
    expect(fs.lstatSync(r.path('web2.sock')).isSocket()).toBe(true);
    expect(await add('log', 'file', { out: r.path('extra.log') })).toEqual({});
    expect(fs.existsSync(r.path('extra.log'))).toBe(true);
    expect(await add('rb2', 'ringbuf', { size: 1024 })).toEqual({});
    expect(await add('nul', 'null', {})).toEqual({});
    const pty = (await add('pty1', 'pty', {})) as { pty: string };
    expect(pty.pty).toMatch(/^\/dev\/pts\/\d+$/);
    expect(fs.existsSync(pty.pty)).toBe(true);

    const by = Object.fromEntries((await chardevs(q)).map((c) => [c.label, c]));
    expect(by.web).toMatchObject({
      filename: `disconnected:unix:${r.path('web.sock')},server=on`,
      'frontend-open': false,
    });
    expect(by.log).toMatchObject({ filename: `file:${r.path('extra.log')}`, 'frontend-open': false });
    expect(by.pty1).toMatchObject({ filename: `pty:${pty.pty}` });
    expect(by.web2).toMatchObject({ filename: `disconnected:unix:${r.path('web2.sock')},server=on` });
    expect(by.rb2).toMatchObject({ filename: 'ringbuf' });
    expect(by.nul).toMatchObject({ filename: 'null' });

    // Error paths: duplicate id, unknown backend (with a suggestion), missing and wrong arguments.
    expect(await qmpError(add('spare', 'null', {}))).toEqual({
      class: 'GenericError',
      desc: "chardev 'spare' already exists",
    });
    expect((await qmpError(add('x', 'pyt', {}))).desc).toMatch(/unknown backend 'pyt'.*'pty'/);
    expect((await qmpError(q.execute('chardev-add', { id: 'x' }))).desc).toBe("Parameter 'backend' is missing");
    expect((await qmpError(add('x', 'ringbuf', { size: 1000 }))).desc).toMatch(/1000/);
    // A path another listener of the daemon owns is refused, not taken over.
    expect(
      (
        await qmpError(
          add('x', 'socket', { addr: { type: 'unix', data: { path: r.path('con.sock') } }, server: true, wait: false }),
        )
      ).desc,
    ).toBe(`chardev 'x': path '${r.path('con.sock')}' is already used by chardev 'con'`);
    expect(
      (await qmpError(add('x', 'socket', { addr: { type: 'unix', data: { path: r.path('ctl.sock') } } }))).desc,
    ).toMatch(/already used by the control socket/);
    expect((await qmpError(add('x', 'pty', { path: r.path('vm.sock') }))).desc).toMatch(
      /already used by the vhost-user socket/,
    );
    expect(fs.lstatSync(r.path('con.sock')).isSocket()).toBe(true);
    expect((await chardevs(q)).some((c) => c.label === 'x')).toBe(false);
  });

  it('chardev-remove is refused while the chardev is in use, and works once it is detached', async () => {
    const r = await start();
    const q = await r.qmp();
    expect(await qmpError(q.execute('chardev-remove', { id: 'con' }))).toEqual({
      class: 'GenericError',
      desc: "chardev 'con' is busy: used by hub 'hub0'",
    });
    expect(await qmpError(q.execute('chardev-remove', { id: 'p1' }))).toEqual({
      class: 'GenericError',
      desc: "chardev 'p1' is busy: used by port 'port1'",
    });
    expect((await qmpError(q.execute('chardev-remove', { id: 'nope' }))).desc).toMatch(/chardev 'nope' does not exist/);
    // Refusals changed nothing: the socket still serves.
    expect(fs.lstatSync(r.path('con.sock')).isSocket()).toBe(true);

    expect(await q.execute('hub-detach', { hub: 'hub0', chardev: 'con' })).toEqual({});
    expect(await q.execute('chardev-remove', { id: 'con' })).toEqual({});
    expect((await chardevs(q)).map((c) => c.label)).not.toContain('con');
    await until(() => present([r.path('con.sock')]).length === 0, 'the removed socket chardev to unlink its socket');
    expect(await q.execute('chardev-remove', { id: 'spare' })).toEqual({});
    expect((await port(q, 'console'))!.members.map((m) => m.chardev)).toEqual(['rb']);
  });
});

describe('hub-attach / hub-detach', () => {
  it("a new socket member receives the guest's subsequent output; once detached it gets nothing more", async () => {
    const r = await start();
    const q = await r.qmp();
    const con = await r.host('con.sock');
    const d = await guest(r);
    const c = d.port(0);
    await c.write(Buffer.from('before\n'));
    expect((await con.read(7)).toString()).toBe('before\n');

    await q.execute('chardev-add', {
      id: 'web',
      backend: {
        type: 'socket',
        data: { addr: { type: 'unix', data: { path: r.path('web.sock') } }, server: true, wait: false },
      },
    });
    const web = await r.host('web.sock');
    // Attached once its client is in (a client that connects to a console member later gets
    // the recent output replayed: docs/chardevs.md, History on attach).
    for (let i = 0; ; i++) {
      const all = (await q.execute('query-chardev')) as { label: string; filename: string }[];
      if (!all.find((c) => c.label === 'web')!.filename.startsWith('disconnected:')) break;
      if (i > 500) throw new Error('the web chardev never got its client');
      await new Promise((res) => setTimeout(res, 10));
    }
    expect(await q.execute('hub-attach', { port: 'console', chardev: 'web' })).toEqual({});
    const during = randomBytes(20_000);
    await c.write(during);
    expect((await web.read(during.length)).equals(during)).toBe(true); // no replay of 'before'
    expect((await con.read(during.length)).equals(during)).toBe(true);
    expect((await port(q, 'console'))!.members.find((m) => m.chardev === 'web')).toMatchObject({
      open: true,
      'bytes-out': during.length,
      drops: 0,
    });

    // Typed on the new member, it reaches the guest.
    await web.write(Buffer.from('hi from web'));
    expect((await c.read(11)).toString()).toBe('hi from web');

    expect(await q.execute('hub-detach', { port: 'console', chardev: 'web' })).toEqual({});
    await c.write(Buffer.from('after\n'));
    expect((await con.read(6)).toString()).toBe('after\n');
    await q.execute('query-ports'); // one more round trip through the daemon
    expect(web.received).toBe(0);
    expect((await port(q, 'console'))!.members.map((m) => m.chardev)).toEqual(['con', 'rb']);
    expect(d.problems()).toEqual([]);
  });

  it("attaching to a port with a plain chardev makes its hub, and both members carry the port's data", async () => {
    const { r, q, h1, d, p } = await port1Open();
    await q.execute('chardev-add', {
      id: 'tap',
      backend: {
        type: 'socket',
        data: { addr: { type: 'unix', data: { path: r.path('tap.sock') } }, server: true, wait: false },
      },
    });
    const tap = await r.host('tap.sock');
    expect(await q.execute('hub-attach', { port: 'port1', chardev: 'tap' })).toEqual({});
    const info = (await port(q, 'port1'))!;
    expect(info.chardev).toBe('hub-port1');
    expect(info.members.map((m) => m.chardev)).toEqual(['p1', 'tap']);
    expect((await chardevs(q)).find((c) => c.label === 'hub-port1')).toMatchObject({
      filename: 'hub',
      'frontend-open': true,
    });
    const out = randomBytes(50_000);
    await p.write(out);
    expect((await h1.read(out.length)).equals(out)).toBe(true);
    expect((await tap.read(out.length)).equals(out)).toBe(true);

    // Unplugged, the port's hub stays with its members; the hub goes first, then its members.
    await q.execute('device_del', { id: 'port1' });
    await d.waitFor(() => !d.ports.has(1), 'PORT_REMOVE of port 1');
    expect(await qmpError(q.execute('chardev-remove', { id: 'p1' }))).toEqual({
      class: 'GenericError',
      desc: "chardev 'p1' is busy: used by hub 'hub-port1'",
    });
    expect(await q.execute('chardev-remove', { id: 'hub-port1' })).toEqual({});
    expect(await q.execute('chardev-remove', { id: 'p1' })).toEqual({});
    expect(await q.execute('chardev-remove', { id: 'tap' })).toEqual({});
    expect((await chardevs(q)).map((c) => c.label).sort()).toEqual(['con', 'hub0', 'rb', 'spare']);
    await until(
      () => present([r.path('p1.sock'), r.path('tap.sock')]).length === 0,
      'the removed sockets to be unlinked',
    );
    expect(d.problems()).toEqual([]);
  });

  it("detaching a port's plain chardev closes the host side; the chardev is free for another port", async () => {
    const { q, h1, d, p } = await port1Open();
    expect(await q.execute('hub-detach', { port: 'port1', chardev: 'p1' })).toEqual({});
    await d.waitFor(() => !p.hostOpen, 'port 1 host-closed (PORT_OPEN 0)');
    const info = (await port(q, 'port1'))!;
    expect(info.chardev).toBeUndefined();
    expect(info.members).toEqual([]);
    await h1.write(Buffer.from('nobody listens'));
    await q.execute('query-ports'); // one more round trip through the daemon
    expect(p.receivedBytes).toBe(0);
    // Back through a hub: the port is host-open again and data flows.
    expect(await q.execute('hub-attach', { port: 'port1', chardev: 'p1' })).toEqual({});
    await d.waitFor(() => p.hostOpen, 'port 1 host-open again');
    await p.write(Buffer.from('back'));
    expect((await h1.read(4)).toString()).toBe('back');
    expect(d.problems()).toEqual([]);
  });

  it('error paths: in-use chardev, hub in a hub, unknown port, non-member, both or neither target', async () => {
    const r = await start();
    const q = await r.qmp();
    expect(await qmpError(q.execute('hub-attach', { hub: 'hub0', chardev: 'p1' }))).toEqual({
      class: 'GenericError',
      desc: "chardev 'p1' is already used by port 'port1'",
    });
    expect(await qmpError(q.execute('hub-attach', { port: 'nope', chardev: 'spare' }))).toEqual({
      class: 'DeviceNotFound',
      desc: "port 'nope' does not exist",
    });
    expect((await qmpError(q.execute('hub-attach', { port: 'console', chardev: 'hub0' }))).desc).toMatch(/hub/);
    expect((await qmpError(q.execute('hub-attach', { port: 'console', chardev: 'nope' }))).desc).toMatch(
      /chardev 'nope' does not exist/,
    );
    expect((await qmpError(q.execute('hub-detach', { hub: 'hub0', chardev: 'spare' }))).desc).toBe(
      "hub 'hub0': 'spare' is not a member (members: con, rb)",
    );
    expect((await qmpError(q.execute('hub-attach', { port: 'console', hub: 'hub0', chardev: 'spare' }))).desc).toMatch(
      /exactly one of 'port' and 'hub'/,
    );
    expect((await qmpError(q.execute('hub-attach', { chardev: 'spare' }))).desc).toMatch(
      /exactly one of 'port' and 'hub'/,
    );
    expect((await port(q, 'console'))!.members.map((m) => m.chardev)).toEqual(['con', 'rb']);
  });
});

describe('device_add / device_del', () => {
  it('hot-plugs a port the guest driver sees (PORT_ADD, its name), carries data, and unplugs it (PORT_REMOVE, DEVICE_DELETED)', async () => {
    const r = await start();
    const q = await r.qmp();
    const d = await guest(r);
    await q.execute('chardev-add', {
      id: 'hp',
      backend: {
        type: 'socket',
        data: { addr: { type: 'unix', data: { path: r.path('hp.sock') } }, server: true, wait: false },
      },
    });
    const h = await r.host('hp.sock');
    const mark = d.controlLog.length;
    expect(
      await q.execute('device_add', { driver: 'virtserialport', id: 'hot', chardev: 'hp', name: 'org.example.hot.0' }),
    ).toEqual({});
    await d.waitFor(() => d.ports.has(2) && d.port(2).name !== undefined, 'the hot-plugged port and its name');
    expect(d.controlLog.slice(mark).some((m) => m.id === 2 && m.event === Ctrl.PORT_ADD)).toBe(true);
    const p = d.port(2);
    expect(p.name).toBe('org.example.hot.0');
    expect(await port(q, 'hot')).toMatchObject({ name: 'org.example.hot.0', nr: 2, console: false, chardev: 'hp' });

    const events = q.events.length;
    await p.open();
    await q.waitEvent(
      (e) => e.event === 'VSERPORT_CHANGE' && e.data.id === 'hot' && e.data.open === true,
      'VSERPORT_CHANGE hot open',
      events,
    );
    await d.waitFor(() => p.hostOpen, 'hot port host-open');
    const out = randomBytes(40_000);
    await p.write(out);
    expect((await h.read(out.length)).equals(out)).toBe(true);
    await h.write(Buffer.from('to the hot port'));
    expect((await p.read(15)).toString()).toBe('to the hot port');

    const before = q.events.length;
    expect(await q.execute('device_del', { id: 'hot' })).toEqual({});
    await d.waitFor(() => !d.ports.has(2), 'PORT_REMOVE');
    expect(d.controlLog.slice(mark).some((m) => m.id === 2 && m.event === Ctrl.PORT_REMOVE)).toBe(true);
    expect((await q.waitEvent((e) => e.event === 'DEVICE_DELETED', 'DEVICE_DELETED', before)).data).toEqual({
      device: 'hot',
      path: '/machine/peripheral/hot',
      vm: 'vm0',
    });
    expect((await ports(q)).map((x) => x.id)).toEqual(['console', 'port1']);
    // Its chardev stays, unused, and can now be removed.
    expect((await chardevs(q)).find((c) => c.label === 'hp')).toMatchObject({ 'frontend-open': false });
    expect(await q.execute('chardev-remove', { id: 'hp' })).toEqual({});
    expect(d.problems()).toEqual([]);
  });

  it('a port added before the guest is up is announced at DEVICE_READY', async () => {
    const r = await start();
    const q = await r.qmp();
    await q.execute('device_add', {
      driver: 'virtserialport',
      id: 'early',
      chardev: 'spare',
      name: 'org.example.early',
      nr: 3,
    });
    const d = await r.driver({ numQueues: NUM_QUEUES });
    await d.waitPorts(3, settled);
    expect(d.port(3).name).toBe('org.example.early');
  });

  it('error paths: unknown port, nr 0 for a serial port, nr in use, chardev in use, bad driver', async () => {
    const r = await start();
    const q = await r.qmp();
    expect(await qmpError(q.execute('device_del', { id: 'nope' }))).toEqual({
      class: 'DeviceNotFound',
      desc: "port 'nope' does not exist",
    });
    expect(
      (await qmpError(q.execute('device_add', { driver: 'virtserialport', nr: 0, chardev: 'spare' }))).desc,
    ).toMatch(/nr 0/);
    expect(
      (await qmpError(q.execute('device_add', { driver: 'virtserialport', nr: 1, chardev: 'spare' }))).desc,
    ).toMatch(/nr 1/);
    expect(
      (await qmpError(q.execute('device_add', { driver: 'virtserialport', nr: MAX_PORTS, chardev: 'spare' }))).desc,
    ).toMatch(new RegExp(`${MAX_PORTS}`));
    expect((await qmpError(q.execute('device_add', { driver: 'virtserialport', chardev: 'p1' }))).desc).toMatch(/'p1'/);
    expect((await qmpError(q.execute('device_add', { driver: 'virtserialprot', chardev: 'spare' }))).desc).toMatch(
      /virtserialprot/,
    );
    expect((await ports(q)).map((x) => x.id)).toEqual(['console', 'port1']);
  });
});

describe('ringbuf-read / ringbuf-write', () => {
  it('ringbuf-write stores into the ring; guest output on a port with a ringbuf member is readable', async () => {
    const r = await start();
    const q = await r.qmp();
    expect(await q.execute('ringbuf-write', { device: 'rb', data: 'stored ' })).toEqual({});
    expect(await q.execute('ringbuf-read', { device: 'rb', size: 100 })).toBe('stored ');
    expect(await q.execute('ringbuf-read', { device: 'rb', size: 100 })).toBe(''); // read consumes

    const d = await guest(r);
    await d.port(0).write(Buffer.from('login: '));
    // The console output reaches the ring as it reaches every member.
    let got = '';
    for (let i = 0; i < 500 && got.length < 7; i++)
      got += (await q.execute('ringbuf-read', { device: 'rb', size: 4 })) as string;
    expect(got).toBe('login: ');

    const bin = Buffer.from([0, 1, 0xfe, 0xff]);
    expect(await q.execute('ringbuf-write', { device: 'rb', data: bin.toString('base64'), format: 'base64' })).toEqual(
      {},
    );
    expect(await q.execute('ringbuf-read', { device: 'rb', size: 10, format: 'base64' })).toBe(bin.toString('base64'));
    // Written bytes do not go to the guest.
    expect(d.port(0).bufferedBytes).toBe(0);
    expect(d.problems()).toEqual([]);
  });

  it('error paths: not a ringbuf, unknown chardev, size 0, bad base64, bad format', async () => {
    const r = await start();
    const q = await r.qmp();
    expect(await qmpError(q.execute('ringbuf-read', { device: 'p1', size: 1 }))).toEqual({
      class: 'GenericError',
      desc: "chardev 'p1' is not a ringbuf (it is a socket)",
    });
    expect((await qmpError(q.execute('ringbuf-read', { device: 'nope', size: 1 }))).desc).toMatch(
      /'nope' does not exist/,
    );
    expect((await qmpError(q.execute('ringbuf-read', { device: 'rb', size: 0 }))).desc).toMatch(/'size'/);
    expect((await qmpError(q.execute('ringbuf-read', { device: 'rb' }))).desc).toBe("Parameter 'size' is missing");
    expect(
      (await qmpError(q.execute('ringbuf-write', { device: 'rb', data: 'not base64!', format: 'base64' }))).desc,
    ).toMatch(/base64/);
    expect((await qmpError(q.execute('ringbuf-write', { device: 'rb', data: 'x', format: 'hex' }))).desc).toMatch(
      /'hex'/,
    );
    expect(await q.execute('ringbuf-read', { device: 'rb', size: 10 })).toBe(''); // nothing was stored
  });
});

describe('console-resize', () => {
  for (const order of ['rows-cols', 'cols-rows'] as const) {
    it(`sends RESIZE with the new size, ${order}`, async () => {
      const r = await start(['--resize-order', order]);
      const q = await r.qmp();
      const d = await guest(r);
      const c = d.port(0);
      const expected = (cols: number, rows: number): [number, number] =>
        order === 'rows-cols' ? [rows, cols] : [cols, rows];
      await d.waitFor(() => c.resizes.length > 0, 'the initial RESIZE');
      expect(c.resizes[0]).toEqual(expected(80, 25));
      expect(await q.execute('console-resize', { cols: 132, rows: 43 })).toEqual({});
      await d.waitFor(() => c.resizes.length > 1, 'a RESIZE after console-resize');
      expect(c.resizes.at(-1)).toEqual(expected(132, 43));
      expect((await q.execute('query-vms')) as unknown[]).toMatchObject([{ 'console-size': { cols: 132, rows: 43 } }]);
      expect((await qmpError(q.execute('console-resize', { cols: 0, rows: 43 }))).desc).toBe(
        "Parameter 'cols': 0 is out of range (1..65535)",
      );
      expect((await qmpError(q.execute('console-resize', { cols: 100 }))).desc).toBe("Parameter 'rows' is missing");
      expect(c.resizes.length).toBe(2);
      expect(d.problems()).toEqual([]);
    });
  }
});

describe('events', () => {
  it('FRONTEND_CONNECTED / FRONTEND_DISCONNECTED and VSERPORT_CHANGE on guest open and close', async () => {
    const r = await start();
    const q = await r.qmp();
    const d = await guest(r);
    await q.waitEvent((e) => e.event === 'FRONTEND_CONNECTED', 'FRONTEND_CONNECTED');
    expect(q.events.find((e) => e.event === 'FRONTEND_CONNECTED')!.data).toEqual({ vm: 'vm0' });
    // The console is opened by the driver itself at CONSOLE_PORT.
    await q.waitEvent(
      (e) => e.event === 'VSERPORT_CHANGE' && e.data.id === 'console' && e.data.open === true,
      'VSERPORT_CHANGE console open',
    );
    const p = d.port(1);
    let mark = q.events.length;
    await p.open();
    expect(
      (await q.waitEvent((e) => e.event === 'VSERPORT_CHANGE' && e.data.id === 'port1', 'VSERPORT_CHANGE port1', mark))
        .data,
    ).toEqual({ id: 'port1', open: true, vm: 'vm0' });
    expect((await port(q, 'port1'))!['guest-open']).toBe(true);
    mark = q.events.length;
    await p.close();
    expect(
      (await q.waitEvent((e) => e.event === 'VSERPORT_CHANGE' && e.data.id === 'port1', 'VSERPORT_CHANGE port1', mark))
        .data,
    ).toEqual({ id: 'port1', open: false, vm: 'vm0' });
    expect((await port(q, 'port1'))!['guest-open']).toBe(false);

    mark = q.events.length;
    await d.close();
    expect(
      (await q.waitEvent((e) => e.event === 'FRONTEND_DISCONNECTED', 'FRONTEND_DISCONNECTED', mark)).data,
    ).toMatchObject({ vm: 'vm0' });
    // A new front-end: connected again.
    mark = q.events.length;
    await guest(r);
    await q.waitEvent((e) => e.event === 'FRONTEND_CONNECTED', 'FRONTEND_CONNECTED again', mark);
  });
});

describe('quit', () => {
  it('replies, then the daemon exits 0 and removes its sockets', async () => {
    const r = await start();
    const c = await r.raw();
    await c.reply(0);
    c.send('{"execute": "qmp_capabilities"}{"execute": "quit", "id": "bye"}');
    expect(await c.reply(2)).toEqual({ return: {}, id: 'bye' });
    await until(() => !r.daemon.alive, 'the daemon to exit');
    expect(r.daemon.exit).toEqual({ code: 0, signal: null });
    expect(present(['vm.sock', 'ctl.sock', 'con.sock', 'p1.sock'].map((f) => r.path(f)))).toEqual([]);
  });
});
