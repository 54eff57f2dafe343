// Bytes through the real daemon: guest side = the test front-end's Linux driver model,
// host side = a client of the daemon's unix-socket chardev. Rates are printed, never asserted.
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { ConsoleDriver, ConsolePort } from '../frontend/index.js';
import { until, type HostClient } from '../helpers/daemon.js';
import { Vm } from '../helpers/vm.js';

let vm: Vm | undefined;
afterEach(async () => {
  await vm?.dispose();
  vm = undefined;
});

const MiB = 1024 * 1024;
const settled = (p: ConsolePort) => (p.id === 0 ? p.console : p.name !== undefined);

function rate(label: string, bytes: number, t0: bigint): void {
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(
    `[rate] ${label}: ${(bytes / MiB).toFixed(2)} MiB in ${(s * 1000).toFixed(0)} ms = ${(bytes / MiB / s).toFixed(1)} MiB/s`,
  );
}

/** A VM with the guest's port 1 open and its host client connected. */
async function openedPort(
  o: Parameters<Vm['driver']>[0] = {},
): Promise<{ d: ConsoleDriver; p: ConsolePort; h: HostClient }> {
  vm = await Vm.start();
  const h = await vm.host('c1');
  const d = await vm.driver(o);
  await d.waitPorts(3, settled);
  const p = d.port(1);
  await p.open();
  await d.waitFor(() => p.hostOpen, 'port 1 host-open');
  return { d, p, h };
}

describe('data on a named port', () => {
  it('1 MiB guest->host in 32 KiB buffers arrives byte-exact', async () => {
    const { d, p, h } = await openedPort();
    const data = randomBytes(MiB);
    const t0 = process.hrtime.bigint();
    const [, got] = await Promise.all([p.write(data, { chunkSize: 32 * 1024 }), h.read(MiB)]);
    rate('guest->host 32 KiB buffers', MiB, t0);
    expect(got.equals(data)).toBe(true);
    expect(d.problems()).toEqual([]);
  });

  it('1 MiB host->guest into 4 KiB rx buffers arrives byte-exact', async () => {
    const { d, p, h } = await openedPort();
    const data = randomBytes(MiB);
    const t0 = process.hrtime.bigint();
    const [, got] = await Promise.all([h.write(data), p.read(MiB)]);
    rate('host->guest 4 KiB rx buffers', MiB, t0);
    expect(got.equals(data)).toBe(true);
    expect(p.discardedBytes).toBe(0);
    expect(d.problems()).toEqual([]);
  });

  it('1 MiB host->guest into 32 KiB rx buffers arrives byte-exact', async () => {
    const { d, p, h } = await openedPort({ rxBufSize: 32 * 1024 });
    const data = randomBytes(MiB);
    const t0 = process.hrtime.bigint();
    const [, got] = await Promise.all([h.write(data), p.read(MiB)]);
    rate('host->guest 32 KiB rx buffers', MiB, t0);
    expect(got.equals(data)).toBe(true);
    expect(d.problems()).toEqual([]);
  });

  it('1 MiB guest->host in 1-byte buffers arrives byte-exact', async () => {
    const { d, p, h } = await openedPort();
    const data = randomBytes(MiB);
    const t0 = process.hrtime.bigint();
    const [, got] = await Promise.all([p.write(data, { chunkSize: 1 }), h.read(MiB, 110_000)]);
    rate('guest->host 1-byte buffers', MiB, t0);
    expect(got.equals(data)).toBe(true);
    expect(d.problems()).toEqual([]);
  }, 120_000);

  it('1 MiB host->guest into 1-byte rx buffers arrives byte-exact', async () => {
    const { d, p, h } = await openedPort({ rxBufSize: 1 });
    const data = randomBytes(MiB);
    const t0 = process.hrtime.bigint();
    const [, got] = await Promise.all([h.write(data), p.read(MiB, 110_000)]);
    rate('host->guest 1-byte rx buffers', MiB, t0);
    expect(got.equals(data)).toBe(true);
    expect(d.problems()).toEqual([]);
  }, 120_000);

  it('both directions at once, 1 MiB each', async () => {
    const { d, p, h } = await openedPort();
    const out = randomBytes(MiB);
    const inb = randomBytes(MiB);
    const [, , gotOut, gotIn] = await Promise.all([p.write(out), h.write(inb), h.read(MiB), p.read(MiB)]);
    expect(gotOut.equals(out)).toBe(true);
    expect(gotIn.equals(inb)).toBe(true);
    expect(d.problems()).toEqual([]);
  });
});

