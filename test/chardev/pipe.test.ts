import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createChardev } from './create.js';
import * as libc from '../../src/sys/libc.js';
import { collectInput, defer, readAvailable, start, tmpdir, until } from './helpers.js';

function openFifo(p: string): number {
  const fd = fs.openSync(p, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
  defer(() => fs.closeSync(fd));
  return fd;
}

describe('pipe chardev', () => {
  it('uses PATH.in for input and PATH.out for output when both exist', async () => {
    const base = path.join(tmpdir(), 'pipe');
    libc.mkfifo(`${base}.in`);
    libc.mkfifo(`${base}.out`);
    const p = await start('pipe', 'p0', { path: base });
    expect(p.connected).toBe(true);
    const input = collectInput(p);
    const toGuest = openFifo(`${base}.in`);
    const fromGuest = openFifo(`${base}.out`);

    fs.writeSync(toGuest, 'keys');
    await until(() => input.text() === 'keys', 'input via .in');
    p.write(Buffer.from('screen'));
    let got = '';
    await until(() => (got += readAvailable(fromGuest).toString()) === 'screen', 'output via .out');
  });

  it('falls back to one PATH for both directions', async () => {
    const fifo = path.join(tmpdir(), 'single');
    libc.mkfifo(fifo);
    const p = await start('pipe', 'p1', { path: fifo });
    const input = collectInput(p);
    const peer = openFifo(fifo);
    fs.writeSync(peer, 'both');
    await until(() => input.text() === 'both', 'input via the single fifo');
  });

  it('refuses a path that is not a FIFO', async () => {
    const file = path.join(tmpdir(), 'regular');
    fs.writeFileSync(file, '');
    const p = createChardev('pipe', 'p2', { path: file, logfile: `${file}.log` });
    await expect(p.start()).rejects.toThrow(`chardev 'p2': path '${file}' is not a FIFO`);
    expect(p.closed).toBe(true); // nothing left half-open behind a failed start
  });
});
