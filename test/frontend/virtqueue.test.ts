// Self-check of the test front-end's split ring: a tiny device side, written here from the
// spec's ring layout (not from the daemon), consumes what the driver side publishes.
import { afterEach, describe, expect, it } from 'vitest';
import { GuestMemory } from './memory.js';
import { DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE, SplitQueue, type QueueOptions } from './virtqueue.js';

const mems: GuestMemory[] = [];
afterEach(() => {
  for (const m of mems.splice(0)) m.close();
});

function setup(size: number, opts: Partial<QueueOptions> = {}) {
  const mem = new GuestMemory({ size: 4 << 20, guestBase: 0x100000000n });
  mems.push(mem);
  const q = new SplitQueue<string>(mem, 0, size, { eventIdx: false, indirect: 'never', ...opts });
  return { mem, q };
}

/** Device side: reads avail entries, walks chains (and indirect tables) by GPA, writes used. */
class Device {
  lastAvail = 0;
  usedIdx = 0;
  constructor(
    private readonly mem: GuestMemory,
    private readonly q: SplitQueue<string>,
  ) {}
  private dv() {
    return this.mem.view;
  }
  pop(): { head: number; segs: { off: number; len: number; flags: number }[] } | undefined {
    const dv = this.dv();
    const availIdx = dv.getUint16(this.q.availOff + 2, true);
    if (availIdx === this.lastAvail) return undefined;
    const head = dv.getUint16(this.q.availOff + 4 + 2 * (this.lastAvail % this.q.size), true);
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    const segs = [];
    let table = this.q.descOff;
    let i = head;
    for (;;) {
      const d = table + 16 * i;
      const addr = dv.getBigUint64(d, true);
      const len = dv.getUint32(d + 8, true);
      const flags = dv.getUint16(d + 12, true);
      const off = this.mem.offsetOfGpa(addr, len);
      expect(off).toBeGreaterThanOrEqual(0);
      if (flags & DESC_F_INDIRECT) {
        table = off;
        i = 0;
        continue;
      }
      segs.push({ off, len, flags });
      if (!(flags & DESC_F_NEXT)) break;
      i = dv.getUint16(d + 14, true);
    }
    return { head, segs };
  }
  push(head: number, len: number) {
    const dv = this.dv();
    const e = this.q.usedOff + 4 + 8 * (this.usedIdx % this.q.size);
    dv.setUint32(e, head, true);
    dv.setUint32(e + 4, len, true);
    this.usedIdx = (this.usedIdx + 1) & 0xffff;
    dv.setUint16(this.q.usedOff + 2, this.usedIdx, true);
  }
  setAvailEvent(v: number) {
    this.dv().setUint16(this.q.usedOff + 4 + 8 * this.q.size, v, true);
  }
  usedEvent(): number {
    return this.dv().getUint16(this.q.availOff + 4 + 2 * this.q.size, true);
  }
}

