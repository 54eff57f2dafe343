import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { PtyChardev } from '../../src/chardev/pty.js';
import * as libc from '../../src/sys/libc.js';
import { collectInput, defer, next, readAvailable, start, tmpdir, until } from './helpers.js';

/** Open the slave as a peer would (a terminal program). */
function openPeer(p: string): number {
  const fd = fs.openSync(p, fs.constants.O_RDWR | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK);
  const open = true;
  defer(() => open && fs.closeSync(fd));
  return fd;
}

async function readPeer(fd: number, want: number): Promise<Buffer> {
  let got = Buffer.alloc(0);
  await until(() => (got = Buffer.concat([got, readAvailable(fd)])).length >= want, 'peer data');
  return got;
}

describe('pty chardev', () => {
  it('links path= to the slave, is raw, and reports peers coming and going', async () => {
    const link = path.join(tmpdir(), 'console.pty');
    const pty = await start<PtyChardev>('pty', 'pty0', { path: link });
    expect(fs.readlinkSync(link)).toBe(pty.slavePath);
    expect(pty.slavePath).toMatch(/^\/dev\/pts\/\d+$/);
    expect(pty.connected).toBe(false);

    const peer = fs.openSync(link, fs.constants.O_RDWR | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK);
    await next(pty, 'connected');
    expect(pty.connected).toBe(true);
    expect(libc.isCanonical(libc.tcgetattr(peer))).toBe(false); // raw: no line editing, no echo

    fs.closeSync(peer);
    await next(pty, 'disconnected');
    expect(pty.connected).toBe(false);

    // A second peer after the first one left.
    const again = openPeer(link);
    await next(pty, 'connected');
    expect(pty.write(Buffer.from('second'))).toBe(6);
    expect((await readPeer(again, 6)).toString()).toBe('second');

    await pty.close();
    expect(fs.existsSync(link)).toBe(false);
  });

  it('carries bytes both ways and holds input while paused', async () => {
    const pty = await start<PtyChardev>('pty', 'pty1');
    const peer = openPeer(pty.slavePath);
    await next(pty, 'connected');
    const input = collectInput(pty);

    fs.writeSync(peer, 'typed');
    await until(() => input.text() === 'typed', 'input');

    pty.pauseInput();
    fs.writeSync(peer, 'held');
    // Output still flows while input is paused; its round trip shows the pty was serviced.
    pty.write(Buffer.from('ping'));
    expect((await readPeer(peer, 4)).toString()).toBe('ping');
    expect(input.text()).toBe('typed');
    pty.resumeInput();
    await until(() => input.text() === 'typedheld', 'held input');

    // Raw mode: no output processing (no \n -> \r\n), every byte value passes unchanged.
    const bin = Buffer.from([0, 1, 2, 0x0a, 0x0d, 0x03, 0xff]);
    expect(pty.write(bin)).toBe(bin.length);
    expect(await readPeer(peer, bin.length)).toEqual(bin);
  });

  it('reports the peer window size and its changes', async () => {
    const pty = await start<PtyChardev>('pty', 'pty2');
    const peer = openPeer(pty.slavePath);
    libc.setWinSize(peer, { cols: 100, rows: 30 });
    await until(() => pty.windowSize?.cols === 100, 'first size');
    expect(pty.windowSize).toEqual({ cols: 100, rows: 30 });
    const resized = next(pty, 'resize');
    libc.setWinSize(peer, { cols: 132, rows: 43 });
    expect(await resized).toEqual([{ cols: 132, rows: 43 }]);
  });

  it('refuses a path= that is a regular file', async () => {
    const file = path.join(tmpdir(), 'taken');
    fs.writeFileSync(file, 'x');
    await expect(start('pty', 'pty3', { path: file })).rejects.toThrow(
      `chardev 'pty3': path '${file}' exists and is not a symlink`,
    );
    expect(fs.readFileSync(file, 'utf8')).toBe('x');
  });
});
