// Self-check of the test front-end's message encoding and its eventfd poller.
import { describe, expect, it } from 'vitest';
import { close, eventfd, eventfdDrain, eventfdSignal } from './libc.js';
import { EventfdPoller } from './poller.js';
import {
  FLAG_NEED_REPLY,
  FLAG_VERSION,
  Req,
  configMsg,
  decodeHeader,
  encodeMessage,
  memRegionMsg,
  memTable,
  parseConsoleConfig,
  readConfigMsg,
  vringAddr,
} from './protocol.js';

describe('vhost-user encoding', () => {
  it('writes the 12-byte header little endian with the payload size', () => {
    const m = encodeMessage(
      Req.SET_VRING_ENABLE,
      Buffer.from([1, 0, 0, 0, 1, 0, 0, 0]),
      FLAG_VERSION | FLAG_NEED_REPLY,
    );
    expect([...m.subarray(0, 12)]).toEqual([18, 0, 0, 0, 9, 0, 0, 0, 8, 0, 0, 0]);
    expect(decodeHeader(m)).toEqual({ request: 18, flags: 9, size: 8 });
  });

  it('lays out memory tables, single regions and vring addresses', () => {
    const r = { guestPhysAddr: 0x1000n, memorySize: 0x2000n, userspaceAddr: 0x7f0000000000n, mmapOffset: 0x10n };
    const t = memTable([r, r]);
    expect(t.length).toBe(8 + 64);
    expect(t.readUInt32LE(0)).toBe(2);
    expect(t.readBigUInt64LE(8 + 32 + 16)).toBe(0x7f0000000000n);
    const one = memRegionMsg(r);
    expect(one.length).toBe(40);
    expect(one.readBigUInt64LE(0)).toBe(0n);
    expect(one.readBigUInt64LE(8)).toBe(0x1000n);
    expect(one.readBigUInt64LE(32)).toBe(0x10n);
    const a = vringAddr({ index: 3, desc: 1n, used: 2n, avail: 3n, log: 4n });
    expect([
      a.readUInt32LE(0),
      a.readBigUInt64LE(8),
      a.readBigUInt64LE(16),
      a.readBigUInt64LE(24),
      a.readBigUInt64LE(32),
    ]).toEqual([3, 1n, 2n, 3n, 4n]);
  });

  it('parses a config reply and the 12-byte console config', () => {
    const cfg = Buffer.alloc(12);
    cfg.writeUInt16LE(80, 0);
    cfg.writeUInt16LE(25, 2);
    cfg.writeUInt32LE(4, 4);
    const c = readConfigMsg(configMsg(0, 12, cfg));
    expect(c.size).toBe(12);
    expect(parseConsoleConfig(c.data)).toEqual({ cols: 80, rows: 25, maxNrPorts: 4, emergWr: 0 });
    expect(() => readConfigMsg(configMsg(0, 12).subarray(0, 20))).toThrow(/header says 12 \+ 12/);
  });
});

describe('EventfdPoller', () => {
  it('runs the handler of each signalled eventfd without blocking the event loop', async () => {
    const p = new EventfdPoller();
    const a = eventfd();
    const b = eventfd();
    const seen: string[] = [];
    let wake!: () => void;
    const twice = new Promise<void>((r) => {
      wake = r;
    });
    p.watch(a, () => {
      seen.push('a');
      if (seen.length === 2) wake();
    });
    p.watch(b, () => {
      seen.push('b');
      if (seen.length === 2) wake();
    });
    let ticks = 0;
    const t = setInterval(() => ticks++, 1);
    await new Promise((r) => setTimeout(r, 20));
    eventfdSignal(b);
    eventfdSignal(a);
    await twice;
    clearInterval(t);
    expect(seen.sort()).toEqual(['a', 'b']);
    expect(ticks).toBeGreaterThan(0);
    expect(eventfdDrain(a)).toBe(0); // the poller drained it
    await p.unwatch([a, b]);
    close(a);
    close(b);
  });
});
