// The control server end to end over a real unix socket, against a small in-memory
// ControlTarget (the daemon's real target is tested with the daemon).

import { mkdtempSync, rmSync, statSync, existsSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { parseArgs } from '../../src/config/load.js';
import type { ChardevSpec, PortConfig, VmConfig } from '../../src/config/schema.js';
import { ControlServer } from '../../src/control/server.js';
import {
  QmpError,
  type ChardevInfo,
  type ControlTarget,
  type HubChange,
  type PortInfo,
} from '../../src/control/target.js';
import { rootLogger, setLogLevel } from '../../src/log.js';
import { KNOWN_BACKENDS } from '../../src/chardev/registry.js';

/** The registry's list, as unknown-backend messages give it. */
const SUPPORTED = `(supported: ${KNOWN_BACKENDS.join(', ')})`;

setLogLevel('silent');
const dir = mkdtempSync(join(tmpdir(), 'vhc-control-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A target that keeps configurations, ringbuf contents and a call log in memory. */
class FakeTarget implements ControlTarget {
  readonly configs = new Map<string, VmConfig>();
  readonly ringbufs = new Map<string, Buffer>();
  readonly calls: unknown[][] = [];
  private quitNow!: () => void;
  readonly quitted = new Promise<void>((r) => {
    this.quitNow = r;
  });

  constructor(argv: string[]) {
    const r = parseArgs(argv);
    if (r.action !== 'run') throw new Error('bad test config');
    for (const vm of r.config.vms) {
      this.configs.set(vm.id, vm);
      for (const c of vm.chardevs) if (c.backend === 'ringbuf') this.ringbufs.set(`${vm.id}/${c.id}`, Buffer.alloc(0));
    }
  }
  vmIds() {
    return [...this.configs.keys()];
  }
  vmConfig(vm: string) {
    return this.configs.get(vm)!;
  }
  queryChardev(vm: string): ChardevInfo[] {
    const c = this.vmConfig(vm);
    return c.chardevs.map((x) => ({
      label: x.id,
      filename: x.backend,
      'frontend-open': c.devices.some((d) => d.chardev === x.id),
    }));
  }
  queryPorts(vm: string): PortInfo[] {
    return this.vmConfig(vm).devices.map((d) => ({
      id: d.id,
      nr: d.nr,
      console: d.driver === 'virtconsole',
      'guest-open': false,
      'host-open': false,
      'bytes-out': 0,
      'bytes-in': 0,
      'input-held': 0,
      'input-waiting': 0,
      members: [],
      ...(d.name ? { name: d.name } : {}),
      ...(d.chardev ? { chardev: d.chardev } : {}),
    }));
  }
  private apply(vm: string, next: VmConfig, ...call: unknown[]) {
    this.calls.push([...call, vm]);
    this.configs.set(vm, next);
  }
  chardevAdd(vm: string, c: ChardevSpec, next: VmConfig) {
    if (c.options.path === '/fail') throw new Error('cannot open /fail');
    this.apply(vm, next, 'chardevAdd', c);
    if (c.backend === 'ringbuf') this.ringbufs.set(`${vm}/${c.id}`, Buffer.alloc(0));
    return c.backend === 'pty' ? { pty: '/dev/pts/99' } : {};
  }
  chardevRemove(vm: string, id: string, next: VmConfig) {
    this.apply(vm, next, 'chardevRemove', id);
  }
  hubAttach(vm: string, change: HubChange, next: VmConfig) {
    this.apply(vm, next, 'hubAttach', change);
  }
  hubDetach(vm: string, change: HubChange, next: VmConfig) {
    this.apply(vm, next, 'hubDetach', change);
  }
  deviceAdd(vm: string, port: PortConfig, next: VmConfig) {
    this.apply(vm, next, 'deviceAdd', port);
  }
  deviceDel(vm: string, id: string, next: VmConfig) {
    this.apply(vm, next, 'deviceDel', id);
  }
  async ringbufRead(vm: string, id: string, size: number) {
    const b = this.ringbufs.get(`${vm}/${id}`)!;
    this.ringbufs.set(`${vm}/${id}`, b.subarray(size));
    return b.subarray(0, size);
  }
  ringbufWrite(vm: string, id: string, data: Uint8Array) {
    if (id === 'broken') throw new QmpError('DeviceNotActive', 'ringbuf broken is not active');
    this.ringbufs.set(`${vm}/${id}`, Buffer.concat([this.ringbufs.get(`${vm}/${id}`)!, data]));
  }
  consoleResize(vm: string, cols: number, rows: number, next: VmConfig) {
    this.apply(vm, next, 'consoleResize', cols, rows);
  }
  quit() {
    this.quitNow();
  }
}

/** A QMP client: messages in arrival order; `cmd` sends one request and awaits its reply. */
class Client {
  private readonly messages: Record<string, any>[] = [];
  private waiters: (() => void)[] = [];
  private buf = '';
  readonly events: Record<string, any>[] = [];
  constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (t: string) => {
      this.buf += t;
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl).trim();
        this.buf = this.buf.slice(nl + 1);
        if (line === '') continue;
        const msg = JSON.parse(line);
        if ('event' in msg) this.events.push(msg);
        else this.messages.push(msg);
        for (const w of this.waiters.splice(0)) w();
      }
    });
  }
  static async connect(path: string): Promise<Client> {
    const socket = createConnection(path);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new Client(socket);
  }
  async next(): Promise<Record<string, any>> {
    while (this.messages.length === 0) await new Promise<void>((r) => this.waiters.push(r));
    return this.messages.shift()!;
  }
  async until(pred: () => boolean): Promise<void> {
    while (!pred()) await new Promise<void>((r) => this.waiters.push(r));
  }
  send(text: string): void {
    this.socket.write(text);
  }
  async cmd(execute: string, args?: Record<string, unknown>): Promise<Record<string, any>> {
    this.send(JSON.stringify(args === undefined ? { execute } : { execute, arguments: args }) + '\n');
    return this.next();
  }
  /** Connect, read the greeting and negotiate. */
  static async ready(path: string): Promise<Client> {
    const c = await Client.connect(path);
    await c.next();
    expect(await c.cmd('qmp_capabilities')).toEqual({ return: {} });
    return c;
  }
  close(): void {
    this.socket.destroy();
  }
}

