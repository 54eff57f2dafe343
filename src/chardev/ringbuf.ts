// `ringbuf`: keeps the last `size` bytes of guest output in memory for the control API
// (ringbuf-read), never blocks (the oldest bytes are overwritten), always connected.
import { Chardev } from './chardev.js';
import type { ChardevConfig, RingbufOptions } from './options.js';

export class RingbufChardev extends Chardev {
  readonly size: number;
  readonly #buf: Buffer;
  // Free-running counters; the mask (size is a power of two) maps them into the buffer.
  #prod = 0;
  #cons = 0;

  constructor(cfg: ChardevConfig<RingbufOptions>) {
    super(cfg.id, 'ringbuf', cfg.common);
    this.size = cfg.size;
    this.#buf = Buffer.alloc(cfg.size);
  }

  /** Bytes waiting to be read. */
  get count(): number {
    return this.#prod - this.#cons;
  }

  /** Take up to `size` of the oldest bytes (QMP ringbuf-read). */
  read(size: number): Buffer {
    const n = Math.min(size, this.count);
    const out = Buffer.alloc(n);
    for (let i = 0; i < n;) {
      const at = (this.#cons + i) & (this.size - 1);
      i += this.#buf.copy(out, i, at, Math.min(this.size, at + n - i));
    }
    this.#cons += n;
    return out;
  }

  /** Store `data` as guest output (QMP ringbuf-write, and the hub's writes). */
  protected writeOut(data: Uint8Array): number {
    // Only the last `size` bytes can survive; skip the rest at once.
    const skip = Math.max(0, data.length - this.size);
    this.#prod += skip;
    for (let i = skip; i < data.length;) {
      const at = this.#prod & (this.size - 1);
      const n = Math.min(data.length - i, this.size - at);
      this.#buf.set(data.subarray(i, i + n), at);
      i += n;
      this.#prod += n;
    }
    if (this.count > this.size) this.#cons = this.#prod - this.size;
    return data.length;
  }

  /** Send bytes towards the guest (our addition: type into a port through the control API). */
  input(data: Uint8Array): void {
    this.deliver(Buffer.from(data));
  }

  protected open(): void {
    this.setConnected(true);
  }
  protected setReading(): void {}
  protected shutdown(): void {}
}
