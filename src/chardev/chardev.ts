// The one interface every host backend (pty, socket, file, ...) offers to the hub.
//
// Directions, named from the guest's point of view as in QEMU:
//  - output: guest -> backend, through write(). write() returns how many bytes the backend
//    took; a short count means "would block", and 'writable' follows when it can take more.
//  - input: backend -> guest, as 'data' events. pauseInput() stops them (the guest has no rx
//    buffers); nothing is emitted while paused, and nothing is lost: the OS object fills up
//    and its writer blocks, as with QEMU's can_read() == 0.
//
// Events: ChardevEvents below.
import { EventEmitter } from 'node:events';
import { StateError } from '../errors.js';
import { logger, type Logger } from '../log.js';
import { Transcript } from './transcript.js';
import type { Rotation } from './rotating.js';
import { removeIfOurs } from '../sys/paths.js';
import type { WinSize } from '../sys/libc.js';

export type MemberPolicy = 'lossless' | 'drop';

/** A terminal's size in character cells (the winsize ioctls' type). */
export type { WinSize };

export interface ChardevEvents {
  /** A peer came (a client on a socket server, a terminal holding a pty open). */
  connected: [];
  /** The peer went, or there is none (a socket server with no client, a null chardev). */
  disconnected: [];
  /** Input towards the guest. */
  data: [chunk: Buffer];
  /** After a short write(), the backend can take more. */
  writable: [];
  /** A hard error; output is discarded from then on. */
  failed: [err: Error];
  /** The peer terminal's window size changed (pty only). */
  resize: [size: WinSize];
}

/** How a hub treats this chardev as a member. Unset fields take the port's defaults. */
export interface MemberOptions {
  policy?: MemberPolicy;
  /** Bytes a `drop` member may lag behind before its oldest bytes are dropped. */
  buffer?: number;
  /** off: a viewer; its input is discarded. Default on. */
  input?: boolean;
  /** replay=SIZE: on connecting, first the last SIZE bytes of the port's output (history on attach). */
  replay?: number;
}

/** Options every backend accepts (QEMU's ChardevCommon plus ours). */
export interface CommonOptions {
  /** Record guest output to this file. */
  logfile?: string;
  logappend: boolean;
  /** Prefix each line of the transcript (logfile=) with a host timestamp. */
  timestamp: boolean;
  /** max-size=/backups=: rotate the logfile= (and a file backend's output) like virtlogd. */
  rotate?: Rotation;
  member: MemberOptions;
}

export abstract class Chardev extends EventEmitter<ChardevEvents> {
  protected readonly log: Logger;
  #connected = false;
  #failure: Error | undefined;
  // Paused until a consumer (the hub) resumes it: with nobody to take input, it must wait.
  #inputPaused = true;
  #heldInput: Buffer[] = [];
  #owner: string | undefined;
  #transcript: Transcript | undefined;
  #started = false;
  #closed = false;
  /** Files this chardev created (its output file, its logfile=): a failed start removes them. */
  readonly #createdFiles: string[] = [];

  constructor(
    readonly id: string,
    readonly backend: string,
    readonly common: CommonOptions,
  ) {
    super();
    this.log = logger({ component: 'chardev', chardev: id, backend });
  }

  get connected(): boolean {
    return this.#connected;
  }

  /** The hard error that stopped output, if any (cleared when a new peer connects). */
  get failure(): Error | undefined {
    return this.#failure;
  }

  get inputPaused(): boolean {
    return this.#inputPaused;
  }

  /** Input read from the OS object but held back while input is paused. */
  get heldInputBytes(): number {
    return this.#heldInput.reduce((n, b) => n + b.length, 0);
  }

