// `null`: output vanishes, no input. Never connected, as in QEMU, so it never holds a port open.
import { Chardev } from './chardev.js';
import type { ChardevConfig, NullOptions } from './options.js';

export class NullChardev extends Chardev {
  constructor(cfg: ChardevConfig<NullOptions>) {
    super(cfg.id, 'null', cfg.common);
  }
  protected open(): void {}
  protected writeOut(data: Uint8Array): number {
    return data.length;
  }
  protected setReading(): void {}
  protected shutdown(): void {}
}
