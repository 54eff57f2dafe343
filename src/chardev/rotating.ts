// An output file that rotates the way virtlogd rotates QEMU's console logs: when writing would
// take PATH past `maxSize`, PATH.N-1 becomes PATH.N (the oldest, PATH.N, is dropped), ...,
// PATH becomes PATH.1, and writing goes on in a new PATH. A write that crosses the limit is
// split at it, so every file holds at most maxSize bytes and the files, read oldest first
// (PATH.N ... PATH.1, PATH), hold every byte exactly once. Writes are synchronous (as the
// logfile= has always been): what the guest printed is on disk when write() returns.
//
// With append, the size of an existing PATH counts: a restarted daemon rotates at the same
// point a running one would have. reopen() (SIGHUP, after an outside logrotate moved PATH)
// continues in the file now at PATH, appending. Without a rotation, it is a plain file.
import fs from 'node:fs';
import { openOutput } from '../sys/paths.js';

export interface Rotation {
  /** Rotate before PATH would exceed this many bytes (>= 1). */
  maxSize: number;
  /** Rotated files kept: PATH.1 (newest) .. PATH.<backups>; 0 keeps none. */
  backups: number;
}

/** virtlogd's defaults (max_size = 2 MiB, max_backups = 3): `backups` when only max-size is given. */
export const DEFAULT_BACKUPS = 3;
export const MAX_BACKUPS = 99;

export class RotatingFile {
  #fd: number | undefined;
  #size = 0;
  /** This process created PATH at open (a failed start-up removes it again). */
  readonly created: boolean;

  /** After a failed rotation: the size at which to try again (the bytes go on into PATH meanwhile). */
  #retryAt = 0;

  /** `onError`: a rotation failed (e.g. permissions); writing goes on in PATH, never losing a byte. */
  constructor(
    readonly path: string,
    append: boolean,
    readonly rotation?: Rotation,
    private readonly onError?: (err: Error) => void,
  ) {
    const { fd, created } = openOutput(path, append);
    this.#fd = fd;
    this.created = created;
    this.#size = fs.fstatSync(fd).size;
  }

  get fd(): number | undefined {
    return this.#fd;
  }

  /** Bytes in the current PATH. */
  get size(): number {
    return this.#size;
  }

  write(data: Uint8Array): void {
    let at = 0;
    while (this.#fd !== undefined && at < data.length) {
      let n = data.length - at;
      if (this.rotation && this.#size >= this.#retryAt) {
        if (this.#size >= this.rotation.maxSize) {
          try {
            this.rotate();
          } catch (err) {
            this.#retryAt = this.#size + this.rotation.maxSize;
            this.onError?.(err as Error);
          }
        }
        if (this.#size < this.rotation.maxSize) n = Math.min(n, this.rotation.maxSize - this.#size);
      }
      const w = fs.writeSync(this.#fd, data, at, n);
      at += w;
      this.#size += w;
    }
  }

  /** SIGHUP: continue in the file now at PATH (appending; created if it is gone). */
  reopen(): void {
    if (this.#fd === undefined) return;
    const fd = fs.openSync(this.path, 'a', 0o640);
    fs.closeSync(this.#fd);
    this.#fd = fd;
    this.#size = fs.fstatSync(fd).size;
    this.#retryAt = 0;
  }

  close(): void {
    if (this.#fd !== undefined) fs.closeSync(this.#fd);
    this.#fd = undefined;
  }

  /** PATH.k -> PATH.k+1 from the oldest down, PATH -> PATH.1, then a new, empty PATH. */
  private rotate(): void {
    const { backups } = this.rotation!;
    const name = (k: number) => (k === 0 ? this.path : `${this.path}.${k}`);
    const { O_WRONLY, O_APPEND, O_CREAT, O_EXCL, O_TRUNC } = fs.constants;
    if (backups === 0) {
      // Nothing kept: start PATH over (the same file, so its owner and mode stay).
      const fd = fs.openSync(this.path, O_WRONLY | O_APPEND | O_TRUNC);
      fs.closeSync(this.#fd!);
      this.#fd = fd;
      this.#size = 0;
      this.#retryAt = 0;
      return;
    }
    for (let k = backups - 1; k >= 0; k--) {
      try {
        fs.renameSync(name(k), name(k + 1)); // replaces (drops) the oldest
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    // PATH was renamed: the fd still points at PATH.1. A new PATH, exclusively (nobody else's).
    const fd = fs.openSync(this.path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL, 0o640);
    fs.closeSync(this.#fd!);
    this.#fd = fd;
    this.#size = 0;
    this.#retryAt = 0;
  }
}
