// The device's socket and protocol front door, driven with plain unix sockets (no fds, no
// guest memory): option checks, socket file handling, one front-end at a time, the handshake
// values, and malformed messages ending only that connection. Ring and data paths are covered
// by the integration tests, which use the test front-end.
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync, existsSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createConsoleDevice } from '../../src/device/device.js';
import type { ConsoleDevice, DeviceOptions } from '../../src/device/types.js';
import { ConfigError, StateError } from '../../src/errors.js';

let dir: string;
const devices: ConsoleDevice[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'vhc-device-'));
});
afterEach(() => {
  for (const d of devices.splice(0)) d.close();
  rmSync(dir, { recursive: true, force: true });
});

function device(extra: Partial<DeviceOptions> = {}): ConsoleDevice {
  const d = createConsoleDevice({
    socketPath: join(dir, 'vu.sock'),
    maxPorts: 3,
    cols: 100,
    rows: 40,
    resizeOrder: 'rows-cols',
    name: 't',
    ...extra,
  });
  devices.push(d);
  return d;
}

/** A raw front-end connection: send headers + payloads, read replies. */
class Raw {
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;
  constructor(readonly sock: net.Socket) {
    sock.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.waiters.splice(0).forEach((w) => w());
    });
    sock.on('close', () => {
      this.closed = true;
      this.waiters.splice(0).forEach((w) => w());
    });
    sock.on('error', () => {});
  }
  static async connect(path: string): Promise<Raw> {
    const s = net.connect(path);
    await once(s, 'connect');
    return new Raw(s);
  }
  send(request: number, flags: number, payload: Buffer = Buffer.alloc(0), size = payload.length): void {
    const h = Buffer.alloc(12);
    h.writeUInt32LE(request, 0);
    h.writeUInt32LE(flags, 4);
    h.writeUInt32LE(size, 8);
    this.sock.write(Buffer.concat([h, payload]));
  }
  async reply(): Promise<{ request: number; flags: number; payload: Buffer }> {
    for (;;) {
      if (this.buf.length >= 12) {
        const size = this.buf.readUInt32LE(8);
        if (this.buf.length >= 12 + size) {
          const r = {
            request: this.buf.readUInt32LE(0),
            flags: this.buf.readUInt32LE(4),
            payload: this.buf.subarray(12, 12 + size),
          };
          this.buf = this.buf.subarray(12 + size);
          return r;
        }
      }
      if (this.closed) throw new Error('connection closed');
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }
  async u64(request: number): Promise<bigint> {
    this.send(request, 1);
    const r = await this.reply();
    expect(r.request).toBe(request);
    expect(r.flags).toBe(0x5);
    expect(r.payload.length).toBe(8);
    return r.payload.readBigUInt64LE(0);
  }
  async closedByPeer(): Promise<void> {
    while (!this.closed) await new Promise<void>((r) => this.waiters.push(r));
  }
  end(): void {
    this.sock.destroy();
  }
}

describe('device options and ports', () => {
  it('rejects bad options naming the option and value', () => {
    expect(() => device({ maxPorts: 0 })).toThrow(ConfigError);
    expect(() => device({ maxPorts: 128 })).toThrow(/maxPorts: 128/);
    expect(() => device({ cols: 70000 })).toThrow(/cols: 70000/);
    expect(() => device({ resizeOrder: 'x' as never })).toThrow(/resizeOrder: 'x'/);
    expect(() => device({ socketPath: '' })).toThrow(/socketPath/);
  });

  it('checks ports: range, duplicates, names, single-port layout', () => {
    const d = device();
    d.addPort({ nr: 0, console: true, name: 'con' });
    expect(() => d.addPort({ nr: 3, console: false })).toThrow(/port 3: nr is not below max_nr_ports 3/);
    expect(() => d.addPort({ nr: 0, console: false })).toThrow(/port 0 already exists/);
    expect(() => d.addPort({ nr: 1, console: false, name: 'con' })).toThrow(/name 'con' is already used by port 0/);
    expect(() => d.removePort(2)).toThrow(StateError);
    const p = d.addPort({ nr: 2, console: false, name: 'x' });
    expect(d.ports().map((q) => q.nr)).toEqual([0, 2]);
    d.removePort(2);
    expect(d.port(2)).toBeUndefined();
    expect(p.write(Buffer.from('late'))).toBe(0);
    const single = createConsoleDevice({
      socketPath: join(dir, 's.sock'),
      maxPorts: 1,
      multiport: false,
      cols: 80,
      rows: 24,
      resizeOrder: 'rows-cols',
    });
    devices.push(single);
    expect(() => single.addPort({ nr: 0, console: false })).toThrow(/only port is the console/);
  });

  it('write to a port the guest has not opened takes nothing', () => {
    const d = device();
    const p = d.addPort({ nr: 1, console: false, name: 'a' });
    expect(p.guestOpen).toBe(false);
    expect(p.write(Buffer.from('hello'))).toBe(0);
    expect(p.stats()).toEqual({ bytesFromGuest: 0, bytesToGuest: 0 });
  });
});