const ONE_VM = [
  '--socket',
  '/run/vm.sock',
  '--chardev',
  'pty,id=pty0',
  '--chardev',
  'null,id=spare',
  '--chardev',
  'ringbuf,id=rb0,size=1024',
  '--chardev',
  'hub,id=hub0,chardevs.0=pty0',
  '--device',
  'virtconsole,id=console,chardev=hub0',
  '--chardev',
  'null,id=agent',
  '--device',
  'virtserialport,chardev=agent,name=org.qemu.guest_agent.0',
];

let n = 0;
const servers: ControlServer[] = [];
const clients: Client[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const s of servers.splice(0)) await s.close();
});

async function start(
  argv = ONE_VM,
  mode?: number,
): Promise<{ server: ControlServer; target: FakeTarget; path: string; client: () => Promise<Client> }> {
  const target = new FakeTarget(argv);
  const path = join(dir, `control${n++}.sock`);
  const server = new ControlServer({
    path,
    target,
    version: '0.1.0',
    log: rootLogger(),
    ...(mode === undefined ? {} : { mode }),
  });
  await server.listen();
  servers.push(server);
  return {
    server,
    target,
    path,
    client: async () => {
      const c = await Client.ready(path);
      clients.push(c);
      return c;
    },
  };
}

describe('protocol', () => {
  it('greets, insists on qmp_capabilities first, then serves commands; ids come back', async () => {
    const { path } = await start();
    const c = await Client.connect(path);
    clients.push(c);
    expect(await c.next()).toEqual({
      QMP: { version: { qemu: { major: 0, minor: 1, micro: 0 }, package: 'vhost-console 0.1.0' }, capabilities: [] },
    });
    expect(await c.cmd('query-ports')).toEqual({
      error: { class: 'CommandNotFound', desc: "Expecting capabilities negotiation with 'qmp_capabilities'" },
    });
    expect(await c.cmd('qmp_capabilities', { enable: ['oob'] })).toEqual({
      error: { class: 'GenericError', desc: "Capability 'oob' not available" },
    });
    c.send('{"execute": "qmp_capabilities", "id": {"seq": 1}}\n');
    expect(await c.next()).toEqual({ return: {}, id: { seq: 1 } });
    expect(await c.cmd('qmp_capabilities')).toEqual({
      error: { class: 'CommandNotFound', desc: 'Capabilities negotiation is already complete, command ignored' },
    });
    c.send('{"execute": "query-chardev", "id": 7}');
    const r = await c.next();
    expect(r.id).toBe(7);
    expect(r.return.map((x: ChardevInfo) => x.label)).toEqual(['pty0', 'spare', 'rb0', 'hub0', 'agent']);
  });

  it('answers bad input with an error and stays usable', async () => {
    const { client } = await start();
    const c = await client();
    const cases: [string, string, string][] = [
      ['not json at all\n', 'GenericError', "JSON parse error, invalid input 'not json at all'"],
      ['{"execute": tru}\n', 'GenericError', 'JSON parse error, '],
      ['[1, 2]\n', 'GenericError', 'QMP input must be a JSON object'],
      ['{"arguments": {}}\n', 'GenericError', "QMP input lacks member 'execute'"],
      ['{"execute": 5}\n', 'GenericError', "QMP input member 'execute' must be a string"],
      [
        '{"execute": "query-ports", "arguments": [1]}\n',
        'GenericError',
        "QMP input member 'arguments' must be an object",
      ],
      ['{"execute": "query-ports", "extra": 1}\n', 'GenericError', "QMP input member 'extra' is unexpected"],
      ['{"execute": "query-portz"}\n', 'CommandNotFound', 'The command query-portz has not been found'],
      ['{"execute": "toString"}\n', 'CommandNotFound', 'The command toString has not been found'],
    ];
    for (const [text, cls, desc] of cases) {
      c.send(text);
      const r = await c.next();
      expect(r.error.class).toBe(cls);
      expect(r.error.desc.startsWith(desc)).toBe(true);
    }
    expect((await c.cmd('query-ports')).return).toHaveLength(2);
  });

  it('serves several clients at once and sends events only to negotiated ones', async () => {
    const { server, path, client } = await start();
    const a = await client();
    const b = await client();
    const fresh = await Client.connect(path);
    clients.push(fresh);
    await fresh.next();
    expect(server.clientCount).toBe(3);
    const [ra, rb] = await Promise.all([a.cmd('query-ports'), b.cmd('query-chardev')]);
    expect(ra.return[0].id).toBe('console');
    expect(rb.return[0].label).toBe('pty0');
    server.emitEvent('VSERPORT_CHANGE', { id: 'org.qemu.guest_agent.0', open: true, vm: 'vm0' });
    server.emitEvent('FRONTEND_CONNECTED', { vm: 'vm0' });
    await a.until(() => a.events.length === 2);
    await b.until(() => b.events.length === 2);
    for (const c of [a, b]) {
      expect(c.events.map((e) => [e.event, e.data])).toEqual([
        ['VSERPORT_CHANGE', { id: 'org.qemu.guest_agent.0', open: true, vm: 'vm0' }],
        ['FRONTEND_CONNECTED', { vm: 'vm0' }],
      ]);
      const ts = c.events[0]!.timestamp;
      expect(Number.isInteger(ts.seconds) && Number.isInteger(ts.microseconds) && ts.microseconds < 1e6).toBe(true);
      expect(Math.abs(ts.seconds - Date.now() / 1000)).toBeLessThan(60);
    }
    // The un-negotiated client got nothing; after negotiating it gets the next event.
    expect(await fresh.cmd('qmp_capabilities')).toEqual({ return: {} });
    expect(fresh.events).toEqual([]);
    server.emitEvent('FRONTEND_DISCONNECTED', { vm: 'vm0', reason: 'peer closed' });
    await fresh.until(() => fresh.events.length === 1);
    expect(fresh.events[0]!.data).toEqual({ vm: 'vm0', reason: 'peer closed' });
  });

  it('replies to quit before the target shuts down', async () => {
    const { target, client } = await start();
    const c = await client();
    expect(await c.cmd('quit')).toEqual({ return: {} });
    await target.quitted;
  });

  it('creates the socket 0600 or with the given mode, replaces a stale one, refuses a live one, removes it on close', async () => {
    const { server, path } = await start();
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const other = await start(ONE_VM, 0o660);
    expect(statSync(other.path).mode & 0o777).toBe(0o660);
    await expect(new ControlServer({ path, target: new FakeTarget(ONE_VM), version: '0' }).listen()).rejects.toThrow(
      `control socket '${path}' is in use by a running process`,
    );
    await server.close();
    servers.splice(servers.indexOf(server), 1);
    expect(existsSync(path)).toBe(false);

    // A stale socket: its process was killed and could not remove it.
    const stale = join(dir, 'stale.sock');
    const child = spawn(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(stale)}, () => console.log('up'))`,
    ]);
    await new Promise((r) => child.stdout.once('data', r));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(statSync(stale).isSocket()).toBe(true);
    const again = new ControlServer({ path: stale, target: new FakeTarget(ONE_VM), version: '0' });
    await again.listen();
    servers.push(again);

    const plain = join(dir, 'plain-file');
    writeFileSync(plain, '');
    await expect(
      new ControlServer({ path: plain, target: new FakeTarget(ONE_VM), version: '0' }).listen(),
    ).rejects.toThrow(`control socket '${plain}': the path exists and is not a socket`);
  });
});

describe('commands', () => {
  it('query-commands and query-vms', async () => {
    const { client } = await start();
    const c = await client();
    const names = (await c.cmd('query-commands')).return.map((x: { name: string }) => x.name);
    expect(names).toEqual(
      expect.arrayContaining([
        'chardev-add',
        'device_add',
        'hub-attach',
        'ringbuf-read',
        'console-resize',
        'quit',
        'qmp_capabilities',
      ]),
    );
    expect((await c.cmd('query-vms')).return).toEqual([
      { id: 'vm0', socket: '/run/vm.sock', 'max-ports': 31, multiport: true, 'console-size': { cols: 80, rows: 24 } },
    ]);
  });

  it('checks arguments and names the one at fault', async () => {
    const { client } = await start();
    const c = await client();
    expect((await c.cmd('ringbuf-read', { device: 'rb0' })).error.desc).toBe("Parameter 'size' is missing");
    expect((await c.cmd('ringbuf-read', { device: 'rb0', size: 'ten' })).error.desc).toBe(
      `Invalid parameter type for 'size', expected: integer (got "ten")`,
    );
    expect((await c.cmd('ringbuf-read', { device: 'rb0', size: 10, fromat: 'utf8' })).error.desc).toBe(
      "Parameter 'fromat' is unexpected; did you mean 'format'?",
    );
    expect((await c.cmd('ringbuf-read', { device: 'rb0', size: 0 })).error.desc).toBe(
      "Parameter 'size': 0 must be greater than zero",
    );
    expect((await c.cmd('ringbuf-read', { device: 'rb0', size: 1, format: 'hex' })).error.desc).toBe(
      "Parameter 'format': 'hex' is not utf8 or base64",
    );
    expect((await c.cmd('console-resize', { cols: 0, rows: 24 })).error.desc).toBe(
      "Parameter 'cols': 0 is out of range (1..65535)",
    );
    expect((await c.cmd('console-resize', { cols: 80, rows: 70000 })).error.desc).toBe(
      "Parameter 'rows': 70000 is out of range (1..65535)",
    );
  });

  it('chardev-add translates QMP backends to chardev options', async () => {
    const { target, client } = await start();
    const c = await client();
    expect(
      await c.cmd('chardev-add', {
        id: 'web0',
        backend: {
          type: 'socket',
          data: { addr: { type: 'unix', data: { path: '/run/web.sock' } }, server: true, wait: false },
        },
      }),
    ).toEqual({ return: {} });
    expect(
      await c.cmd('chardev-add', {
        id: 'tcp0',
        backend: {
          type: 'socket',
          data: { addr: { type: 'inet', data: { host: '127.0.0.1', port: '4555' } }, server: false, reconnect: 2 },
        },
      }),
    ).toEqual({ return: {} });
    expect(
      await c.cmd('chardev-add', { id: 'log1', backend: { type: 'file', data: { out: '/var/log/x', append: true } } }),
    ).toEqual({ return: {} });
    expect(await c.cmd('chardev-add', { id: 'rb1', backend: { type: 'memory', data: { size: 4096 } } })).toEqual({
      return: {},
    });
    expect(await c.cmd('chardev-add', { id: 'pty1', backend: { type: 'pty', data: {} } })).toEqual({
      return: { pty: '/dev/pts/99' },
    });
    expect(await c.cmd('chardev-add', { id: 'nul1', backend: { type: 'null' } })).toEqual({ return: {} });
    // Each as written, and the typed form the VM builds from.
    const common = { logappend: false, timestamp: false, member: {} };
    const socket = { backend: 'socket', nodelay: false, telnet: false, mode: 0o600, common } as const;
    expect(target.calls.map((x) => x[1])).toEqual([
      {
        id: 'web0',
        backend: 'socket',
        options: { path: '/run/web.sock', server: 'on', wait: 'off' },
        config: {
          id: 'web0',
          ...socket,
          address: { type: 'unix', path: '/run/web.sock' },
          server: true,
          wait: false,
          reconnectMs: 0,
        },
      },
      {
        id: 'tcp0',
        backend: 'socket',
        options: { host: '127.0.0.1', port: '4555', server: 'off', reconnect: '2' },
        config: {
          id: 'tcp0',
          ...socket,
          address: { type: 'tcp', host: '127.0.0.1', port: 4555 },
          server: false,
          wait: true,
          reconnectMs: 2000,
        },
      },
      {
        id: 'log1',
        backend: 'file',
        options: { path: '/var/log/x', append: 'on' },
        config: { id: 'log1', backend: 'file', path: '/var/log/x', append: true, common },
      },
      {
        id: 'rb1',
        backend: 'ringbuf',
        options: { size: '4096' },
        config: { id: 'rb1', backend: 'ringbuf', size: 4096, common },
      },
      { id: 'pty1', backend: 'pty', options: {}, config: { id: 'pty1', backend: 'pty', common } },
      { id: 'nul1', backend: 'null', options: {}, config: { id: 'nul1', backend: 'null', common } },
    ]);
    expect(target.vmConfig('vm0').chardevs.map((x) => x.id)).toContain('nul1');
  });

  it('chardev-add errors', async () => {
    const { client } = await start();
    const c = await client();
    const add = async (id: string, backend: unknown) => (await c.cmd('chardev-add', { id, backend })).error?.desc;
    expect(await add('pty0', { type: 'pty', data: {} })).toBe("chardev 'pty0' already exists");
    expect(await add('x', { type: 'pyt', data: {} })).toBe(
      `chardev 'x': unknown backend 'pyt'; did you mean 'pty'? ${SUPPORTED}`,
    );
    expect(await add('1x', { type: 'pty', data: {} })).toBe(
      "chardev id '1x' is invalid: it must start with a letter and contain only letters, digits, '-', '.' and '_'",
    );
    expect(await add('x', { data: {} })).toBe("Parameter 'backend.type' is missing or not a string");
    expect(await add('x', { type: 'pty', data: [] })).toBe(
      "Invalid parameter type for 'backend.data', expected: object",
    );
    expect(await add('x', { type: 'pty', dat: {} })).toBe("Parameter 'backend.dat' is unexpected");
    expect(await add('x', { type: 'socket', data: { addr: { type: 'vsock', data: { cid: '3', port: '1' } } } })).toBe(
      "backend.data.addr: address type 'vsock' is not supported (unix or inet)",
    );
    expect(await add('x', { type: 'socket', data: { addr: { type: 'unix', data: {} } } })).toBe(
      "Parameter 'backend.data.addr.data.path' is missing",
    );
    expect(await add('x', { type: 'hub', data: { chardevs: ['spare'] } })).toBe(
      "chardev-add: create hubs with hub-attach (a port's hub exists already)",
    );
    // A failure in the target is reported, and the configuration is unchanged.
    expect(await add('f', { type: 'file', data: { out: '/fail' } })).toBe('chardev-add: cannot open /fail');
    expect((await c.cmd('query-chardev')).return.map((x: ChardevInfo) => x.label)).not.toContain('f');
  });

  it('chardev-remove refuses a chardev in use, as QEMU does', async () => {
    const { target, client } = await start();
    const c = await client();
    expect((await c.cmd('chardev-remove', { id: 'pty0' })).error.desc).toBe(
      "chardev 'pty0' is busy: used by hub 'hub0'",
    );
    expect((await c.cmd('chardev-remove', { id: 'agent' })).error.desc).toBe(
      "chardev 'agent' is busy: used by port 'org.qemu.guest_agent.0'",
    );
    expect((await c.cmd('chardev-remove', { id: 'nope' })).error).toEqual({
      class: 'GenericError',
      desc: "chardev 'nope' does not exist",
    });
    expect(await c.cmd('chardev-remove', { id: 'spare' })).toEqual({ return: {} });
    expect(target.vmConfig('vm0').chardevs.map((x) => x.id)).not.toContain('spare');
  });

  it('hub-attach / hub-detach by port or hub, making a hub for a port that has none', async () => {
    const { target, client } = await start();
    const c = await client();
    expect(await c.cmd('hub-attach', { port: 'console', chardev: 'spare' })).toEqual({ return: {} });
    expect(target.calls.at(-1)).toEqual(['hubAttach', { hub: 'hub0', port: 'console', chardev: 'spare' }, 'vm0']);
    expect(target.vmConfig('vm0').chardevs.find((x) => x.id === 'hub0')!.members).toEqual(['pty0', 'spare']);
    expect((await c.cmd('hub-attach', { hub: 'hub0', chardev: 'spare' })).error.desc).toBe(
      "hub 'hub0': 'spare' is already a member",
    );
    expect(await c.cmd('hub-detach', { hub: 'hub0', chardev: 'spare' })).toEqual({ return: {} });
    expect(target.calls.at(-1)).toEqual(['hubDetach', { hub: 'hub0', port: 'console', chardev: 'spare' }, 'vm0']);
    // The guest agent's port uses its chardev directly: attaching makes it a hub.
    expect(await c.cmd('hub-attach', { port: 'org.qemu.guest_agent.0', chardev: 'spare' })).toEqual({ return: {} });
    expect(target.calls.at(-1)).toEqual([
      'hubAttach',
      { hub: 'hub-org.qemu.guest_agent.0', port: 'org.qemu.guest_agent.0', chardev: 'spare', created: true },
      'vm0',
    ]);
    const cfg = target.vmConfig('vm0');
    expect(cfg.devices.find((d) => d.id === 'org.qemu.guest_agent.0')!.chardev).toBe('hub-org.qemu.guest_agent.0');
    expect(cfg.chardevs.find((x) => x.id === 'hub-org.qemu.guest_agent.0')!.members).toEqual(['agent', 'spare']);
    // Detaching every member leaves an empty hub (the port is host-closed), which is allowed at run time.
    expect(await c.cmd('hub-detach', { hub: 'hub0', chardev: 'pty0' })).toEqual({ return: {} });
    expect(target.vmConfig('vm0').chardevs.find((x) => x.id === 'hub0')!.members).toEqual([]);
  });

  it('hub-attach / hub-detach errors', async () => {
    const { client } = await start();
    const c = await client();
    const e = async (cmd: string, args: Record<string, unknown>) => (await c.cmd(cmd, args)).error;
    expect((await e('hub-attach', { chardev: 'spare' })).desc).toBe("give exactly one of 'port' and 'hub'");
    expect((await e('hub-attach', { port: 'console', hub: 'hub0', chardev: 'spare' })).desc).toBe(
      "give exactly one of 'port' and 'hub'",
    );
    expect(await e('hub-attach', { port: 'nope', chardev: 'spare' })).toEqual({
      class: 'DeviceNotFound',
      desc: "port 'nope' does not exist",
    });
    expect((await e('hub-attach', { hub: 'spare', chardev: 'pty0' })).desc).toBe(
      "chardev 'spare' is not a hub (it is a null)",
    );
    expect((await e('hub-attach', { hub: 'hub0', chardev: 'nope' })).desc).toBe("chardev 'nope' does not exist");
    expect((await e('hub-attach', { hub: 'hub0', chardev: 'agent' })).desc).toBe(
      "chardev 'agent' is already used by port 'org.qemu.guest_agent.0'",
    );
    expect((await e('hub-attach', { hub: 'hub0', chardev: 'hub0' })).desc).toBe(
      "hub 'hub0': 'hub0' is a hub; hubs do not nest",
    );
    expect((await e('hub-detach', { hub: 'hub0', chardev: 'spare' })).desc).toBe(
      "hub 'hub0': 'spare' is not a member (members: pty0)",
    );
    expect((await e('hub-detach', { port: 'org.qemu.guest_agent.0', chardev: 'spare' })).desc).toBe(
      "port 'org.qemu.guest_agent.0': 'spare' is not its chardev (it uses 'agent')",
    );
  });

  it('hub-detach from a port with a plain chardev leaves the port without a backend', async () => {
    const { target, client } = await start();
    const c = await client();
    expect(await c.cmd('hub-detach', { port: 'org.qemu.guest_agent.0', chardev: 'agent' })).toEqual({ return: {} });
    expect(target.calls.at(-1)).toEqual([
      'hubDetach',
      { hub: '', port: 'org.qemu.guest_agent.0', chardev: 'agent' },
      'vm0',
    ]);
    expect(target.vmConfig('vm0').devices.find((d) => d.id === 'org.qemu.guest_agent.0')!.chardev).toBeUndefined();
    // The chardev is free again, and the port can take it back through a hub.
    expect(await c.cmd('hub-attach', { port: 'org.qemu.guest_agent.0', chardev: 'agent' })).toEqual({ return: {} });
  });

  it('device_add hot-plugs a port with the next free number; device_del unplugs it and says so', async () => {
    const { target, client } = await start();
    const c = await client();
    expect(await c.cmd('device_add', { driver: 'virtserialport', chardev: 'spare', name: 'org.example.hot' })).toEqual({
      return: {},
    });
    expect(target.calls.at(-1)).toEqual([
      'deviceAdd',
      { id: 'org.example.hot', driver: 'virtserialport', chardev: 'spare', name: 'org.example.hot', nr: 2 },
      'vm0',
    ]);
    const ports = (await c.cmd('query-ports')).return as PortInfo[];
    expect(ports.map((p) => [p.id, p.nr, p.chardev])).toEqual([
      ['console', 0, 'hub0'],
      ['org.qemu.guest_agent.0', 1, 'agent'],
      ['org.example.hot', 2, 'spare'],
    ]);
    expect(await c.cmd('device_del', { id: 'org.example.hot' })).toEqual({ return: {} });
    await c.until(() => c.events.length === 1);
    expect(c.events[0]!.event).toBe('DEVICE_DELETED');
    expect(c.events[0]!.data).toEqual({
      device: 'org.example.hot',
      path: '/machine/peripheral/org.example.hot',
      vm: 'vm0',
    });
    expect(target.vmConfig('vm0').devices.map((d) => d.id)).toEqual(['console', 'org.qemu.guest_agent.0']);
  });

  it('device_add / device_del errors use the configuration rules, in QMP words (no --device syntax)', async () => {
    const { client } = await start();
    const c = await client();
    const e = async (cmd: string, args: Record<string, unknown>) => (await c.cmd(cmd, args)).error;
    expect((await e('device_add', { driver: 'virtio-serial-port' })).desc).toBe(
      "'virtio-serial-port' is not a valid device model name (vhost-console adds virtconsole and virtserialport)",
    );
    expect((await e('device_add', { driver: 'virtserialprot' })).desc).toBe(
      "'virtserialprot' is not a valid device model name (vhost-console adds virtconsole and virtserialport); did you mean 'virtserialport'?",
    );
    expect((await e('device_add', { driver: 'virtserialport', chardev: 'pty0' })).desc).toBe(
      "port 'port2': chardev 'pty0' is already used by hub 'hub0'",
    );
    expect((await e('device_add', { driver: 'virtserialport', nr: 0 })).desc).toBe(
      'device_add (virtserialport): nr 0 is reserved for a virtconsole (as in QEMU)',
    );
    expect((await e('device_add', { driver: 'virtserialport', id: 'p9', nr: 31 })).desc).toBe(
      "device 'p9': nr 31 is out of range (0..30: max-ports is 31)",
    );
    expect((await e('device_add', { driver: 'virtserialport', nr: 1 })).desc).toBe(
      "device_add (virtserialport): nr 1 is already used by port 'org.qemu.guest_agent.0'",
    );
    expect((await e('device_add', { driver: 'virtserialport', id: 'console' })).desc).toBe(
      "device 'console': device id 'console' is used twice",
    );
    expect((await e('device_add', { driver: 'virtserialport', name: 'org.qemu.guest_agent.0' })).desc).toBe(
      "device_add (virtserialport): name 'org.qemu.guest_agent.0' is already used by port 'org.qemu.guest_agent.0'",
    );
    expect((await e('device_add', { driver: 'virtserialport', bus: 'pci.0' })).desc).toBe(
      "device_add: bus 'pci.0' is a PCI bus: a virtserialport goes on a virtio-serial bus (e.g. 'virtio-serial0.0' for a controller with id=virtio-serial0)",
    );
    expect(await e('device_del', { id: 'nope' })).toEqual({
      class: 'DeviceNotFound',
      desc: "port 'nope' does not exist",
    });
    for (const { desc } of [
      await e('device_add', { driver: 'virtserialport', nr: 0 }),
      await e('device_add', { driver: 'virtserialport', id: 'p9', nr: 31 }),
    ]) {
      expect(desc).not.toMatch(/--device|--max-ports/);
    }
  });

  it("device_add accepts bus= naming the VM's one virtio-serial bus, and refuses another controller's", async () => {
    const { target, client } = await start();
    const c = await client();
    expect(await c.cmd('device_add', { driver: 'virtserialport', id: 'a', bus: 'virtio-serial0.0' })).toEqual({
      return: {},
    });
    expect(target.vmConfig('vm0').devices.find((d) => d.id === 'a')).toMatchObject({ bus: 'virtio-serial0.0' });
    expect((await c.cmd('device_add', { driver: 'virtserialport', id: 'b', bus: 'virtio-serial1.0' })).error.desc).toBe(
      "device 'b': bus 'virtio-serial1.0' is another virtio-serial controller than 'virtio-serial0.0' (port 'a'): vhost-console serves one virtio-serial device per VM; give the ports of another controller a VM of their own (a vm list in --config)",
    );
  });

  it('ringbuf-write and ringbuf-read, utf8 and base64', async () => {
    const { target, client } = await start();
    const c = await client();
    expect(await c.cmd('ringbuf-write', { device: 'rb0', data: 'héllo ' })).toEqual({ return: {} });
    expect(
      await c.cmd('ringbuf-write', {
        device: 'rb0',
        data: Buffer.from([0, 1, 255]).toString('base64'),
        format: 'base64',
      }),
    ).toEqual({ return: {} });
    expect(target.ringbufs.get('vm0/rb0')).toEqual(Buffer.concat([Buffer.from('héllo '), Buffer.from([0, 1, 255])]));
    expect(await c.cmd('ringbuf-read', { device: 'rb0', size: 7, format: 'utf8' })).toEqual({ return: 'héllo ' });
    expect(await c.cmd('ringbuf-read', { device: 'rb0', size: 100, format: 'base64' })).toEqual({ return: 'AAH/' });
    expect((await c.cmd('ringbuf-write', { device: 'rb0', data: 'not base64!', format: 'base64' })).error.desc).toBe(
      "Parameter 'data': not valid base64",
    );
    expect((await c.cmd('ringbuf-read', { device: 'pty0', size: 1 })).error.desc).toBe(
      "chardev 'pty0' is not a ringbuf (it is a pty)",
    );
    expect((await c.cmd('ringbuf-read', { device: 'nope', size: 1 })).error.desc).toBe("chardev 'nope' does not exist");
  });

  it('passes a target error class through', async () => {
    const { client } = await start(['--socket', '/s', '--chardev', 'ringbuf,id=broken']);
    const c = await client();
    expect((await c.cmd('ringbuf-write', { device: 'broken', data: 'x' })).error).toEqual({
      class: 'DeviceNotActive',
      desc: 'ringbuf broken is not active',
    });
  });

  it('console-resize stores the new size', async () => {
    const { target, client } = await start();
    const c = await client();
    expect(await c.cmd('console-resize', { cols: 132, rows: 43 })).toEqual({ return: {} });
    expect(target.calls.at(-1)).toEqual(['consoleResize', 132, 43, 'vm0']);
    expect(target.vmConfig('vm0').consoleSize).toEqual({ cols: 132, rows: 43 });
  });
});

describe('several VMs', () => {
  function twoVms(): string[] {
    const f = join(dir, `two${n++}.json`);
    const vm = (id: string, extra: string[]) => ({
      id,
      socket: `/run/${id}.sock`,
      chardev: ['null,id=c0', 'ringbuf,id=rb', ...extra],
      device: ['virtconsole,id=console,chardev=c0'],
    });
    writeFileSync(f, JSON.stringify({ vm: [vm('vm1', ['null,id=only1']), vm('vm2', [])] }));
    return ['--config', f];
  }

  it('finds the VM of an object by its id, and asks for vm when that is ambiguous', async () => {
    const { target, client } = await start(twoVms());
    const c = await client();
    expect(await c.cmd('chardev-remove', { id: 'only1' })).toEqual({ return: {} });
    expect(target.calls.at(-1)).toEqual(['chardevRemove', 'only1', 'vm1']);
    expect((await c.cmd('ringbuf-read', { device: 'rb', size: 1 })).error.desc).toBe(
      "chardev 'rb' exists in several VMs (vm1, vm2): give 'vm'",
    );
    expect(await c.cmd('ringbuf-read', { device: 'rb', size: 1, vm: 'vm2' })).toEqual({ return: '' });
    expect((await c.cmd('ringbuf-read', { device: 'rb', size: 1, vm: 'vm3' })).error.desc).toBe(
      "vm 'vm3' does not exist (VMs: vm1, vm2); did you mean 'vm1'?",
    );
    expect((await c.cmd('console-resize', { cols: 100, rows: 30 })).error.desc).toBe(
      "Parameter 'vm' is missing: the daemon runs several VMs (vm1, vm2)",
    );
    expect((await c.cmd('device_add', { driver: 'virtserialport', chardev: 'nope', vm: 'vm2' })).error.desc).toBe(
      "vm 'vm2': port 'port1': chardev 'nope' does not exist",
    );
  });

  it('query-chardev and query-ports list every VM, tagged, or one VM', async () => {
    const { client } = await start(twoVms());
    const c = await client();
    const all = (await c.cmd('query-ports')).return as (PortInfo & { vm: string })[];
    expect(all.map((p) => [p.vm, p.id])).toEqual([
      ['vm1', 'console'],
      ['vm2', 'console'],
    ]);
    const one = (await c.cmd('query-chardev', { vm: 'vm2' })).return as (ChardevInfo & { vm: string })[];
    expect(one.map((x) => [x.vm, x.label])).toEqual([
      ['vm2', 'c0'],
      ['vm2', 'rb'],
    ]);
  });
});
