// An in-memory DevicePort: the guest side of one virtio port, played by the test. It follows
// the contract in src/device/types.ts: write() takes what the "posted rx buffers" hold (none
// for a generic port the guest has not opened), output pausing is ignored on a console port.
import { EventEmitter } from 'node:events';
import type { DevicePort, DevicePortEvents } from '../../src/device/types.js';

export class DevicePortDouble extends EventEmitter<DevicePortEvents> implements DevicePort {
  guestOpen: boolean;
  hostOpen = false;
  outputPaused = false;
  /** Every setHostOpen / setOutputPaused call, in order. */
  readonly hostOpenCalls: boolean[] = [];
  readonly pauseCalls: boolean[] = [];
  /** Bytes the guest's rx buffers can still take. */
  rxRoom: number;
  #toGuest: Buffer[] = [];
  #fromGuest = 0;

  constructor(
    readonly nr: number,
    readonly name: string | undefined,
    readonly console: boolean,
    opts: { rxRoom?: number; guestOpen?: boolean } = {},
  ) {
    super();
    this.rxRoom = opts.rxRoom ?? Infinity;
    this.guestOpen = opts.guestOpen ?? console;
  }

  setHostOpen(open: boolean): void {
    this.hostOpen = open;
    this.hostOpenCalls.push(open);
  }

  write(data: Uint8Array): number {
    if (!this.console && !this.guestOpen) return 0;
    const n = Math.min(this.rxRoom, data.length);
    this.rxRoom -= n;
    this.#toGuest.push(Buffer.from(data.subarray(0, n)));
    return n;
  }

  setOutputPaused(paused: boolean): void {
    this.pauseCalls.push(paused);
    if (!this.console) this.outputPaused = paused;
  }

  stats(): { bytesFromGuest: number; bytesToGuest: number } {
    return { bytesFromGuest: this.#fromGuest, bytesToGuest: this.received().length };
  }

  // --- the guest's side ---

  /** The guest writes; false if the device is not taking its output now (the write blocks). */
  guestWrite(data: Buffer | string): boolean {
    if (this.outputPaused) return false;
    const chunk = Buffer.from(data);
    this.#fromGuest += chunk.length;
    this.emit('data', chunk);
    return true;
  }

  /** The guest posts rx buffers worth `bytes`. */
  postRx(bytes: number): void {
    this.rxRoom += bytes;
    this.emit('writable');
  }

  setGuestOpen(open: boolean): void {
    this.guestOpen = open;
    this.emit('guest-open', open);
  }

  received(): Buffer {
    return Buffer.concat(this.#toGuest);
  }
}
