// A transcript: the record of a guest's output that `logfile=` asks for on a chardev (or a
// hub). QEMU calls the option logfile; in this code "log" means the daemon's diagnostics
// (src/log.ts), and the guest's output kept in a file is a transcript. Writes are
// synchronous like QEMU's, so the transcript is complete up to the last byte the guest sent
// even if the process dies right after; with `timestamp=on` each line starts with the host
// time. With max-size= it rotates like virtlogd (see rotating.ts).
import { logger } from '../log.js';
import { RotatingFile, type Rotation } from './rotating.js';

export class Transcript {
  readonly #file: RotatingFile;
  #atLineStart = true;
  /** This process created the file (a failed start-up removes it again). */
  readonly created: boolean;

  constructor(
    readonly path: string,
    append: boolean,
    private readonly timestamp: boolean,
    rotation?: Rotation,
  ) {
    this.#file = new RotatingFile(path, append, rotation, (err) =>
      logger({ component: 'chardev', logfile: path }).warn(
        { err: err.message },
        'cannot rotate the log file; writing on in it',
      ),
    );
    this.created = this.#file.created;
  }

  write(data: Uint8Array): void {
    if (data.length === 0) return;
    this.#file.write(this.timestamp ? this.stamp(data) : data);
  }

  /** After logrotate moved the file away (SIGHUP): continue in a new file at the same path. */
  reopen(): void {
    this.#file.reopen();
  }

  close(): void {
    this.#file.close();
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
