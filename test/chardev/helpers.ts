// Shared by the chardev, hub and port tests: temporary directories, starting chardevs from
// QEMU-style options, and waiting for conditions without asserting on time.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { EventEmitter } from 'node:events';
import { afterEach } from 'vitest';
import type { Chardev } from '../../src/chardev/chardev.js';
import { createChardev } from './create.js';
import type { SocketChardev } from '../../src/chardev/socket.js';
import { setLogLevel } from '../../src/log.js';

setLogLevel(process.env.VHOST_CONSOLE_LOG === undefined ? 'warn' : (process.env.VHOST_CONSOLE_LOG as 'info'));

const cleanups: (() => unknown)[] = [];

afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

/** Run `f` after the current test (in reverse order of registration). */
export function defer(f: () => unknown): void {
  cleanups.push(f);
}

export function tmpdir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhc-chardev-'));
  defer(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Create and start a chardev; it is closed after the test. */
export async function start<T extends Chardev = Chardev>(
  backend: string,
  id: string,
  opts: Record<string, string> = {},
): Promise<T> {
  const c = createChardev(backend, id, opts) as T;
  defer(() => c.close());
  await c.start();
  return c;
}

/** Wait until `cond()` holds, checking on every turn of the event loop (no deadline: vitest's timeout is the judge). */
export async function until(cond: () => boolean, what = 'condition'): Promise<void> {
  for (let i = 0; !cond(); i++) {
    await new Promise((r) => setTimeout(r, i < 50 ? 1 : 10));
    if (i > 20_000) throw new Error(`gave up waiting for ${what}`);
  }
}

/** Wait for one event. */
export function next(emitter: EventEmitter, event: string): Promise<unknown[]> {
  return new Promise((resolve) => emitter.once(event, (...args: unknown[]) => resolve(args)));
}

/** Everything a chardev sends towards the guest, from now on (input resumed). */
export function collectInput(c: Chardev): { text: () => string; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  c.on('data', (b: Buffer) => chunks.push(b));
  c.resumeInput();
  return { bytes: () => Buffer.concat(chunks), text: () => Buffer.concat(chunks).toString() };
}

/** Read from a non-blocking fd whatever is there now. */
export function readAvailable(fd: number, max = 1 << 20): Buffer {
  const buf = Buffer.alloc(max);
  try {
    const n = fs.readSync(fd, buf, 0, max, null);
    return buf.subarray(0, n);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return Buffer.alloc(0);
    throw err;
  }
}

/** A unix socket server chardev (started) and `dial()`, which connects a client that collects what it receives. */
export async function socketServer(id: string, extra: Record<string, string> = {}) {
  const p = path.join(tmpdir(), `${id}.sock`);
  const chardev = await start<SocketChardev>('socket', id, { path: p, server: 'on', wait: 'off', ...extra });
  const dial = async () => {
    const sock = net.connect(p);
    defer(() => sock.destroy());
    const chunks: Buffer[] = [];
    sock.on('data', (b: Buffer) => chunks.push(b));
    sock.on('error', () => {});
    await until(() => chardev.connected, `client of ${id}`);
    return Object.assign(sock, { bytes: () => Buffer.concat(chunks) });
  };
  return { chardev, dial };
}