describe('SplitQueue (driver side)', () => {
  it('lays the ring out like Linux: avail after desc, used at the next 64-byte boundary', () => {
    const { mem, q } = setup(64);
    expect(q.descOff % 4096).toBe(0);
    expect(q.availOff).toBe(q.descOff + 16 * 64);
    expect(q.usedOff).toBe(Math.ceil((q.availOff + 6 + 2 * 64) / 64) * 64);
    expect(q.addrs.desc).toBe(mem.userBase + BigInt(q.descOff));
    expect(mem.gpa(q.descOff)).toBe(0x100000000n + BigInt(q.descOff));
  });

  it('publishes buffers the device reads back, and returns tokens in used order', () => {
    const { mem, q } = setup(8);
    const dev = new Device(mem, q);
    const a = mem.alloc(100);
    const b = mem.alloc(200);
    mem.bytes.set([1, 2, 3], a);
    expect(q.add([{ offset: a, len: 3, writable: false }], 'out')).toBe(true);
    expect(q.add([{ offset: b, len: 200, writable: true }], 'in')).toBe(true);
    const p1 = dev.pop()!;
    const p2 = dev.pop()!;
    expect(dev.pop()).toBeUndefined();
    expect(p1.segs).toEqual([{ off: a, len: 3, flags: 0 }]);
    expect([...mem.bytes.subarray(a, a + 3)]).toEqual([1, 2, 3]);
    expect(p2.segs).toEqual([{ off: b, len: 200, flags: DESC_F_WRITE }]);
    dev.push(p2.head, 50);
    dev.push(p1.head, 0);
    expect(q.getUsed()).toMatchObject({ token: 'in', len: 50 });
    expect(q.getUsed()).toMatchObject({ token: 'out', len: 0 });
    expect(q.getUsed()).toBeUndefined();
    expect(q.numFree).toBe(8);
  });

  it('chains segments readable-first and runs out of descriptors at the queue size', () => {
    const { mem, q } = setup(4);
    const dev = new Device(mem, q);
    const o = mem.alloc(64);
    expect(
      q.add(
        [
          { offset: o, len: 8, writable: false },
          { offset: o + 8, len: 8, writable: true },
          { offset: o + 16, len: 8, writable: true },
        ],
        'c',
      ),
    ).toBe(true);
    expect(q.numFree).toBe(1);
    expect(
      q.add(
        [
          { offset: o, len: 1, writable: false },
          { offset: o, len: 1, writable: false },
        ],
        'no room',
      ),
    ).toBe(false);
    const p = dev.pop()!;
    expect(p.segs.map((s) => s.flags)).toEqual([DESC_F_NEXT, DESC_F_NEXT | DESC_F_WRITE, DESC_F_WRITE]);
    dev.push(p.head, 16);
    expect(q.getUsed()?.token).toBe('c');
    expect(q.numFree).toBe(4);
  });

  it('puts multi-segment buffers in an indirect table (auto) or every buffer (always)', () => {
    for (const mode of ['auto', 'always'] as const) {
      const { mem, q } = setup(4, { indirect: mode });
      const dev = new Device(mem, q);
      const o = mem.alloc(64);
      q.add([{ offset: o, len: 4, writable: false }], 'single');
      q.add(
        [
          { offset: o, len: 4, writable: false },
          { offset: o + 4, len: 4, writable: true },
        ],
        'multi',
      );
      expect(q.numFree).toBe(mode === 'auto' ? 2 : 2);
      const flags = (h: number) => mem.view.getUint16(q.descOff + 16 * h + 12, true);
      const s = dev.pop()!;
      const m = dev.pop()!;
      expect(flags(s.head) & DESC_F_INDIRECT).toBe(mode === 'always' ? DESC_F_INDIRECT : 0);
      expect(flags(m.head)).toBe(DESC_F_INDIRECT);
      expect(m.segs).toEqual([
        { off: o, len: 4, flags: DESC_F_NEXT },
        { off: o + 4, len: 4, flags: DESC_F_WRITE },
      ]);
    }
  });

  it('decides kicks from NO_NOTIFY, or from avail_event with EVENT_IDX', () => {
    const plain = setup(8);
    const o = plain.mem.alloc(16);
    plain.q.add([{ offset: o, len: 1, writable: false }], 'a');
    expect(plain.q.needsKick()).toBe(true);
    expect(plain.q.needsKick()).toBe(false); // nothing new
    plain.mem.view.setUint16(plain.q.usedOff, 1, true); // device sets NO_NOTIFY
    plain.q.add([{ offset: o, len: 1, writable: false }], 'b');
    expect(plain.q.needsKick()).toBe(false);

    const ev = setup(8, { eventIdx: true });
    const dev = new Device(ev.mem, ev.q);
    dev.setAvailEvent(0); // wants a kick when avail idx passes 0
    ev.q.add([{ offset: o, len: 1, writable: false }], 'a');
    expect(ev.q.needsKick()).toBe(true);
    ev.q.add([{ offset: o, len: 1, writable: false }], 'b');
    expect(ev.q.needsKick()).toBe(false); // device has not asked for more
    dev.setAvailEvent(2);
    ev.q.add([{ offset: o, len: 1, writable: false }], 'c');
    expect(ev.q.needsKick()).toBe(true);
    // enableCallbacks publishes used_event = next used index expected
    dev.pop();
    dev.push(0, 0);
    expect(ev.q.getUsed()?.token).toBe('a');
    expect(ev.q.enableCallbacks()).toBe(false);
    expect(dev.usedEvent()).toBe(1);
  });

  it('records a used entry naming a descriptor that is not in flight, and a too-long length', () => {
    const { mem, q } = setup(4);
    const dev = new Device(mem, q);
    const o = mem.alloc(16);
    q.add([{ offset: o, len: 8, writable: true }], 'x');
    dev.push(3, 0);
    dev.push(dev.pop()!.head, 9);
    expect(q.getUsed()?.token).toBe('x');
    expect(q.anomalies).toHaveLength(2);
    expect(q.anomalies[0]).toMatch(/descriptor 3/);
    expect(q.anomalies[1]).toMatch(/used length 9/);
  });

  it('wraps the 16-bit indices', () => {
    const { mem, q } = setup(2);
    const dev = new Device(mem, q);
    const o = mem.alloc(16);
    for (let i = 0; i < 70000; i++) {
      q.add([{ offset: o, len: 1, writable: true }], `t${i}`);
      const p = dev.pop()!;
      dev.push(p.head, 1);
      expect(q.getUsed()?.token).toBe(`t${i}`);
    }
    expect(q.availIndex).toBe(70000 & 0xffff);
  });
});
