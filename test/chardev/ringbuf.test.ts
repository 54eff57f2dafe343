import { describe, expect, it } from 'vitest';
import type { RingbufChardev } from '../../src/chardev/ringbuf.js';
import { collectInput, start } from './helpers.js';

describe('ringbuf chardev', () => {
  it('keeps the newest `size` bytes and reads them oldest first', async () => {
    const r = await start<RingbufChardev>('ringbuf', 'r0', { size: '16' });
    expect(r.connected).toBe(true);
    expect(r.write(Buffer.from('0123456789'))).toBe(10);
    expect(r.read(4).toString()).toBe('0123');
    expect(r.write(Buffer.from('abcdefghijklmn'))).toBe(14); // wraps, overwrites the oldest
    expect(r.count).toBe(16);
    expect(r.read(100).toString()).toBe('89abcdefghijklmn');
    expect(r.write(Buffer.from('x'.repeat(40) + 'tail'))).toBe(44); // larger than the ring
    expect(r.read(100).toString()).toBe('x'.repeat(12) + 'tail');
    expect(r.read(10).length).toBe(0);
  });

  it('defaults to 64 KiB and can send input towards the guest', async () => {
    const r = await start<RingbufChardev>('ringbuf', 'r1');
    expect(r.size).toBe(65536);
    const held: string[] = [];
    r.on('data', (b: Buffer) => held.push(b.toString()));
    r.input(Buffer.from('typed'));
    expect(held).toEqual([]); // paused until a consumer resumes input
    const input = collectInput(r);
    expect(input.text()).toBe('typed');
  });
});

describe('null chardev', () => {
  it('swallows output and is never connected', async () => {
    const n = await start('null', 'n0');
    expect(n.connected).toBe(false);
    expect(n.write(Buffer.from('gone'))).toBe(4);
  });
});
