// `pty`: a pseudo-terminal whose slave a user opens (screen, minicom, `socat - PTY`...).
// `path=` makes a symlink to the slave, as QEMU does.
//
// Connected while some process holds the slave open. A pty master reports POLLHUP while no
// slave is open, so with no peer we poll for that (as QEMU's char-pty does); with a peer we
// read through a stream on a dup of the master until the read fails with EIO, which is
// how the peer's last close shows up. The master itself stays open the whole time so the
// slave path stays valid (the stream is a libuv pipe handle, not a tty one: see
// fd-stream.ts for why). The window size the peer sets (TIOCSWINSZ on the slave) is read
// back from the master: no signal or poll event reaches the master side when it changes.
//
// Idle cost: Linux gives the master no event when a peer opens the slave or resizes it, so
// those two are polled, at QEMU's char-pty interval (1 s), by one timer for every pty of the
// process (256 ptys: 256 poll(2)/ioctl calls a second, one wake-up). A peer's departure is an
// event (EIO on the read), and the size is also read back whenever the peer types (a resize
// is usually followed by input), so a resize shows at once in practice and within 1 s always.
import fs from 'node:fs';
import * as libc from '../sys/libc.js';
import { claimLinkPath, PathError, type Claim } from '../sys/paths.js';
import { Chardev } from './chardev.js';
import type { ChardevConfig, PtyOptions } from './options.js';
import { streamFromFd } from './fd-stream.js';
import { StreamLink } from './stream.js';

/** How often to look for a peer, and for window size changes while one is there (QEMU: 1 s). */
export const PTY_POLL_MS = 1000;

/** Every started pty, polled by one shared timer. */
const polled = new Set<PtyChardev>();
let ticker: NodeJS.Timeout | undefined;

function watchPty(p: PtyChardev): void {
  polled.add(p);
  if (ticker === undefined) {
    ticker = setInterval(() => {
      for (const q of polled) q.tick();
    }, PTY_POLL_MS);
    ticker.unref();
  }
}

function unwatchPty(p: PtyChardev): void {
  polled.delete(p);
  if (polled.size === 0 && ticker !== undefined) {
    clearInterval(ticker);
    ticker = undefined;
  }
}

export class PtyChardev extends Chardev {
  #master = -1;
  #slavePath = '';
  #link: StreamLink | undefined;
  #size: libc.WinSize | undefined;
  #claim: Claim | undefined;

  constructor(readonly config: ChardevConfig<PtyOptions>) {
    super(config.id, 'pty', config.common);
  }

  /** /dev/pts/N, once started. */
  get slavePath(): string {
    return this.#slavePath;
  }

  /** The peer's window size, once known (also reported by 'resize'). */
  override get windowSize(): libc.WinSize | undefined {
    return this.#size;
  }

  protected open(): void {
    const pty = libc.openpty();
    this.#master = pty.master;
    this.#slavePath = pty.slavePath;
    try {
      // termios belongs to the slave; set it raw before we let go of our slave fd.
      libc.makeRaw(pty.slave);
    } finally {
      libc.close(pty.slave);
    }
    if (this.config.path !== undefined) this.link(this.config.path);
    this.log.info({ pty: this.#slavePath, path: this.config.path }, 'pty ready');
    watchPty(this);
    this.poll();
  }

  private link(path: string): void {
    // A dangling link to /dev/pts/N left by an earlier run is replaced; a live one (another
    // vhost-console's lock, or a terminal that exists) and anything else are left untouched.
    try {
      this.#claim = claimLinkPath(path, `chardev '${this.id}'`);
      fs.symlinkSync(this.#slavePath, path);
      this.#claim.created();
    } catch (err) {
      this.shutdown();
      if (err instanceof PathError) throw err;
      throw new Error(
        `chardev '${this.id}': cannot create the pty link '${path}' -> ${this.#slavePath}: ${(err as Error).message}`,
      );
    }
  }

  /** @internal The shared timer's call. */
  tick(): void {
    this.poll();
  }

  private poll(): void {
    if (this.#master < 0) return;
    if (!this.#link) {
      if (libc.pollHangup(this.#master)) return;
      this.attach();
    } else if (this.inputPaused && libc.pollHangup(this.#master)) {
      // While input is paused nothing reads the master, so the EIO that tells the peer left
      // never comes: see the hang-up here (as the socket backend does). What it typed and the
      // guest did not take is dropped, so the next peer does not send it.
      this.log.info('the terminal closed while its input waited for the guest; its unread input is dropped');
      libc.flushInput(this.#master);
      this.#link.destroy();
      this.#link = undefined;
      this.setConnected(false);
      return;
    }
    this.checkSize();
  }

  private checkSize(): void {
    if (this.#master < 0) return;
    const size = libc.getWinSize(this.#master);
    if (size.cols !== this.#size?.cols || size.rows !== this.#size?.rows) {
      this.#size = size;
      this.emit('resize', size);
    }
  }

  private attach(): void {
    const stream = streamFromFd(libc.dup(this.#master));
    this.#link = new StreamLink(
      stream,
      stream,
      {
        data: (chunk) => {
          this.checkSize(); // before the input: a resize usually comes just before typing
          this.deliver(chunk);
        },
        writable: () => this.emit('writable'),
        // EIO: the last holder of the slave closed it. Back to waiting for a peer.
        end: () => {
          this.#link = undefined;
          this.setConnected(false);
        },
      },
      !this.inputPaused,
    );
    this.setConnected(true);
  }

  protected writeOut(data: Uint8Array): number {
    return this.#link ? this.#link.write(data) : data.length;
  }

  protected setReading(on: boolean): void {
    this.#link?.setReading(on);
  }

  /** What the peer typed and we have not read (it waits in the pty while the guest takes nothing). */
  override inputWaiting(): number {
    return this.#master < 0 ? 0 : (this.#link?.bufferedInput ?? 0) + Math.max(0, libc.bytesReadable(this.#master));
  }

  protected shutdown(): void {
    unwatchPty(this);
    this.#link?.destroy();
    this.#link = undefined;
    if (this.#master >= 0) libc.close(this.#master);
    this.#master = -1;
    // The link goes only if it is still the one this process made; then the lock beside it.
    this.#claim?.release();
    this.#claim = undefined;
  }
}
