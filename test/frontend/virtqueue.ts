// Driver side of a split virtqueue (virtio spec 2.7), laid out in guest memory the way Linux
// lays it out: descriptor table, then the available ring right after it, then the used ring
// at the next 64-byte boundary. The ring indices live in shared memory that the daemon writes
// from another process, so the two indices that publish work (avail->idx, used->idx) are
// accessed with Atomics: a sequentially consistent store/load orders the entries written
// before it, which is the barrier the spec asks for on both sides.
import type { GuestMemory } from './memory.js';

export const DESC_F_NEXT = 1;
export const DESC_F_WRITE = 2;
export const DESC_F_INDIRECT = 4;
export const AVAIL_F_NO_INTERRUPT = 1;
export const USED_F_NO_NOTIFY = 1;

export type IndirectMode = 'never' | 'auto' | 'always';

export interface QueueOptions {
  /** VIRTIO_RING_F_EVENT_IDX negotiated: used_event / avail_event instead of the flags. */
  eventIdx: boolean;
  /** Indirect tables: never, for chains of >1 segment (Linux), or for every buffer. */
  indirect: IndirectMode;
  /** Longest indirect table (entries). Default 16. */
  maxIndirect?: number;
  /** Put desc, avail and used in three separate, far-apart allocations. */
  separateParts?: boolean;
}

/** One piece of a buffer: `len` bytes at guest-memory offset `offset`. */
export interface Segment {
  offset: number;
  len: number;
  writable: boolean;
}

export interface Used<T> {
  token: T;
  len: number;
  head: number;
}

export class SplitQueue<T> {
  readonly descOff: number;
  readonly availOff: number;
  readonly usedOff: number;
  /** Problems seen on the used ring (a device bug): bad ids, lengths too long. */
  readonly anomalies: string[] = [];
  private readonly u16: Uint16Array;
  private readonly dv: DataView;
  private readonly free: number[] = [];
  private readonly tokens: (T | undefined)[];
  private readonly chains: number[][];
  private readonly writableLen: number[];
  private readonly indirectOff: number;
  private readonly maxIndirect: number;
  private availIdx = 0; // our shadow of avail->idx
  private kickedAt = 0; // avail->idx at the last notification decision
  private lastUsed = 0;
  private callbacks = true; // Linux starts with callbacks enabled

  constructor(
    readonly mem: GuestMemory,
    readonly index: number,
    readonly size: number,
    readonly opts: QueueOptions,
  ) {
    if (size <= 0 || size > 32768 || (size & (size - 1)) !== 0)
      throw new Error(`queue ${index}: size ${size} is not a power of 2 in 1..32768`);
    const descLen = 16 * size;
    const availLen = 6 + 2 * size;
    const usedLen = 6 + 8 * size;
    if (opts.separateParts) {
      this.descOff = mem.alloc(descLen, 4096);
      mem.alloc(4096 * 3, 4096); // gaps so an off-by-part translation reads the wrong bytes
      this.availOff = mem.alloc(availLen, 4096);
      mem.alloc(4096 * 5, 4096);
      this.usedOff = mem.alloc(usedLen, 4096);
    } else {
      this.descOff = mem.alloc(descLen + availLen + 64 + usedLen, 4096);
      this.availOff = this.descOff + descLen;
      this.usedOff = Math.ceil((this.availOff + availLen) / 64) * 64;
    }
    mem.bytes.fill(0, this.descOff, this.descOff + descLen);
    mem.bytes.fill(0, this.availOff, this.availOff + availLen);
    mem.bytes.fill(0, this.usedOff, this.usedOff + usedLen);
    this.u16 = new Uint16Array(mem.bytes.buffer);
    this.dv = mem.view;
    for (let i = size - 1; i >= 0; i--) this.free.push(i);
    this.tokens = new Array(size).fill(undefined);
    this.chains = new Array(size).fill(undefined).map(() => []);
    this.writableLen = new Array(size).fill(0);
    this.maxIndirect = opts.maxIndirect ?? 16;
    this.indirectOff = opts.indirect === 'never' ? -1 : mem.alloc(size * this.maxIndirect * 16, 16);
  }

  /** Addresses for SET_VRING_ADDR (front-end user addresses). */
  get addrs(): { desc: bigint; avail: bigint; used: bigint } {
    return {
      desc: this.mem.uaddr(this.descOff),
      avail: this.mem.uaddr(this.availOff),
      used: this.mem.uaddr(this.usedOff),
    };
  }

  get numFree(): number {
    return this.free.length;
  }
  get inFlight(): number {
    let n = 0;
    for (const t of this.tokens) if (t !== undefined) n++;
    return n;
  }
  get availIndex(): number {
    return this.availIdx;
  }
  get lastUsedIndex(): number {
    return this.lastUsed;
  }

  /** Descriptors a buffer of `segs` segments takes from the ring. */
  private cost(nsegs: number): number {
    return this.useIndirect(nsegs) ? 1 : nsegs;
  }

  private useIndirect(nsegs: number): boolean {
    if (this.opts.indirect === 'never' || nsegs > this.maxIndirect) return false;
    return this.opts.indirect === 'always' || nsegs > 1;
  }

  canAdd(nsegs = 1): boolean {
    return this.free.length >= this.cost(nsegs);
  }

