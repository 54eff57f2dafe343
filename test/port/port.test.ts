import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Chardev } from '../../src/chardev/chardev.js';
import type { PtyChardev } from '../../src/chardev/pty.js';
import type { RingbufChardev } from '../../src/chardev/ringbuf.js';
import { Hub } from '../../src/hub/hub.js';
import { Port } from '../../src/port/port.js';
import * as libc from '../../src/sys/libc.js';
import { defer, next, readAvailable, socketServer, start, tmpdir, until } from '../chardev/helpers.js';
import { DevicePortDouble } from './device-port-double.js';

function hubOf(id: string, members: Chardev[]): Hub {
  const hub = new Hub(id);
  defer(() => hub.close());
  for (const m of members) hub.attach(m);
  return hub;
}

function wire(device: DevicePortDouble, hub: Hub, onResize?: (cols: number, rows: number) => void): Port {
  const port = new Port(device, hub, { onResize });
  defer(() => port.close());
  return port;
}

function openPeer(p: string): number {
  const fd = fs.openSync(p, fs.constants.O_RDWR | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK);
  defer(() => fs.closeSync(fd));
  return fd;
}

describe('console port on a hub of pty + unix socket + file', () => {
  it('fans out identically, takes input from pty and socket, and a stalled socket stalls nobody', async () => {
    const dir = tmpdir();
    const logPath = path.join(dir, 'console.log');
    const pty = await start<PtyChardev>('pty', 'pty0', { path: path.join(dir, 'console.pty') });
    const sock = await socketServer('sock0', { buffer: '64K' });
    const file = await start('file', 'log0', { path: logPath });
    const hub = hubOf('hub0', [pty, sock.chardev, file]);
    const device = new DevicePortDouble(0, 'org.example.console.0', true);
    const port = wire(device, hub);

    // A console port is host-open from the start, client or not (QEMU keeps it so for logs).
    expect(device.hostOpenCalls).toEqual([true]);

    const peer = openPeer(path.join(dir, 'console.pty'));
    await next(pty, 'connected');
    const client = await sock.dial();

    device.guestWrite('login: ');
    let onPty = Buffer.alloc(0);
    await until(
      () => (onPty = Buffer.concat([onPty, readAvailable(peer)])).length === 7 && client.bytes().length === 7,
      'prompt everywhere',
    );
    expect(onPty.toString()).toBe('login: ');
    expect(client.bytes().toString()).toBe('login: ');

    fs.writeSync(peer, 'root\r');
    await until(() => device.received().toString() === 'root\r', 'pty input');
    client.write('ls\r');
    await until(() => device.received().toString() === 'root\rls\r', 'socket input');

    // The socket client stops reading; the guest keeps printing a lot. The pty's reader keeps
    // up (it reads whenever the event loop turns), the socket's does not.
    client.pause();
    const reader = setInterval(() => (onPty = Buffer.concat([onPty, readAvailable(peer)])), 1);
    defer(() => clearInterval(reader));
    const lines: Buffer[] = [];
    for (let i = 0; i < 40_000; i++) {
      const line = Buffer.from(`[${String(i).padStart(6, '0')}] kernel: some boot message\n`);
      lines.push(line);
      expect(device.guestWrite(line)).toBe(true); // never refused: the guest never stalls
      if (i % 100 === 0) await new Promise((r) => setTimeout(r, 0));
    }
    const all = Buffer.concat([Buffer.from('login: '), ...lines]);
    await until(() => onPty.length >= all.length, 'pty caught up');
    expect(onPty.equals(all)).toBe(true);
    await until(() => fs.statSync(logPath).size === all.length, 'file caught up');
    expect(fs.readFileSync(logPath).equals(all)).toBe(true);
    expect(device.pauseCalls).toEqual([]);

    const stats = port.stats();
    const s = stats.hub.members.find((m) => m.id === 'sock0')!;
    expect(s.policy).toBe('drop');
    expect(s.drops).toBeGreaterThan(0);
    expect(stats.hub.members.find((m) => m.id === 'pty0')!.drops).toBe(0);
    expect(stats.hub.members.find((m) => m.id === 'log0')!.drops).toBe(0);
    expect(stats.bytesFromGuest).toBe(all.length);
    expect(stats.hub.bytesToGuest).toBe(8);
  });

  it("follows a pty member's window size", async () => {
    const pty = await start<PtyChardev>('pty', 'pty1');
    const hub = hubOf('hub1', [pty]);
    const sizes: [number, number][] = [];
    wire(new DevicePortDouble(0, 'console', true), hub, (cols, rows) => sizes.push([cols, rows]));
    const peer = openPeer(pty.slavePath);
    libc.setWinSize(peer, { cols: 120, rows: 40 });
    await until(() => sizes.length > 0 && sizes.at(-1)![0] === 120, 'size reported');
    expect(sizes.at(-1)).toEqual([120, 40]);
  });
});

