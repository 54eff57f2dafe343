// One browser connection as a hub member: guest output goes out as binary WebSocket
// messages, binary messages coming in are keystrokes for the guest.
//
// Always a `drop` member with a bounded buffer: while the socket has more than HIGH_WATER
// bytes queued in user space (a slow or frozen browser), write() takes nothing and the hub
// keeps the bytes for this member alone, up to its `buffer`, dropping (and counting) the
// oldest beyond that. The guest and the other members never wait for it.
//
// Until the viewer's first screen (the snapshot of the port's screen) has been sent, the
// member takes nothing either, so the live stream continues exactly where the snapshot ends.
import type { WebSocket } from 'ws';
import { Chardev } from '../chardev/chardev.js';
import type { Role } from './auth.js';

/** Bytes queued on the socket beyond which the member says "would block". */
const HIGH_WATER = 64 * 1024;
const LOW_WATER = 16 * 1024;
/** How long a closing WebSocket may take to answer the close before it is cut. */
const CLOSE_GRACE_MS = 2000;
/** Default slack of a browser that falls behind. */
export const DEFAULT_WEB_BUFFER = 256 * 1024;

export class WebMember extends Chardev {
  #ready = false;
  #blocked = false;
  /** Milliseconds since the epoch of the viewer's last keystroke or resize. */
  lastActive = 0;

  constructor(
    id: string,
    readonly ws: WebSocket,
    readonly role: Role,
    readonly remote: string,
    buffer = DEFAULT_WEB_BUFFER,
  ) {
    // replay=0: a viewer's history is the port's screen (ScreenMember), sent before it joins.
    super(id, 'web', {
      logappend: false,
      timestamp: false,
      member: { policy: 'drop', buffer, input: role === 'read-write', replay: 0 },
    });
  }

  /** The first screen has been sent: let the live stream flow. */
  ready(): void {
    if (this.#ready) return;
    this.#ready = true;
    this.emit('writable');
  }

  /** A keystroke (or paste) from the browser; read-only viewers never get here. */
  input(data: Buffer): void {
    this.deliver(data);
  }

  protected open(): void {
    this.setConnected(true);
  }

  protected writeOut(data: Uint8Array): number {
    if (!this.#ready || this.ws.readyState !== this.ws.OPEN) return this.#block();
    if (this.ws.bufferedAmount >= HIGH_WATER) return this.#block();
    // The hub's buffer region is never overwritten, so it can be queued without a copy.
    this.ws.send(data, { binary: true }, () => this.#drained());
    return data.length;
  }

  protected setReading(on: boolean): void {
    // Back-pressure on the browser's input while the guest takes none: the socket stops
    // being read, TCP's window closes, and the browser's sends queue on its side.
    if (on) this.ws.resume();
    else this.ws.pause();
  }

  protected shutdown(): void {
    // Let a close frame already queued (web-disconnect's 4001) reach the browser, so that its
    // page knows not to reconnect; a browser that does not answer is cut off after a while.
    if (this.ws.readyState === this.ws.CLOSED) return;
    this.ws.resume(); // a detached member's input is paused: read on, to see the browser's answer
    if (this.ws.readyState === this.ws.OPEN) this.ws.close(1001, 'going away');
    setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS).unref();
  }

  /** The socket went away: the hub skips this member from now on. */
  gone(): void {
    this.setConnected(false);
  }

  #block(): number {
    this.#blocked = true;
    return 0;
  }

  #drained(): void {
    if (this.#blocked && this.ws.bufferedAmount < LOW_WATER) {
      this.#blocked = false;
      this.emit('writable');
    }
  }
}