describe('back-pressure', () => {
  it('host->guest data waits while the guest posts no rx buffers, then arrives complete', async () => {
    const { d, p, h } = await openedPort({ rxFill: 0, rxRepost: false });
    const data = randomBytes(256 * 1024);
    // More than the socket buffers hold: the write completes only once the guest takes data.
    const writing = h.write(data);
    // Give the daemon every chance to push (it has nowhere to put the bytes).
    await new Promise((r) => setTimeout(r, 300));
    expect(p.receivedBytes).toBe(0);
    expect(p.discardedBytes).toBe(0);
    // A trickle of small buffers first, then the normal flow.
    expect(p.postRx(3, 100)).toBe(3);
    await d.waitFor(() => p.receivedBytes === 300, '300 bytes into three 100-byte buffers');
    p.rxRepost = true;
    p.postRx(64);
    const got = await p.read(data.length);
    await writing;
    expect(got.equals(data)).toBe(true);
    expect(d.problems()).toEqual([]);
  });

  it('host data for a port the guest has not opened is held, not lost, until it opens', async () => {
    vm = await Vm.start();
    const h = await vm.host('c2');
    const d = await vm.driver();
    await d.waitPorts(3, settled);
    const p = d.port(2);
    await d.waitFor(() => p.hostOpen, 'port 2 host-open');
    const data = randomBytes(64 * 1024);
    const writing = h.write(data);
    await new Promise((r) => setTimeout(r, 300));
    // Linux would throw away data that arrives for a closed port: the daemon must not send it.
    expect(p.discardedBytes).toBe(0);
    await p.open();
    expect((await p.read(data.length)).equals(data)).toBe(true);
    await writing;
    expect(p.discardedBytes).toBe(0);
    expect(d.problems()).toEqual([]);
  });

  it('a host client that leaves while its input waits for guest buffers is noticed (PORT_OPEN 0, fd released)', async () => {
    const { d, p, h } = await openedPort({ rxFill: 0, rxRepost: false });
    const daemon = vm!.daemon;
    const sent = randomBytes(1024 * 1024);
    void h.write(sent).catch(() => {}); // more than the socket buffers hold: never completes
    await new Promise((r) => setTimeout(r, 200));
    const fdsConnected = daemon.fdCount();
    h.close();
    // Let the daemon drain what it already has (a drain-before-close policy is fine too).
    p.rxRepost = true;
    p.postRx(64);
    await d.waitFor(() => !p.hostOpen, 'PORT_OPEN 0 after the host client left');
    await until(() => daemon.fdCount() === fdsConnected - 1, "the daemon to close the departed client's socket");
    // Whatever reached the guest is a prefix of what the client sent: nothing made up or reordered.
    const got = p.take();
    expect(got.equals(sent.subarray(0, got.length))).toBe(true);
    expect(d.problems()).toEqual([]);
  });

  it('a host client that leaves while the guest takes nothing frees the slot for the next client', async () => {
    const { d, p, h } = await openedPort({ rxFill: 0, rxRepost: false });
    void h.write(randomBytes(1024 * 1024)).catch(() => {}); // fills the socket: input is paused
    await new Promise((r) => setTimeout(r, 200));
    h.close();
    // No rx buffer is ever posted: the daemon must notice the hang-up without reading.
    await d.waitFor(() => !p.hostOpen, 'PORT_OPEN 0 after the host client left, no rx buffers posted');
    const h2 = await vm!.host('c1');
    await d.waitFor(() => p.hostOpen, 'host-open again with the next client');
    await p.write(Buffer.from('hello'));
    expect((await h2.read(5)).toString()).toBe('hello');
    expect(d.problems()).toEqual([]);
  });

  it('guest->host data on a generic port waits for a slow host reader and none is lost', async () => {
    const { d, p, h } = await openedPort();
    h.sock.pause();
    const data = randomBytes(8 * MiB);
    const writing = p.write(data);
    await new Promise((r) => setTimeout(r, 300));
    h.sock.resume();
    const [, got] = await Promise.all([writing, h.read(data.length)]);
    expect(got.equals(data)).toBe(true);
    expect(d.problems()).toEqual([]);
  });
});

describe('console port', () => {
  it('console tx is never held when no host backend is connected', async () => {
    vm = await Vm.start();
    const d = await vm.driver();
    await d.waitPorts(3, settled);
    const c = d.port(0);
    expect(c.console).toBe(true);
    // Each buffer is busy-waited like put_chars(): this only finishes if every one is returned.
    await c.write(randomBytes(MiB));
    expect(d.fe.queues[c.txQueue]!.inFlight).toBe(0);
    expect(d.problems()).toEqual([]);
  });

  it('console tx is never held when the host client does not read', async () => {
    vm = await Vm.start();
    const h = await vm.host('c0', { paused: true });
    const d = await vm.driver();
    await d.waitPorts(3, settled);
    const c = d.port(0);
    await d.waitFor(() => c.hostOpen, 'console host-open');
    await c.write(randomBytes(8 * MiB));
    expect(d.fe.queues[c.txQueue]!.inFlight).toBe(0);
    h.close();
    expect(d.problems()).toEqual([]);
  });

  it('console output reaches a connected host client in order', async () => {
    vm = await Vm.start();
    const h = await vm.host('c0');
    const d = await vm.driver();
    await d.waitPorts(3, settled);
    const c = d.port(0);
    await d.waitFor(() => c.hostOpen, 'console host-open');
    const lines = Buffer.from(Array.from({ length: 200 }, (_, i) => `line ${i}\r\n`).join(''));
    await c.write(lines, { chunkSize: 17 });
    expect((await h.read(lines.length)).equals(lines)).toBe(true);
  });
});

describe('guest open/close', () => {
  it('reach the daemon: VSERPORT_CHANGE events and guest-open in query-ports', async () => {
    vm = await Vm.start({ control: true });
    const qmp = await vm.qmp();
    const h = await vm.host('c1');
    const d = await vm.driver();
    await d.waitPorts(3, settled);
    const p = d.port(1);
    const info = async () =>
      ((await qmp.execute('query-ports')) as { nr: number; id: string; 'guest-open': boolean }[]).find(
        (x) => x.nr === 1,
      )!;
    const before = await info();
    expect(before['guest-open']).toBe(false);
    let mark = qmp.events.length;
    await p.open();
    await qmp.waitEvent(
      (e) => e.event === 'VSERPORT_CHANGE' && e.data.id === before.id && e.data.open === true,
      `VSERPORT_CHANGE ${before.id} open`,
      mark,
    );
    expect((await info())['guest-open']).toBe(true);
    mark = qmp.events.length;
    await p.close();
    await qmp.waitEvent(
      (e) => e.event === 'VSERPORT_CHANGE' && e.data.id === before.id && e.data.open === false,
      `VSERPORT_CHANGE ${before.id} closed`,
      mark,
    );
    expect((await info())['guest-open']).toBe(false);
    h.close();
    expect(d.problems()).toEqual([]);
  });
});
