// Guest RAM of the test front-end: one memfd, mapped shared, handed to the daemon like QEMU's
// memory-backend-memfd. Two address spaces point into it, as with QEMU:
//  - guest-physical addresses (GPA), used in descriptors: guestBase + offset;
//  - front-end "user" addresses (QEMU's virtual addresses), used in SET_VRING_ADDR:
//    userBase + offset. userBase is deliberately NOT where we mapped it, and differs from
//    guestBase, so a daemon that mixes up the two translations fails loudly.
import koffi from 'koffi';
import { close, ftruncate, memfdCreate, mmapShared, remapAnonymous } from './libc.js';

export interface GuestMemoryOptions {
  /** Bytes of guest RAM (default 256 MiB; untouched pages cost nothing). */
  size?: number;
  /** GPA of offset 0 (default 0, like a VM's RAM at 0). */
  guestBase?: bigint;
  /** Front-end user address of offset 0 (default 0x7f0000000000). */
  userBase?: bigint;
}

export interface MemRegion {
  guestPhysAddr: bigint;
  memorySize: bigint;
  userspaceAddr: bigint;
  mmapOffset: bigint;
}

export class GuestMemory {
  readonly fd: number;
  readonly size: number;
  readonly guestBase: bigint;
  readonly userBase: bigint;
  readonly bytes: Uint8Array;
  readonly view: DataView;
  private readonly addr: bigint;
  private next = 4096; // keep GPA 0 unused: a zeroed descriptor then points at nothing we own
  private closed = false;

  constructor(opts: GuestMemoryOptions = {}) {
    this.size = opts.size ?? 256 * 1024 * 1024;
    this.guestBase = opts.guestBase ?? 0n;
    this.userBase = opts.userBase ?? 0x7f0000000000n;
    this.fd = memfdCreate('vhc-test-guest-ram');
    try {
      ftruncate(this.fd, this.size);
      this.addr = mmapShared(this.fd, this.size);
    } catch (e) {
      close(this.fd);
      throw e;
    }
    const ab = koffi.view(this.addr, this.size);
    this.bytes = new Uint8Array(ab);
    this.view = new DataView(ab);
  }

  /** Bump-allocates `len` bytes aligned to `align`; returns the offset. Never freed. */
  alloc(len: number, align = 64): number {
    const off = Math.ceil(this.next / align) * align;
    if (off + len > this.size) throw new Error(`guest memory exhausted: need ${len} bytes at ${off} of ${this.size}`);
    this.next = off + len;
    return off;
  }

  gpa(offset: number): bigint {
    return this.guestBase + BigInt(offset);
  }
  uaddr(offset: number): bigint {
    return this.userBase + BigInt(offset);
  }

  /** Offset of a GPA, or -1 when [gpa, gpa+len) is not inside guest memory. */
  offsetOfGpa(gpa: bigint, len = 1): number {
    const off = gpa - this.guestBase;
    if (off < 0n || off + BigInt(len) > BigInt(this.size)) return -1;
    return Number(off);
  }

  region(): MemRegion {
    return {
      guestPhysAddr: this.guestBase,
      memorySize: BigInt(this.size),
      userspaceAddr: this.userBase,
      mmapOffset: 0n,
    };
  }

  /**
   * A hostile front-end: shrinks the memfd to 0 bytes after the daemon mapped it (the daemon's
   * next access to it faults). Our own view is first re-mapped to anonymous zero pages, so
   * this process keeps running; the daemon no longer sees what we write.
   */
  truncate(): void {
    remapAnonymous(this.addr, this.size);
    ftruncate(this.fd, 0);
  }

  /**
   * Gives the memfd back. The views handed out over this memory are plain ArrayBuffers that
   * cannot be revoked, and a late callback touching one after munmap() would kill the whole
   * test process with SIGSEGV; so the range is re-mapped to anonymous zero pages instead
   * (address space only: 64-bit has plenty) and stays readable until the process exits.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    remapAnonymous(this.addr, this.size);
    close(this.fd);
  }
}
