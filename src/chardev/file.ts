// `file`: guest output to a file (`append=on` keeps what is there); `input-path=` feeds a
// file's content to the guest once. Always connected: a file is always there to write to.
import fs from 'node:fs';
import { Chardev } from './chardev.js';
import type { ChardevConfig, FileOptions } from './options.js';
import { StreamLink } from './stream.js';
import { openOutput } from '../sys/paths.js';
import { RotatingFile } from './rotating.js';

export class FileChardev extends Chardev {
  #out: StreamLink | undefined;
  /** With max-size=: the output is written synchronously and rotates (rotating.ts). */
  #rotating: RotatingFile | undefined;
  #in: StreamLink | undefined;

  constructor(readonly config: ChardevConfig<FileOptions>) {
    super(config.id, 'file', config.common);
  }

  protected open(): void {
    const { path, append, inputPath } = this.config;
    const rotate = this.common.rotate;
    // Open synchronously so a bad path is reported at start, naming the chardev. A file this
    // start creates is removed again if start-up fails later (see Chardev.close).
    let out: { fd: number; created: boolean };
    try {
      if (rotate) {
        this.#rotating = new RotatingFile(path, append, rotate, (err) =>
          this.log.warn({ err: err.message, path }, 'cannot rotate the output file; writing on in it'),
        );
        out = { fd: -1, created: this.#rotating.created };
      } else out = openOutput(path, append);
    } catch (err) {
      throw new Error(`chardev '${this.id}': cannot open '${path}': ${(err as Error).message}`);
    }
    if (out.created) this.noteCreated(path);
    if (!rotate) this.#out = this.output(out.fd);
    const inFd = inputPath !== undefined ? openOrExplain(this.id, inputPath, 'r') : undefined;
    if (inFd !== undefined) {
      // The end of the input file ends input only; output goes on.
      this.#in = new StreamLink(
        fs.createReadStream('', { fd: inFd }),
        undefined,
        {
          data: (chunk) => this.deliver(chunk),
          writable: () => {},
          end: (err) => err && this.log.warn({ err: err.message }, 'input file read failed'),
        },
        !this.inputPaused,
      );
    }
    this.setConnected(true);
  }

  /** A file backend is often the console log: after logrotate, go on in a new file (appending). */
  override reopenLogs(): void {
    super.reopenLogs();
    if (this.#rotating && !this.closed) {
      try {
        this.#rotating.reopen();
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'cannot reopen the output file; keeping the old one');
      }
      return;
    }
    const old = this.#out;
    if (old === undefined || this.closed) return;
    try {
      this.#out = this.output(openOrExplain(this.id, this.config.path, 'a'));
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'cannot reopen the output file; keeping the old one');
      return;
    }
    // What is queued for the old file still goes there; nothing is lost or written twice.
    old.output?.end();
  }

  private output(fd: number): StreamLink {
    const link: StreamLink = new StreamLink(
      undefined,
      fs.createWriteStream('', { fd }),
      {
        data: () => {},
        writable: () => this.emit('writable'),
        // A link replaced by reopenLogs() ends quietly; only the current one's end is a failure.
        end: (err) => {
          if (this.#out === link)
            this.fail(err ?? new Error(`chardev '${this.id}': file '${this.config.path}' closed`));
        },
      },
      false,
    );
    return link;
  }

  protected writeOut(data: Uint8Array): number {
    if (this.#rotating) {
      try {
        this.#rotating.write(data);
      } catch (err) {
        this.fail(new Error(`chardev '${this.id}': writing '${this.config.path}' failed: ${(err as Error).message}`));
        return 0;
      }
      return data.length;
    }
    return this.#out!.write(data);
  }

  protected setReading(on: boolean): void {
    this.#in?.setReading(on);
  }

  protected async shutdown(): Promise<void> {
    this.#in?.destroy();
    this.#rotating?.close();
    const out = this.#out?.output;
    // Let queued output reach the file before closing it.
    if (out && !out.destroyed) await new Promise<void>((resolve) => out.end(resolve));
    this.#out?.destroy();
  }
}

export function openOrExplain(id: string, path: string, flags: string | number): number {
  try {
    return fs.openSync(path, flags, 0o640);
  } catch (err) {
    throw new Error(`chardev '${id}': cannot open '${path}': ${(err as Error).message}`);
  }
}