describe('console size from a pty attached later', () => {
  it('takes the size of a pty whose terminal was already open', async () => {
    const pty = await start<PtyChardev>('pty', 'pty2');
    const peer = openPeer(pty.slavePath);
    libc.setWinSize(peer, { cols: 90, rows: 33 });
    await until(() => pty.windowSize?.cols === 90, 'pty sees the size');
    const hub = hubOf('hub-late', []);
    const sizes: [number, number][] = [];
    wire(new DevicePortDouble(0, 'console', true), hub, (cols, rows) => sizes.push([cols, rows]));
    hub.attach(pty);
    expect(sizes).toEqual([[90, 33]]);
  });
});

describe('generic port', () => {
  it('host-open follows the hub', async () => {
    const s = await socketServer('agent');
    const device = new DevicePortDouble(1, 'org.qemu.guest_agent.0', false, { guestOpen: true });
    wire(device, hubOf('hub2', [s.chardev]));
    expect(device.hostOpen).toBe(false);
    const c = await s.dial();
    await until(() => device.hostOpen, 'host open');
    c.destroy();
    await until(() => !device.hostOpen, 'host closed');
    expect(device.hostOpenCalls).toEqual([false, true, false]);
  });

  it('a stalled lossless member pauses the guest output and loses nothing', async () => {
    const s = await socketServer('bulk');
    const device = new DevicePortDouble(2, 'bulk', false, { guestOpen: true });
    wire(device, hubOf('hub3', [s.chardev]));
    const c = await s.dial();
    c.pause();
    const sent: Buffer[] = [];
    for (let i = 0; device.guestWrite(Buffer.alloc(8192, i % 256)); i++) {
      sent.push(Buffer.alloc(8192, i % 256));
      await new Promise((r) => setImmediate(r));
    }
    expect(device.outputPaused).toBe(true);
    c.resume();
    await until(() => !device.outputPaused, 'output resumed');
    const all = Buffer.concat(sent);
    await until(() => c.bytes().length === all.length, 'everything delivered');
    expect(c.bytes().equals(all)).toBe(true);
  });

  it('input waits for rx buffers, with the members paused meanwhile', async () => {
    const s = await socketServer('in');
    const device = new DevicePortDouble(3, 'in', false, { guestOpen: true, rxRoom: 100 });
    wire(device, hubOf('hub4', [s.chardev]));
    const c = await s.dial();
    const data = Buffer.alloc(200_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) % 256;
    c.write(data);
    await until(() => device.received().length === 100, 'first rx buffers filled');
    await until(() => s.chardev.inputPaused, 'member paused');
    while (device.received().length < data.length) {
      device.postRx(4096);
      await until(() => device.rxRoom === 0 || device.received().length === data.length, 'rx buffers used');
    }
    expect(device.received().equals(data)).toBe(true);
  });

  it('holds input until the guest opens the port', async () => {
    const r = await start<RingbufChardev>('ringbuf', 'early');
    const device = new DevicePortDouble(4, 'late-opener', false, { guestOpen: false });
    const port = wire(device, hubOf('hub5', [r]));
    r.input(Buffer.from('hello'));
    expect(device.received().length).toBe(0);
    expect(port.stats().pendingToGuest).toBe(5);
    device.setGuestOpen(true);
    expect(device.received().toString()).toBe('hello');
  });

  it('close() unwires the hub from the device', async () => {
    const r = await start<RingbufChardev>('ringbuf', 'r9');
    const hub = hubOf('hub6', [r]);
    const device = new DevicePortDouble(5, 'p', false, { guestOpen: true });
    const port = wire(device, hub);
    device.guestWrite('before');
    port.close();
    device.guestWrite('after');
    expect(r.read(100).toString()).toBe('before');
    // The hub is free for another port.
    wire(new DevicePortDouble(6, 'q', false), hub);
  });
});
