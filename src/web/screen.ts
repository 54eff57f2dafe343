// The screen of a console port as a terminal would show it: a hub member that feeds the
// guest's output to a server-side terminal emulator (@xterm/headless), so that a viewer who
// connects late first gets the current screen and recent scrollback (@xterm/addon-serialize)
// instead of a blank terminal.
//
// It is an ordinary `drop` member of the port's hub: the emulator parses asynchronously, and
// while it is more than MAX_UNPARSED bytes behind, this member says "would block", so a flood
// of output costs bounded memory (the hub drops the oldest bytes for this member alone and
// counts them). It never types into the guest (input=off).
import xtermHeadless from '@xterm/headless';
import serializeAddon from '@xterm/addon-serialize';
import { EventEmitter } from 'node:events';
import { Chardev } from '../chardev/chardev.js';

const { Terminal } = xtermHeadless;
const { SerializeAddon } = serializeAddon;

/** Output handed to the emulator and not parsed yet, beyond which this member stops taking more. */
const MAX_UNPARSED = 256 * 1024;
export const DEFAULT_SCROLLBACK = 1000;

export class ScreenMember extends Chardev {
  /** 'output': guest output reached the emulator (a chardev's own events are ChardevEvents). */
  readonly screenEvents = new EventEmitter<{ output: [] }>();
  readonly #term: InstanceType<typeof Terminal>;
  readonly #serializer: InstanceType<typeof SerializeAddon>;
  /** Bytes taken (fed) and parsed by the emulator since it was made. */
  #fed = 0;
  #parsed = 0;
  #waiting = false;
  readonly #idle: (() => void)[] = [];
  /** The last serialisation, valid while nothing was fed and the size is the same. */
  #cache: { fed: number; cols: number; rows: number; text: string } | undefined;
  /** Milliseconds the last serialisation took. */
  lastCost = 0;

  constructor(
    id: string,
    readonly scrollback: number,
    size: { cols: number; rows: number },
  ) {
    super(id, 'web-screen', {
      logappend: false,
      timestamp: false,
      member: { policy: 'drop', input: false, replay: 0 },
    });
    this.#term = new Terminal({ cols: size.cols, rows: size.rows, scrollback, allowProposedApi: true });
    this.#serializer = new SerializeAddon();
    this.#term.loadAddon(this.#serializer);
  }

  get cols(): number {
    return this.#term.cols;
  }

  get rows(): number {
    return this.#term.rows;
  }

  /** The emulator has parsed everything the hub gave it, and the hub holds nothing back for it. */
  get idle(): boolean {
    return this.#parsed === this.#fed && !this.#waiting;
  }

  /** Follow the guest's console size (cheap when unchanged). */
  setSize(cols: number, rows: number): void {
    if (cols > 0 && rows > 0 && (cols !== this.#term.cols || rows !== this.#term.rows)) this.#term.resize(cols, rows);
  }

  /**
   * Call `fn` (synchronously) at the next moment the screen is idle: a member attached to
   * the hub then starts exactly where the screen's state ends. Now, if it is idle already.
   */
  whenIdle(fn: () => void): void {
    if (this.idle) fn();
    else this.#idle.push(fn);
  }

  /**
   * The screen and the last `scrollback` lines as escape sequences. Serialising costs time
   * on the daemon's one event loop (about 40 ms for 1000 lines of 80 columns), so the result
   * is reused until new output arrives or the size changes.
   */
  snapshot(): string {
    const c = this.#cache;
    if (c && c.fed === this.#fed && c.cols === this.#term.cols && c.rows === this.#term.rows) return c.text;
    const t0 = performance.now();
    const text = this.#serializer.serialize({ scrollback: this.scrollback });
    this.lastCost = performance.now() - t0;
    this.#cache = { fed: this.#fed, cols: this.#term.cols, rows: this.#term.rows, text };
    return text;
  }

  protected open(): void {
    this.setConnected(true);
  }

  protected writeOut(data: Uint8Array): number {
    if (this.#fed - this.#parsed >= MAX_UNPARSED) {
      this.#waiting = true;
      return 0;
    }
    // The hub's buffer region is immutable, but the emulator keeps the chunk until it parses
    // it, after the hub may have released the block: give it its own copy.
    const chunk = Uint8Array.from(data);
    this.screenEvents.emit('output');
    this.#fed += chunk.length;
    this.#term.write(chunk, () => this.#parsedChunk(chunk.length));
    return chunk.length;
  }

  protected setReading(): void {}

  protected shutdown(): void {
    this.#idle.length = 0;
    this.#cache = undefined;
    this.#term.dispose();
  }

  #parsedChunk(n: number): void {
    this.#parsed += n;
    if (this.#waiting && this.#fed - this.#parsed < MAX_UNPARSED / 2) {
      this.#waiting = false;
      this.emit('writable'); // the hub hands over what it kept, synchronously
    }
    if (this.idle) for (const fn of this.#idle.splice(0)) fn();
  }
}
