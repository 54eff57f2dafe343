import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { SocketChardev } from '../../src/chardev/socket.js';
import { collectInput, defer, next, start, tmpdir, until } from './helpers.js';

/** A client socket that records what it receives; destroyed after the test. */
async function dial(to: string | net.AddressInfo): Promise<net.Socket & { got: () => string }> {
  const sock = typeof to === 'string' ? net.connect(to) : net.connect(to.port, '127.0.0.1');
  defer(() => sock.destroy());
  const chunks: Buffer[] = [];
  sock.on('data', (b: Buffer) => chunks.push(b));
  sock.on('error', () => {});
  await next(sock, 'connect');
  return Object.assign(sock, { got: () => Buffer.concat(chunks).toString('latin1') });
}

describe('socket chardev, unix server', () => {
  it('serves one client at a time, then the next one', async () => {
    const p = path.join(tmpdir(), 'c.sock');
    const s = await start<SocketChardev>('socket', 's0', { path: p, server: 'on', wait: 'off' });
    expect((fs.statSync(p).mode & 0o777).toString(8)).toBe('600');
    expect(s.connected).toBe(false);
    const input = collectInput(s);

    const a = await dial(p);
    await until(() => s.connected, 'first client');
    s.write(Buffer.from('to-a'));
    a.write('from-a');
    await until(() => a.got() === 'to-a' && input.text() === 'from-a', 'exchange with a');

    // A second client while the first is connected is closed at once.
    const b = await dial(p);
    await next(b, 'close');
    expect(s.connected).toBe(true);

    a.destroy();
    await next(s, 'disconnected');
    const c = await dial(p);
    await until(() => s.connected, 'third client');
    s.write(Buffer.from('to-c'));
    await until(() => c.got() === 'to-c', 'c gets output');
    expect(a.got()).toBe('to-a');

    await s.close();
    expect(fs.existsSync(p)).toBe(false);
  });

  it('wait=on: start() resolves only once a client is there', async () => {
    const p = path.join(tmpdir(), 'w.sock');
    const { createChardev } = await import('./create.js');
    const s = createChardev('socket', 'sw', { path: p, server: 'on' }); // wait defaults to on, as in QEMU
    defer(() => s.close());
    let started = false;
    const starting = s.start().then(() => (started = true));
    await until(() => fs.existsSync(p), 'socket file');
    expect(started).toBe(false);
    await dial(p);
    await starting;
    expect(s.connected).toBe(true);
  });

  it('refuses a path that is not a socket', async () => {
    const p = path.join(tmpdir(), 'plain');
    fs.writeFileSync(p, '');
    await expect(start('socket', 'sx', { path: p, server: 'on', wait: 'off' })).rejects.toThrow(
      `chardev 'sx': path '${p}' exists and is not a socket`,
    );
  });

  it('says would-block when the client does not read, and writable when it does', async () => {
    const p = path.join(tmpdir(), 'b.sock');
    const s = await start<SocketChardev>('socket', 'sb', { path: p, server: 'on', wait: 'off' });
    const client = await dial(p);
    client.pause();
    await until(() => s.connected, 'client');
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let taken = 0;
    let short = false;
    for (let i = 0; i < 10_000 && !short; i++) {
      const n = s.write(chunk);
      taken += n;
      short = n < chunk.length; // may be 0: the chardev takes up to its stream's mark (16 KiB on Node 20, 64 KiB on 22+)
      await new Promise((r) => setImmediate(r)); // let the kernel buffers fill
    }
    expect(short).toBe(true); // a short write happened
    const writable = next(s, 'writable');
    client.resume();
    await writable;
    await until(() => client.got().length === taken, 'client reads everything taken');
  });
});

describe('socket chardev, tcp', () => {
  it('server on 127.0.0.1 with nodelay and telnet framing', async () => {
    const s = await start<SocketChardev>('socket', 't0', {
      host: '127.0.0.1',
      port: '0',
      server: 'on',
      wait: 'off',
      nodelay: 'on',
      telnet: 'on',
    });
    const addr = s.address() as net.AddressInfo;
    expect(addr.port).toBeGreaterThan(0);
    const input = collectInput(s);
    const c = await dial(addr);
    // The greeting asks for server echo and character mode.
    await until(() => c.got().startsWith('\xff\xfb\x01\xff\xfb\x03'), 'telnet greeting');
    const greeting = c.got().length;
    // Negotiation from the client is stripped; a doubled IAC is one 0xff byte.
    c.write(Buffer.from([0xff, 0xfd, 0x03, 0x61, 0xff, 0xff, 0x62, 0xff, 0xfa, 0x1f, 0, 80, 0xff, 0xf0, 0x63]));
    await until(() => input.bytes().length === 4, 'filtered input');
    expect([...input.bytes()]).toEqual([0x61, 0xff, 0x62, 0x63]);
    // Guest output has 0xff escaped.
    expect(s.write(Buffer.from([0x41, 0xff]))).toBe(2);
    await until(() => c.got().length === greeting + 3, 'escaped output');
    expect(c.got().slice(greeting)).toBe('A\xff\xff');
  });

  it('client reconnects to a server that comes back', async () => {
    const conns: net.Socket[] = [];
    const server = net.createServer((c) => conns.push(c));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    defer(() => new Promise((r) => server.close(r)));
    const port = (server.address() as net.AddressInfo).port;
    const s = await start<SocketChardev>('socket', 'tc', {
      host: '127.0.0.1',
      port: String(port),
      'reconnect-ms': '50',
    });
    await until(() => s.connected && conns.length === 1, 'first connection');
    const input = collectInput(s);
    conns[0]!.write('one');
    await until(() => input.text() === 'one', 'input one');

    conns[0]!.destroy();
    await next(s, 'disconnected');
    await next(s, 'connected'); // after the reconnect delay
    expect(conns.length).toBe(2);
    const got: Buffer[] = [];
    conns[1]!.on('data', (b: Buffer) => got.push(b));
    s.write(Buffer.from('again'));
    await until(() => Buffer.concat(got).toString() === 'again', 'output on the new connection');
  });

  it('client without reconnect fails start() naming the address', async () => {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    await new Promise((r) => server.close(r)); // nothing listens there now
    await expect(start('socket', 'tf', { host: '127.0.0.1', port: String(port) })).rejects.toThrow(
      new RegExp(`chardev 'tf': cannot connect to tcp:127.0.0.1:${port}`),
    );
  });
});
