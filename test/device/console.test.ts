// The console device end to end in one process: the device (addon + TS face) against the
// independent test front-end (QEMU + Linux driver model, real memfd memory and eventfds).
// Covers what the device layer itself promises: discovery, guest open/close events, both data
// directions with back-pressure ('writable'), paused output, run-time ports, resize order,
// single-port mode with config-change notification, and reconnect.
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createConsoleDevice } from '../../src/device/device.js';
import type { ConsoleDevice, DeviceOptions, DevicePort } from '../../src/device/types.js';
import { BAD_ID, ConsoleDriver, Ctrl, type ConsoleDriverOptions } from '../frontend/index.js';

let dir: string;
const cleanups: (() => Promise<void> | void)[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'vhc-console-'));
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
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
  cleanups.push(() => d.close());
  return d;
}

const closed = new WeakSet<ConsoleDriver>();

async function driver(d: ConsoleDevice, extra: Partial<ConsoleDriverOptions> = {}): Promise<ConsoleDriver> {
  const multiport = d.options.multiport ?? true;
  const drv = await ConsoleDriver.start({
    socketPath: d.options.socketPath,
    numQueues: multiport ? 2 * (d.options.maxPorts + 1) : 2,
    timeoutMs: 5000,
    ...extra,
  });
  cleanups.push(() => closeDriver(drv));
  return drv;
}

/** Closes a driver once (the disconnect test closes one itself). */
async function closeDriver(drv: ConsoleDriver): Promise<void> {
  if (closed.has(drv)) return;
  closed.add(drv);
  await drv.close();
}

