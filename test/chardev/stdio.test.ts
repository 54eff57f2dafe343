import { spawn } from 'node:child_process';
import fs from 'node:fs';
import tty from 'node:tty';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { StdioChardev } from '../../src/chardev/stdio.js';
import { parseChardevOptions } from '../../src/chardev/registry.js';
import * as libc from '../../src/sys/libc.js';
import { collectInput, defer, next, until } from './helpers.js';

/** Everything the terminal shows, read from the master side. */
function screen(master: number): () => string {
  const r = new tty.ReadStream(libc.dup(master));
  defer(() => r.destroy());
  let text = '';
  r.on('data', (b: Buffer) => (text += b.toString()));
  r.on('error', () => {});
  return () => text;
}

function pty(): libc.Pty {
  const p = libc.openpty();
  defer(() => {
    libc.close(p.master);
    libc.close(p.slave);
  });
  return p;
}

describe('stdio chardev', () => {
  it('makes the terminal raw, carries bytes, and restores the terminal on close', async () => {
    const p = pty();
    expect(libc.isCanonical(libc.tcgetattr(p.master))).toBe(true);
    const input = new tty.ReadStream(libc.dup(p.slave));
    const output = new tty.WriteStream(libc.dup(p.slave));
    defer(() => {
      input.destroy();
      output.destroy();
    });
    const cfg = parseChardevOptions('stdio', 'io', {}) as ConstructorParameters<typeof StdioChardev>[0];
    const io = new StdioChardev(cfg, { input, output, inputFd: p.slave });
    await io.start();
    expect(libc.isCanonical(libc.tcgetattr(p.master))).toBe(false);

    const got = collectInput(io);
    fs.writeSync(p.master, 'abc');
    await until(() => got.text() === 'abc', 'input from the terminal');
    io.write(Buffer.from('out'));
    const shown = screen(p.master);
    await until(() => shown() === 'out', 'output on the terminal');

    await io.close();
    expect(libc.isCanonical(libc.tcgetattr(p.master))).toBe(true);
  });

  it('restores the terminal when a signal ends the process', async () => {
    const p = pty();
    const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));
    const child = spawn(
      process.execPath,
      ['--import', here('./fixtures/ts-register.mjs'), here('./fixtures/stdio-child.ts')],
      {
        stdio: [p.slave, p.slave, 'pipe'],
      },
    );
    defer(() => child.exitCode === null && child.kill('SIGKILL'));
    let err = '';
    child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    await until(() => err.includes('READY') || child.exitCode !== null, 'child ready');
    expect(err).toContain('READY');
    expect(libc.isCanonical(libc.tcgetattr(p.master))).toBe(false);

    const shown = screen(p.master);
    fs.writeSync(p.master, 'echo?');
    await until(() => shown() === 'echo?', 'echo through the child');

    const exited = next(child, 'exit');
    child.kill('SIGTERM');
    const [, signal] = await exited;
    expect(signal).toBe('SIGTERM'); // it still dies of the signal
    expect(libc.isCanonical(libc.tcgetattr(p.master))).toBe(true);
  });
});

describe('stdio chardev without a terminal', () => {
  it('keeps writing output after its input ended', async () => {
    const { PassThrough } = await import('node:stream');
    const input = new PassThrough();
    const output = new PassThrough();
    const cfg = parseChardevOptions('stdio', 'io2', {}) as ConstructorParameters<typeof StdioChardev>[0];
    const io = new StdioChardev(cfg, { input, output, inputFd: -1 });
    defer(() => io.close());
    await io.start();
    const got = collectInput(io);
    input.end('last words');
    await until(() => got.text() === 'last words', 'input before the end');
    await new Promise((r) => setImmediate(r));
    expect(io.connected).toBe(true);
    expect(io.write(Buffer.from('still here'))).toBe(10);
    expect(output.read()?.toString()).toBe('still here');
  });
});