describe('socket file', () => {
  it('is created 0600 by default, with the configured mode otherwise, and removed on close', () => {
    const d = device();
    d.listen();
    const path = join(dir, 'vu.sock');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    d.close();
    expect(existsSync(path)).toBe(false);
    const e = device({ socketPath: join(dir, 'b.sock'), socketMode: 0o660 });
    e.listen();
    expect(statSync(join(dir, 'b.sock')).mode & 0o777).toBe(0o660);
  });

  // The native listen neither connects to nor removes what is at its path: the daemon claims
  // the path first (src/sys/paths.ts: lock file, /proc/net/unix, stale socket replaced).
  it('refuses a live socket without connecting to it, and a stale one without removing it', async () => {
    const path = join(dir, 'vu.sock');
    const live = net.createServer();
    let probes = 0;
    live.on('connection', (s) => {
      probes++;
      s.destroy();
    });
    live.listen(path);
    await once(live, 'listening');
    const d = device();
    expect(() => d.listen()).toThrow(StateError);
    expect(() => d.listen()).toThrow(`socket '${path}': bind: Address already in use`);
    await new Promise((r) => setTimeout(r, 50));
    expect(probes).toBe(0);
    live.close();
    await once(live, 'close');
    // A stale socket: its listener was killed, so the file stays and nobody accepts on it.
    const killed = spawnSync(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`,
    ]);
    expect(killed.signal).toBe('SIGKILL');
    const ino = statSync(path).ino;
    expect(() => d.listen()).toThrow(/bind: Address already in use/);
    expect(statSync(path).ino).toBe(ino);
    // Once the caller removed it, listen() works.
    unlinkSync(path);
    d.listen();
    const raw = await Raw.connect(path);
    expect(await raw.u64(1)).toBeGreaterThan(0n);
    raw.end();
  });

  it('refuses a path that is not a socket, and leaves the file alone', () => {
    writeFileSync(join(dir, 'vu.sock'), 'precious');
    expect(() => device().listen()).toThrow(/bind: Address already in use/);
    expect(readFileSync(join(dir, 'vu.sock'), 'utf8')).toBe('precious');
  });
});

describe('vhost-user front door', () => {
  it('answers the handshake with the configured features, queues and config', async () => {
    const d = device();
    d.listen();
    const raw = await Raw.connect(join(dir, 'vu.sock'));
    const features = await raw.u64(1);
    for (const bit of [0, 1, 2, 28, 29, 30, 32]) expect((features >> BigInt(bit)) & 1n).toBe(1n);
    const proto = await raw.u64(15);
    for (const bit of [0, 3, 5, 9, 13, 15, 16]) expect((proto >> BigInt(bit)) & 1n).toBe(1n);
    expect(await raw.u64(17)).toBe(8n); // 2 * (3 + 1)
    const cfg = Buffer.alloc(24);
    cfg.writeUInt32LE(12, 4);
    raw.send(24, 1, cfg);
    const r = await raw.reply();
    expect(r.payload.length).toBe(24);
    expect([r.payload.readUInt16LE(12), r.payload.readUInt16LE(14), r.payload.readUInt32LE(16)]).toEqual([100, 40, 3]);
    // REPLY_ACK on a request without its own reply
    raw.send(3, 0x9);
    expect((await raw.reply()).payload.readBigUInt64LE(0)).toBe(0n);
    raw.end();
  });

  it('without multiport offers no MULTIPORT and two queues', async () => {
    const d = device({ multiport: false, maxPorts: 1 });
    d.listen();
    const raw = await Raw.connect(join(dir, 'vu.sock'));
    expect((await raw.u64(1)) & 2n).toBe(0n);
    expect(await raw.u64(17)).toBe(2n);
    raw.end();
  });

  it('serves one front-end at a time and the next after a disconnect', async () => {
    const d = device();
    d.listen();
    const path = join(dir, 'vu.sock');
    const first = await Raw.connect(path);
    await first.u64(1);
    const second = await Raw.connect(path);
    await second.closedByPeer();
    expect(d.connected).toBe(true);
    const gone = once(d, 'frontend-disconnected');
    first.end();
    await gone;
    const third = await Raw.connect(path);
    expect(await third.u64(17)).toBe(8n);
    third.end();
  });

  const malformed: [string, (raw: Raw) => void, RegExp][] = [
    ['unknown request', (r) => r.send(99, 1), /unknown request id 99/],
    ['bad version', (r) => r.send(1, 2), /GET_FEATURES: bad header flags 0x2/],
    [
      'size larger than the request carries',
      (r) => r.send(1, 1, Buffer.alloc(8), 100),
      /GET_FEATURES: payload size 100 outside 0..8/,
    ],
    [
      'size over the maximum',
      (r) => r.send(5, 1, Buffer.alloc(0), 1 << 20),
      /SET_MEM_TABLE: payload size 1048576 exceeds the maximum/,
    ],
    [
      'SET_MEM_TABLE without fds',
      (r) => r.send(5, 1, Buffer.concat([Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]), Buffer.alloc(32)])),
      /SET_MEM_TABLE: 1 regions but 0 file descriptors/,
    ],
    [
      'SET_VRING_KICK without its fd',
      (r) => r.send(12, 1, Buffer.alloc(8)),
      /SET_VRING_KICK: queue 0: needs 1 file descriptor, got 0/,
    ],
    [
      'queue index out of range',
      (r) => r.send(8, 1, Buffer.from([9, 0, 0, 0, 64, 0, 0, 0])),
      /queue index 9 out of range/,
    ],
    ['bad queue size', (r) => r.send(8, 1, Buffer.from([0, 0, 0, 0, 3, 0, 0, 0])), /size 3 is not a power of two/],
    [
      'short header then close',
      (r) => {
        r.sock.end(Buffer.from([1, 0, 0, 0, 1]));
      },
      /short header \(5 of 12 bytes\)/,
    ],
  ];
  for (const [what, send, message] of malformed) {
    it(`ends the connection on ${what}, and serves the next`, async () => {
      const d = device();
      d.listen();
      const path = join(dir, 'vu.sock');
      const raw = await Raw.connect(path);
      await raw.u64(1);
      const error = once(d, 'device-error');
      send(raw);
      const [msg] = (await error) as [string];
      expect(msg).toMatch(message);
      await raw.closedByPeer();
      const next = await Raw.connect(path);
      expect(await next.u64(17)).toBe(8n);
      next.end();
    });
  }

  it('answers an unknown request that asks for an ack with a failure ack and goes on', async () => {
    const d = device();
    d.listen();
    const raw = await Raw.connect(join(dir, 'vu.sock'));
    raw.send(99, 0x9);
    const r = await raw.reply();
    expect(r.payload.readBigUInt64LE(0)).toBe(1n);
    expect(await raw.u64(17)).toBe(8n);
    raw.end();
  });

  it('GET_CONFIG outside the config gets an empty (failure) reply', async () => {
    const d = device();
    d.listen();
    const raw = await Raw.connect(join(dir, 'vu.sock'));
    const cfg = Buffer.alloc(16);
    cfg.writeUInt32LE(10, 0);
    cfg.writeUInt32LE(4, 4);
    raw.send(24, 1, cfg);
    expect((await raw.reply()).payload.length).toBe(0);
    raw.end();
  });
});