  /** Input waiting unread in the OS object (a socket's or pty's buffer); 0 if it cannot tell. */
  inputWaiting(): number {
    return 0;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The peer terminal's size, for backends that have one (pty); see the 'resize' event. */
  get windowSize(): { cols: number; rows: number } | undefined {
    return undefined;
  }

  /** Who uses this chardev ("hub 'hub0'"), if anyone. */
  get owner(): string | undefined {
    return this.#owner;
  }

  /** A chardev serves one user at a time (QEMU: "chardev 'x' is already in use"). */
  claim(owner: string): void {
    if (this.#owner !== undefined && this.#owner !== owner) {
      throw new StateError(`chardev '${this.id}' is already used by ${this.#owner}`);
    }
    this.#owner = owner;
  }

  release(owner: string): void {
    if (this.#owner === owner) this.#owner = undefined;
  }

  /** SIGHUP: reopen the `logfile=` (and a file backend's output) at the same path. */
  reopenLogs(): void {
    try {
      this.#transcript?.reopen();
    } catch (err) {
      this.log.warn(
        { err: (err as Error).message, logfile: this.common.logfile },
        'cannot reopen the log file; keeping the old one',
      );
    }
  }

  /** Open the OS objects. Resolves when the backend is usable (a `wait=on` server: first client). */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    try {
      if (this.common.logfile) {
        this.#transcript = new Transcript(
          this.common.logfile,
          this.common.logappend,
          this.common.timestamp,
          this.common.rotate,
        );
        if (this.#transcript.created) this.noteCreated(this.common.logfile);
      }
      await this.open();
    } catch (err) {
      // Leave nothing behind a failed start: no fd, no socket, no file it created.
      await this.close({ undo: true }).catch(() => {});
      throw named(err, `chardev '${this.id}'`);
    }
  }

  /**
   * Guest output. Returns the bytes taken (short = would block; wait for 'writable').
   * With no peer, or after a hard error, the bytes are discarded and reported as taken, as
   * QEMU's backends do, so an absent reader never holds anyone back. The transcript
   * (logfile=) records them either way: it exists to see what the guest said while nobody watched.
   */
  write(data: Uint8Array): number {
    let n = data.length;
    if (this.#connected && !this.#failure && !this.#closed) {
      try {
        n = this.writeOut(data);
      } catch (err) {
        this.fail(err as Error);
        n = data.length;
      }
    }
    if (n > 0) this.#transcript?.write(data.subarray(0, n));
    return n;
  }

  pauseInput(): void {
    if (this.#inputPaused) return;
    this.#inputPaused = true;
    this.setReading(false);
  }

  resumeInput(): void {
    if (!this.#inputPaused) return;
    this.#inputPaused = false;
    // A listener may pause again while we hand over what was held back.
    while (!this.#inputPaused && this.#heldInput.length) this.emit('data', this.#heldInput.shift()!);
    if (!this.#inputPaused) this.setReading(true);
  }

  /**
   * Release the OS objects (sockets and links it made are removed). `undo`: start-up failed,
   * so the files it created (an output file, a logfile=) go too, if they are still ours.
   */
  async close(opts: { undo?: boolean } = {}): Promise<void> {
    if (this.#closed) {
      if (opts.undo) this.removeCreated();
      return;
    }
    this.#closed = true;
    this.#heldInput = [];
    try {
      await this.shutdown();
    } finally {
      this.setConnected(false);
      this.#transcript?.close();
      this.#transcript = undefined;
      if (opts.undo) this.removeCreated();
    }
  }

  /** Record a file this chardev created, for close({ undo: true }). */
  protected noteCreated(path: string): void {
    this.#createdFiles.push(path);
  }

  private removeCreated(): void {
    for (const p of this.#createdFiles.splice(0))
      if (removeIfOurs(p)) this.log.debug({ path: p }, 'removed a file this failed start created');
  }

  /** Open the OS object(s). */
  protected abstract open(): Promise<void> | void;
  /** Write to the connected peer; return the bytes taken. Throw on a hard error. */
  protected abstract writeOut(data: Uint8Array): number;
  /** Start/stop reading from the OS object (flow control of input). */
  protected abstract setReading(on: boolean): void;
  /** Release the OS objects. */
  protected abstract shutdown(): Promise<void> | void;

  /** Hand input to the guest side, or hold it while input is paused. */
  protected deliver(chunk: Buffer): void {
    if (this.#closed || chunk.length === 0) return;
    if (this.#inputPaused) this.#heldInput.push(chunk);
    else this.emit('data', chunk);
  }

  protected setConnected(on: boolean): void {
    if (on === this.#connected) return;
    this.#connected = on;
    if (on) this.#failure = undefined;
    else this.#heldInput = [];
    this.log.debug({ connected: on }, on ? 'peer connected' : 'peer disconnected');
    this.emit(on ? 'connected' : 'disconnected');
  }

  protected fail(err: Error): void {
    if (this.#failure) return;
    this.#failure = err;
    this.log.warn({ err: err.message }, 'chardev failed; its output is discarded');
    this.emit('failed', err);
  }
}

/** An error that names its chardev (or port, or VM): `prefix: message` unless it already does. */
export function named(err: unknown, prefix: string): Error {
  const e = err instanceof Error ? err : new Error(String(err));
  if (e.message.startsWith(prefix) || e.message.includes(`${prefix}:`)) return e;
  e.message = `${prefix}: ${e.message}`;
  return e;
}
