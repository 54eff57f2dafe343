// `stdio`: the daemon's own stdin/stdout. On a terminal, stdin goes raw (keeping ISIG while
// `signal=on`, QEMU's default, so ^C still stops the daemon) and the saved mode comes back
// on close, on process exit, and on a fatal signal. One per process, as in QEMU.
import type { Readable, Writable } from 'node:stream';
import tty from 'node:tty';
import * as libc from '../sys/libc.js';
import { StateError } from '../errors.js';
import { Chardev } from './chardev.js';
import type { ChardevConfig, StdioOptions } from './options.js';
import { StreamLink } from './stream.js';

const FATAL_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];

/** Which streams to use; the process's own unless a test provides a terminal of its own. */
export interface StdioStreams {
  input: Readable;
  output: Writable;
  /** The input's fd, for raw mode; -1 when it is not a file descriptor. */
  inputFd: number;
}

let inUse: string | undefined;

export class StdioChardev extends Chardev {
  #in: StreamLink | undefined;
  #out: StreamLink | undefined;
  #saved: libc.Termios | undefined;
  #restoreOnExit = () => this.restoreTerminal();
  #onSignal = (sig: NodeJS.Signals) => {
    this.restoreTerminal();
    // Only if nobody else handles it: then the signal was going to end the process anyway.
    if (process.listenerCount(sig) === 1) {
      this.unhook();
      process.kill(process.pid, sig);
    }
  };

  constructor(
    readonly config: ChardevConfig<StdioOptions>,
    private readonly streams?: StdioStreams,
  ) {
    super(config.id, 'stdio', config.common);
  }

  protected open(): void {
    if (inUse !== undefined) throw new StateError(`chardev '${this.id}': stdio is already used by chardev '${inUse}'`);
    inUse = this.id;
    const { input, output, inputFd } = this.streams ?? { input: process.stdin, output: process.stdout, inputFd: 0 };
    if (inputFd >= 0 && tty.isatty(inputFd)) {
      this.#saved = libc.tcgetattr(inputFd);
      process.on('exit', this.#restoreOnExit);
      for (const sig of FATAL_SIGNALS) process.on(sig, this.#onSignal);
      libc.makeRaw(inputFd, this.config.signal);
      this.#rawFd = inputFd;
    }
    // Two links: the end of stdin (`< /dev/null`) ends input only, as in QEMU; output goes on.
    this.#in = new StreamLink(
      input,
      undefined,
      {
        data: (chunk) => this.deliver(chunk),
        writable: () => {},
        end: (err) => this.log.info({ err: err?.message }, 'stdin ended'),
      },
      !this.inputPaused,
    );
    this.#out = new StreamLink(
      undefined,
      output,
      {
        data: () => {},
        writable: () => this.emit('writable'),
        end: (err) => this.fail(err ?? new Error(`chardev '${this.id}': stdout closed`)),
      },
      false,
    );
    this.setConnected(true);
  }

  #rawFd = -1;

  private restoreTerminal(): void {
    if (this.#saved && this.#rawFd >= 0) {
      try {
        libc.tcsetattr(this.#rawFd, this.#saved);
      } catch {
        // the terminal is gone: nothing to restore
      }
    }
    this.#saved = undefined;
  }

  private unhook(): void {
    process.off('exit', this.#restoreOnExit);
    for (const sig of FATAL_SIGNALS) process.off(sig, this.#onSignal);
  }

  protected writeOut(data: Uint8Array): number {
    return this.#out!.write(data);
  }

  protected setReading(on: boolean): void {
    this.#in?.setReading(on);
  }

  protected shutdown(): void {
    // Leave the process's own stdin/stdout open; only stop using them.
    this.#in?.release();
    this.#out?.release();
    this.#in = this.#out = undefined;
    this.restoreTerminal();
    this.unhook();
    if (inUse === this.id) inUse = undefined;
  }
}
