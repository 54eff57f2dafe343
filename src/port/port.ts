// The seam between one virtio port (guest side, a DevicePort) and its hub (host side).
//
//  - Guest output -> hub fan-out. A console port's output is always taken (Linux busy-waits
//    on console tx); a generic port stops taking the guest's output while a lossless member
//    is behind (setOutputPaused), so the guest's write blocks instead of data being lost.
//  - Hub input -> guest, as much as the guest's rx buffers take; the rest waits here and the
//    hub's members are paused until the device reports 'writable' or the guest opens the port.
//  - While the guest has the port closed, nothing is read from the backends (QEMU: virtio-serial's
//    can_read is 0 for a port the guest has not opened, console ports included): the input waits
//    in the OS objects (a socket's buffer, the pty). Input of a member that leaves before the
//    guest took it -- what waits here and what waits in its socket -- is discarded, so a guest
//    that opens the port later never receives a departed client's stale request.
//  - Host-open: a generic port is open while any member is connected; a console port is open
//    for good, so its output always reaches transcripts and late viewers (QEMU does the same since
//    "virtio-console: set frontend open permanently for console devs").
//  - A console port follows its pty members' window size through `onResize`.
import type { DevicePort } from '../device/types.js';
import { logger, type Logger } from '../log.js';
import type { WinSize } from '../chardev/chardev.js';
import { Subscriptions } from '../events.js';
import {
  DEFAULT_CONSOLE_REPLAY,
  GENERIC_MEMBER_DEFAULTS,
  type Hub,
  type HubStats,
  type MemberDefaults,
} from '../hub/hub.js';

/**
 * What a console port asks of its hub's members: Linux busy-waits on console output, so no
 * member may hold the guest back (drop, never lossless), and people attaching get the recent
 * output. A generic port takes the hub's GENERIC_MEMBER_DEFAULTS (lossless, no replay).
 */
export const CONSOLE_MEMBER_DEFAULTS: Readonly<MemberDefaults> = {
  policy: 'drop',
  refuseLossless: 'a console port refuses (the guest would stall on console output)',
  replay: DEFAULT_CONSOLE_REPLAY,
};

export interface PortOptions {
  /** How the port reads in messages ("port 'console'"); default from its name or number. */
  label?: string;
  /** Console ports only: a member's terminal changed size; the VM layer resizes the console. */
  onResize?: (cols: number, rows: number) => void;
}

export interface PortStats {
  nr: number;
  name: string | undefined;
  console: boolean;
  guestOpen: boolean;
  hostOpen: boolean;
  bytesFromGuest: number;
  bytesToGuest: number;
  /** Input read from the members and waiting for the guest's rx buffers. */
  pendingToGuest: number;
  /** Input the members hold unread in their OS objects (a socket's or pty's buffer). */
  waitingInOs: number;
  hub: HubStats;
}

export class Port {
  readonly label: string;
  readonly #log: Logger;
  /** Input read from a member, not yet taken by the guest; tagged so a departed member's goes. */
  readonly #pending: { chunk: Buffer; member: string }[] = [];
  #flushing = false;
  #closed = false;
  readonly #subs = new Subscriptions();

  constructor(
    readonly device: DevicePort,
    readonly hub: Hub,
    private readonly opts: PortOptions = {},
  ) {
    this.label = opts.label ?? `port '${device.name ?? device.nr}'`;
    this.#log = logger({ component: 'port', port: device.name ?? device.nr, hub: hub.id });
    hub.bind(this.label, device.console ? CONSOLE_MEMBER_DEFAULTS : GENERIC_MEMBER_DEFAULTS);

    this.#subs.listen(device, 'data', (chunk: Buffer) => hub.output(chunk));
    this.#subs.listen(device, 'writable', () => this.flushInput());
    this.#subs.listen(device, 'guest-open', (open: boolean) => {
      this.#log.info({ guestOpen: open }, open ? 'guest opened the port' : 'guest closed the port');
      if (open) this.flushInput();
      else this.hub.pauseInput(); // stop reading: the input waits in the OS objects
    });
    this.#subs.listen(hub, 'data', (chunk: Buffer, member: string) => {
      this.#pending.push({ chunk, member });
      this.flushInput();
    });
    this.#subs.listen(hub, 'member-gone', (member: string) => this.dropInputOf(member));
    if (device.console) {
      device.setHostOpen(true);
      this.#subs.listen(hub, 'resize', (size: WinSize) => this.resize(size));
      if (hub.windowSize) this.resize(hub.windowSize);
    } else {
      device.setHostOpen(hub.hostOpen);
      this.#subs.listen(hub, 'open', (open: boolean) => device.setHostOpen(open));
      this.#subs.listen(hub, 'output-blocked', (blocked: boolean) => device.setOutputPaused(blocked));
      if (hub.outputBlocked) device.setOutputPaused(true);
    }
    this.flushInput(); // starts the hub's input flowing
  }

  /** Unwire: the hub and the device stay as they are, free to be wired again. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#subs.dispose();
    this.hub.pauseInput();
    this.hub.unbind(this.label);
    if (!this.device.console) this.device.setOutputPaused(false);
    this.#pending.length = 0;
  }

  stats(): PortStats {
    const d = this.device;
    return {
      nr: d.nr,
      name: d.name,
      console: d.console,
      guestOpen: d.guestOpen,
      hostOpen: d.hostOpen,
      ...d.stats(),
      pendingToGuest: this.#pending.reduce((s, p) => s + p.chunk.length, 0) + this.hub.heldInput(),
      waitingInOs: this.hub.inputWaiting(),
      hub: this.hub.stats(),
    };
  }

  /**
   * Give held input to the guest; pause the hub while the guest takes less than offered and
   * resume it once everything held went through. Resuming may hand over more input at once
   * (members deliver what they held), which lands in #pending and is written by this loop.
   */
  private flushInput(): void {
    if (this.#flushing || this.#closed) return;
    this.#flushing = true;
    try {
      for (;;) {
        // A port the guest has not opened takes nothing, and nothing is read for it.
        if (!this.device.guestOpen) {
          this.hub.pauseInput();
          return;
        }
        while (this.#pending.length) {
          const head = this.#pending[0]!;
          const n = this.device.write(head.chunk);
          if (n < head.chunk.length) {
            head.chunk = head.chunk.subarray(n);
            this.hub.pauseInput();
            return;
          }
          this.#pending.shift();
        }
        if (!this.hub.inputPaused) return;
        this.hub.resumeInput();
        if (!this.#pending.length) return;
      }
    } finally {
      this.#flushing = false;
    }
  }

  /** A member left (or failed, or was detached): what it typed and the guest has not taken goes. */
  private dropInputOf(member: string): void {
    const before = this.#pending.length;
    for (let i = this.#pending.length - 1; i >= 0; i--)
      if (this.#pending[i]!.member === member) this.#pending.splice(i, 1);
    if (this.#pending.length !== before)
      this.#log.info({ member }, 'a member left before the guest took its input; that input is dropped');
  }

  private resize(size: WinSize): void {
    if (size.cols > 0 && size.rows > 0) this.opts.onResize?.(size.cols, size.rows);
  }
}