/** Waits for a host-side condition (the driver's waitFor only wakes on guest-side events). */
async function until(pred: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (pred()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Host side of a port: collects guest output. */
function collect(p: DevicePort): { bytes: () => Buffer; events: number } {
  const chunks: Buffer[] = [];
  const r = { bytes: () => Buffer.concat(chunks), events: 0 };
  p.on('data', (b: Buffer) => {
    chunks.push(b);
    r.events++;
  });
  return r;
}

/** Host -> guest with back-pressure: write what fits, continue on 'writable'. */
function pump(p: DevicePort, data: Buffer): Promise<void> {
  let at = 0;
  return new Promise((resolve) => {
    const go = () => {
      at += p.write(data.subarray(at));
      if (at === data.length) {
        p.off('writable', go);
        resolve();
      }
    };
    p.on('writable', go);
    go();
  });
}

function setup3(d: ConsoleDevice) {
  const con = d.addPort({ nr: 0, console: true, name: 'org.example.console.0' });
  const a = d.addPort({ nr: 1, console: false, name: 'org.qemu.guest_agent.0' });
  const b = d.addPort({ nr: 2, console: false });
  a.setHostOpen(true);
  return { con, a, b };
}

describe('console device with a multiport driver', () => {
  it('announces its ports with names, console flag and host-open state', async () => {
    const d = device();
    const { con, a, b } = setup3(d);
    const ready: number[] = [];
    for (const p of [con, a, b]) p.on('ready', () => ready.push(p.nr));
    const driverReady = once(d, 'driver-ready');
    const consoleOpen = once(con, 'guest-open');
    d.listen();
    const drv = await driver(d);
    await driverReady;
    const ports = await drv.waitPorts(3, (p) => p.id !== 0 || p.resizes.length > 0);
    expect(ports.map((p) => [p.id, p.name, p.console, p.hostOpen])).toEqual([
      [0, 'org.example.console.0', true, false],
      [1, 'org.qemu.guest_agent.0', false, true],
      [2, undefined, false, false],
    ]);
    expect(ports[0]!.resizes).toEqual([[40, 100]]); // rows first by default
    expect(await consoleOpen).toEqual([true]);
    expect(con.guestOpen).toBe(true);
    expect(ready.sort()).toEqual([0, 1, 2]);
    expect(drv.problems()).toEqual([]);
  });

  it('sends RESIZE in the configured order, at PORT_READY and on a size change', async () => {
    const d = device({ resizeOrder: 'cols-rows' });
    d.addPort({ nr: 0, console: true });
    d.listen();
    const drv = await driver(d);
    const [p0] = await drv.waitPorts(1, (p) => p.resizes.length > 0);
    d.setConsoleSize(132, 43);
    await drv.waitFor(() => p0!.resizes.length === 2, 'second RESIZE');
    expect(p0!.resizes).toEqual([
      [100, 40],
      [132, 43],
    ]);
  });

  it('reports guest open/close and moves 1 MiB both ways byte-exact', async () => {
    const d = device();
    const { a } = setup3(d);
    const opens: boolean[] = [];
    a.on('guest-open', (o: boolean) => opens.push(o));
    const out = collect(a);
    d.listen();
    const drv = await driver(d);
    await drv.waitPorts(3);
    const port = drv.port(1);
    expect(a.write(Buffer.from('too early'))).toBe(0); // guest has not opened it
    await port.open();
    await until(() => a.guestOpen, 'guest-open on the host');
    const up = randomBytes(1 << 20);
    await port.write(up);
    await until(() => out.bytes().length === up.length, 'guest data on the host');
    expect(out.bytes().equals(up)).toBe(true);
    expect(out.events).toBeLessThan(up.length / 32768 + 1); // batched, not per buffer
    const down = randomBytes(1 << 20);
    await pump(a, down);
    expect((await port.read(down.length)).equals(down)).toBe(true);
    expect(a.stats()).toEqual({ bytesFromGuest: up.length, bytesToGuest: down.length });
    await port.close();
    await until(() => !a.guestOpen, 'guest close on the host');
    expect(opens).toEqual([true, false]);
    expect(drv.problems()).toEqual([]);
  });

  it('holds host data until the guest posts rx buffers, then signals writable', async () => {
    const d = device();
    const { a } = setup3(d);
    d.listen();
    const drv = await driver(d, { rxFill: 0 });
    await drv.waitPorts(3);
    const port = drv.port(1);
    await port.open();
    await until(() => a.guestOpen, 'guest-open');
    const data = randomBytes(64 * 1024);
    expect(a.write(data)).toBe(0);
    const done = pump(a, data);
    port.postRx(16); // 16 x 4 KiB: the whole message, in pieces as buffers come back
    await done;
    expect((await port.read(data.length)).equals(data)).toBe(true);
  });

  it('leaves a paused generic port undrained but never holds the console', async () => {
    const d = device();
    const { con, a } = setup3(d);
    const aOut = collect(a);
    const conOut = collect(con);
    d.listen();
    const drv = await driver(d);
    await drv.waitPorts(3);
    await drv.port(1).open();
    a.setOutputPaused(true);
    con.setOutputPaused(true); // ignored for the console
    const pending = drv.port(1).write(Buffer.from('held back'));
    await drv.port(0).write(Buffer.from('console output')); // spins until the device returns it
    expect(conOut.bytes().toString()).toBe('console output');
    expect(aOut.events).toBe(0);
    a.setOutputPaused(false);
    await pending;
    await until(() => aOut.bytes().length === 9, 'resumed output');
    expect(aOut.bytes().toString()).toBe('held back');
  });

  it('adds and removes ports at run time', async () => {
    const d = device();
    d.addPort({ nr: 0, console: true });
    d.listen();
    const drv = await driver(d);
    await drv.waitPorts(1);
    const late = d.addPort({ nr: 2, console: false, name: 'late' });
    const ready = once(late, 'ready');
    await drv.waitFor(() => drv.ports.get(2)?.name === 'late', 'run-time port');
    await ready;
    d.removePort(2);
    await drv.waitFor(() => drv.ports.get(2)?.removed ?? !drv.ports.has(2), 'port removal');
    expect(d.ports().map((p) => p.nr)).toEqual([0]);
  });

  it('starts the ports over when the driver sends DEVICE_READY again (guest reboot)', async () => {
    const d = device();
    const { a } = setup3(d);
    d.listen();
    const drv = await driver(d);
    await drv.waitPorts(3);
    await drv.port(1).open();
    await until(() => a.guestOpen, 'guest-open');
    const closedAgain = once(a, 'guest-open');
    const portAdds = () => drv.controlLog.filter((m) => m.event === Ctrl.PORT_ADD && m.id === 1).length;
    await drv.sendControl(BAD_ID, Ctrl.DEVICE_READY, 1);
    expect(await closedAgain).toEqual([false]);
    await drv.waitFor(() => portAdds() === 2, 'PORT_ADD again');
    expect(a.write(Buffer.from('stale'))).toBe(0); // not open on the new driver's side
  });

  it('reports a disconnect, closes guest-open ports, and serves the next front-end', async () => {
    const d = device();
    const { con, a } = setup3(d);
    d.listen();
    const first = await driver(d);
    await first.waitPorts(3);
    await first.port(1).open();
    await until(() => a.guestOpen, 'guest-open');
    const gone = once(d, 'frontend-disconnected');
    await closeDriver(first);
    await gone;
    expect([d.connected, a.guestOpen, con.guestOpen]).toEqual([false, false, false]);
    const second = await driver(d);
    await second.waitPorts(3);
    await second.port(1).open();
    await until(() => a.guestOpen, 'guest-open again');
    await pump(a, Buffer.from('hello again'));
    expect((await second.port(1).read(11)).toString()).toBe('hello again');
  });
});

describe('console device with a single-port driver', () => {
  it('serves port 0 as the console and notifies size changes through config', async () => {
    const d = device({ multiport: false, maxPorts: 1 });
    const con = d.addPort({ nr: 0, console: true });
    const out = collect(con);
    d.listen();
    const drv = await driver(d);
    expect(drv.multiport).toBe(false);
    expect([drv.config.cols, drv.config.rows]).toEqual([100, 40]);
    await until(() => con.guestOpen, 'console up');
    await drv.port(0).write(Buffer.from('boot log'));
    expect(out.bytes().toString()).toBe('boot log');
    await pump(con, Buffer.from('login: '));
    expect((await drv.port(0).read(7)).toString()).toBe('login: ');
    d.setConsoleSize(120, 50);
    await until(() => drv.fe.backendMessages.length > 0, 'CONFIG_CHANGE_MSG');
    expect(drv.fe.backendMessages[0]!.request).toBe(2);
    const cfg = await drv.fe.getConfig(12);
    expect([cfg.readUInt16LE(0), cfg.readUInt16LE(2)]).toEqual([120, 50]);
  });
});
