// The `logfile=` of a chardev (and of a hub): a copy of the guest's output. Writes are
// synchronous like QEMU's, so the log is complete up to the last byte the guest sent even if
// the process dies right after; with `timestamp=on` each line starts with the host time.
import fs from 'node:fs';
import { openOutput } from '../sys/paths.js';

export class ChardevLog {
  #fd: number | undefined;
  #atLineStart = true;
  /** This process created the file (a failed start-up removes it again). */
  readonly created: boolean;

  constructor(readonly path: string, append: boolean, private readonly timestamp: boolean) {
    const { fd, created } = openOutput(path, append);
    this.#fd = fd;
    this.created = created;
  }

  write(data: Uint8Array): void {
    if (this.#fd === undefined || data.length === 0) return;
    fs.writeSync(this.#fd, this.timestamp ? this.stamp(data) : data);
  }

  /** After logrotate moved the file away (SIGHUP): continue in a new file at the same path. */
  reopen(): void {
    if (this.#fd === undefined) return;
    const fd = fs.openSync(this.path, 'a', 0o640);
    fs.closeSync(this.#fd);
    this.#fd = fd;
  }

  close(): void {
    if (this.#fd !== undefined) fs.closeSync(this.#fd);
    this.#fd = undefined;
  }

  /** Insert `[ISO time] ` before every line start; a line may span several writes. */
  private stamp(data: Uint8Array): Buffer {
    const prefix = Buffer.from(`[${new Date().toISOString()}] `);
    const parts: Uint8Array[] = [];
    let from = 0;
    while (from < data.length) {
      if (this.#atLineStart) parts.push(prefix);
      const nl = data.indexOf(0x0a, from);
      const end = nl < 0 ? data.length : nl + 1;
      parts.push(data.subarray(from, end));
      this.#atLineStart = nl >= 0;
      from = end;
    }
    return Buffer.concat(parts);
  }
}
