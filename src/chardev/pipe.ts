// `pipe`: FIFOs, as QEMU does it: PATH.in (input to the guest) and PATH.out (guest output)
// when both exist, else PATH for both directions. They are opened read-write so opening
// never blocks and a reader or writer that comes and goes never causes EOF; the pipe is
// therefore always connected. With a single PATH, another process must read the guest's
// output faster than we do, or we read it back ourselves (QEMU's behaviour too).
import fs from 'node:fs';
import net from 'node:net';
import { Chardev } from './chardev.js';
import { openOrExplain } from './file.js';
import type { ChardevConfig, PipeOptions } from './options.js';
import { StreamLink } from './stream.js';
import { checkFifo } from '../sys/paths.js';

export class PipeChardev extends Chardev {
  #link: StreamLink | undefined;

  constructor(readonly config: ChardevConfig<PipeOptions>) {
    super(config.id, 'pipe', config.common);
  }

  /** The FIFO paths in use: [input, output]. */
  static paths(path: string): [string, string] {
    const inPath = `${path}.in`;
    const outPath = `${path}.out`;
    return fs.existsSync(inPath) && fs.existsSync(outPath) ? [inPath, outPath] : [path, path];
  }

  protected open(): void {
    const [inPath, outPath] = PipeChardev.paths(this.config.path);
    const fifo = (path: string) => {
      // Looked at before it is opened: opening some files has effects (a tape rewinds).
      checkFifo(path, `chardev '${this.id}'`);
      const fd = openOrExplain(this.id, path, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
      if (!fs.fstatSync(fd).isFIFO()) {
        fs.closeSync(fd);
        throw new Error(`chardev '${this.id}': path '${path}' is not a FIFO`);
      }
      return fd;
    };
    const inFd = fifo(inPath);
    const input = new net.Socket({ fd: inFd, readable: true, writable: inPath === outPath });
    const output = inPath === outPath ? input : new net.Socket({ fd: fifo(outPath), readable: false, writable: true });
    this.#link = new StreamLink(
      input,
      output,
      {
        data: (chunk) => this.deliver(chunk),
        writable: () => this.emit('writable'),
        end: (err) => this.fail(err ?? new Error(`chardev '${this.id}': pipe closed`)),
      },
      !this.inputPaused,
    );
    this.setConnected(true);
  }

  protected writeOut(data: Uint8Array): number {
    return this.#link!.write(data);
  }

  protected setReading(on: boolean): void {
    this.#link?.setReading(on);
  }

  protected shutdown(): void {
    this.#link?.destroy();
  }
}