  /**
   * Makes a buffer available: device-readable segments first, then device-writable ones,
   * as the spec requires. Returns false when the ring has no room. Does not notify.
   */
  add(segs: readonly Segment[], token: T): boolean {
    if (segs.length === 0) throw new Error('a buffer needs at least one segment');
    const n = this.cost(segs.length);
    if (this.free.length < n) return false;
    const chain: number[] = [];
    for (let i = 0; i < n; i++) chain.push(this.free.pop()!);
    const head = chain[0]!;
    let writable = 0;
    for (const s of segs) if (s.writable) writable += s.len;
    if (this.useIndirect(segs.length)) {
      const table = this.indirectOff + head * this.maxIndirect * 16;
      segs.forEach((s, i) =>
        this.writeDescAt(
          table + i * 16,
          this.mem.gpa(s.offset),
          s.len,
          (s.writable ? DESC_F_WRITE : 0) | (i + 1 < segs.length ? DESC_F_NEXT : 0),
          i + 1 < segs.length ? i + 1 : 0,
        ),
      );
      this.writeDesc(head, this.mem.gpa(table), segs.length * 16, DESC_F_INDIRECT, 0);
    } else {
      segs.forEach((s, i) =>
        this.writeDesc(
          chain[i]!,
          this.mem.gpa(s.offset),
          s.len,
          (s.writable ? DESC_F_WRITE : 0) | (i + 1 < segs.length ? DESC_F_NEXT : 0),
          chain[i + 1] ?? 0,
        ),
      );
    }
    this.tokens[head] = token;
    this.chains[head] = chain;
    this.writableLen[head] = writable;
    this.publish(head);
    return true;
  }

  /** Raw: writes descriptor `i` of the table (for crafting bad rings). */
  writeDesc(i: number, addr: bigint, len: number, flags: number, next: number): void {
    this.writeDescAt(this.descOff + 16 * i, addr, len, flags, next);
  }

  /** Raw: writes a descriptor at any guest-memory offset (e.g. inside an indirect table). */
  writeDescAt(off: number, addr: bigint, len: number, flags: number, next: number): void {
    this.dv.setBigUint64(off, addr, true);
    this.dv.setUint32(off + 8, len, true);
    this.dv.setUint16(off + 12, flags, true);
    this.dv.setUint16(off + 14, next, true);
  }

  /** Raw: puts `head` in the available ring and publishes it (avail->idx + 1). */
  publish(head: number): void {
    this.dv.setUint16(this.availOff + 4 + 2 * (this.availIdx % this.size), head, true);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    Atomics.store(this.u16, (this.availOff + 2) >> 1, this.availIdx);
  }

  /**
   * Whether the device wants a notification for what was published since the last call
   * (virtio spec 2.7.10: avail_event with EVENT_IDX, else the used ring's NO_NOTIFY flag).
   */
  needsKick(): boolean {
    const old = this.kickedAt;
    const now = this.availIdx;
    this.kickedAt = now;
    if (old === now) return false;
    if (this.opts.eventIdx) {
      const event = Atomics.load(this.u16, (this.usedOff + 4 + 8 * this.size) >> 1);
      return ((now - event - 1) & 0xffff) < ((now - old) & 0xffff);
    }
    return (Atomics.load(this.u16, this.usedOff >> 1) & USED_F_NO_NOTIFY) === 0;
  }

  hasUsed(): boolean {
    return Atomics.load(this.u16, (this.usedOff + 2) >> 1) !== this.lastUsed;
  }

  /** Takes the next used buffer, or undefined. A bad used entry is recorded and skipped. */
  getUsed(): Used<T> | undefined {
    while (this.hasUsed()) {
      const e = this.usedOff + 4 + 8 * (this.lastUsed % this.size);
      const head = this.dv.getUint32(e, true);
      const len = this.dv.getUint32(e + 4, true);
      const at = this.lastUsed;
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
      const token = head < this.size ? this.tokens[head] : undefined;
      if (token === undefined) {
        this.anomalies.push(
          `queue ${this.index}: used ring entry ${at} names descriptor ${head}, which is not in flight`,
        );
        continue;
      }
      if (len > this.writableLen[head]!) {
        this.anomalies.push(
          `queue ${this.index}: used length ${len} for descriptor ${head} exceeds its ${this.writableLen[head]} writable bytes`,
        );
      }
      this.tokens[head] = undefined;
      for (const d of this.chains[head]!) this.free.push(d);
      this.chains[head] = [];
      // Like Linux's virtqueue_get_buf: while callbacks are on, move used_event along so the
      // device calls again for the next buffer (else it would wait for an index we passed).
      if (this.callbacks && this.opts.eventIdx) this.storeUsedEvent();
      return { token, len, head };
    }
    return undefined;
  }

  /**
   * Asks for a call on the next used buffer. Returns true if buffers were used meanwhile,
   * so the caller must look again (the race virtqueue_enable_cb closes in Linux).
   */
  enableCallbacks(): boolean {
    this.callbacks = true;
    if (this.opts.eventIdx) this.storeUsedEvent();
    else Atomics.store(this.u16, this.availOff >> 1, 0);
    return this.hasUsed();
  }

  /** Asks the device not to call (a hint without EVENT_IDX; with it, used_event stays behind). */
  disableCallbacks(): void {
    this.callbacks = false;
    if (!this.opts.eventIdx) Atomics.store(this.u16, this.availOff >> 1, AVAIL_F_NO_INTERRUPT);
  }

  private storeUsedEvent(): void {
    Atomics.store(this.u16, (this.availOff + 4 + 2 * this.size) >> 1, this.lastUsed);
  }
}
