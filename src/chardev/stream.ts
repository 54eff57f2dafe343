// Joins a chardev to Node streams (a socket, a tty, a FIFO, a file). Node streams accept
// every write and queue it; a chardev must say "would block" instead, so a link lets a write
// fill the stream's queue up to its high-water mark and no further (the analogue of a full
// kernel socket buffer), and reports 'drain' as the chardev's 'writable'.
import type { Readable, Writable } from 'node:stream';
import { Subscriptions } from '../events.js';

export interface LinkHandlers {
  data(chunk: Buffer): void;
  /** The writable side drained after a short write. */
  writable(): void;
  /** The peer went away or the stream failed; the link is dead. */
  end(err?: Error): void;
}

export class StreamLink {
  #wantDrain = false;
  #ended = false;
  readonly #subs = new Subscriptions();

  constructor(
    readonly input: Readable | undefined,
    readonly output: Writable | undefined,
    private readonly handlers: LinkHandlers,
    reading: boolean,
  ) {
    const on = (s: Readable | Writable, ev: string, fn: (...a: never[]) => void) => this.#subs.listen(s, ev, fn);
    const end = (err?: Error) => this.finish(err);
    for (const s of new Set([input, output])) {
      if (!s) continue;
      on(s, 'error', end);
      on(s, 'close', () => end());
    }
    if (input) {
      on(input, 'data', (chunk: Buffer) => handlers.data(chunk));
      on(input, 'end', () => end());
      if (reading) input.resume();
      else input.pause();
    }
    if (output) {
      on(output, 'drain', () => {
        if (!this.#wantDrain) return;
        this.#wantDrain = false;
        handlers.writable();
      });
    }
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Queue at most what fits below the stream's high-water mark; return the bytes taken. */
  write(data: Uint8Array): number {
    const out = this.output;
    if (!out || this.#ended || out.destroyed) return data.length;
    let n = 0;
    // A write the kernel takes at once leaves the queue empty and room for more, so loop.
    while (n < data.length) {
      const room = out.writableHighWaterMark - out.writableLength;
      if (room <= 0) break;
      const k = Math.min(room, data.length - n);
      out.write(Buffer.from(data.subarray(n, n + k))); // the queue keeps a reference: give it a copy
      n += k;
    }
    // Short means the queue reached the mark, so a write() returned false and 'drain' will come.
    if (n < data.length) this.#wantDrain = true;
    return n;
  }

  /** Queue all of `data` if the queue is below its mark at all (may overshoot it once). */
  writeWhole(data: Uint8Array): boolean {
    const out = this.output;
    if (!out || this.#ended || out.destroyed) return true;
    if (out.writableLength >= out.writableHighWaterMark) {
      this.#wantDrain = true;
      return false;
    }
    if (!out.write(Buffer.from(data))) this.#wantDrain = true;
    return true;
  }

  setReading(on: boolean): void {
    if (!this.input || this.#ended) return;
    if (on) {
      startReading(this.input);
      this.input.resume();
    } else {
      this.input.pause();
      stopReading(this.input);
    }
  }

  /** Input read from the OS object into the stream's buffer, not yet handed over. */
  get bufferedInput(): number {
    return this.input?.readableLength ?? 0;
  }

  /** Stop using the streams but leave them open (the process's own stdin/stdout). */
  release(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.input?.pause();
    this.#subs.dispose();
  }

  /** Tear the streams down without reporting an end (the owner knows). Queued output is lost. */
  destroy(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#teardown();
  }

  private finish(err?: Error): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#teardown();
    this.handlers.end(err);
  }

  #teardown(): void {
    this.#subs.dispose();
    for (const s of new Set([this.input, this.output])) {
      if (!s) continue;
      s.on('error', () => {}); // late errors of a stream we are discarding
      s.destroy();
    }
  }
}

/**
 * A paused Readable still reads from its OS object until its buffer reaches the high-water
 * mark; a paused net.Socket (a socket, a pty master, a FIFO) is told to stop reading at once,
 * as Node itself does for sockets with an `onread` buffer, so input stays in the OS object
 * (where a departed client's goes with it); startReading() undoes it, as Node's
 * Socket.resume() does for those sockets.
 */
type ReadHandle = { reading?: boolean; readStop?: () => number; readStart?: () => number };

function stopReading(input: Readable): void {
  const handle = (input as { _handle?: ReadHandle })._handle;
  if (handle?.reading && typeof handle.readStop === 'function') {
    handle.reading = false;
    handle.readStop();
  }
}

function startReading(input: Readable): void {
  const handle = (input as { _handle?: ReadHandle; connecting?: boolean; destroyed?: boolean })._handle;
  if (handle && handle.reading === false && typeof handle.readStart === 'function' && !input.destroyed) {
    handle.reading = true;
    handle.readStart();
  }
}
