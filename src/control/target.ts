// What the control API needs from the daemon. The daemon implements ControlTarget; the
// control layer (server.ts, commands.ts) parses and validates every request, resolves which
// VM it is about, checks the change against the same rules as the start-up configuration
// (config/schema.ts finishVm) and only then calls the target with a change that is known to
// be valid, together with `next`: the VM's configuration with the change applied. After a
// successful call, vmConfig(vm) must return `next`, so the following request is checked
// against the live state.

import type { ChardevSpec, PortConfig, VmConfig } from '../config/schema.js';
import type { HubChange } from '../vm.js';

export type Awaitable<T> = T | Promise<T>;

/** QEMU's ChardevInfo, plus the VM the chardev belongs to. */
export interface ChardevInfo {
  label: string;
  /** QEMU style: 'pty:/dev/pts/3', 'unix:/run/x.sock,server=on', 'file:/var/log/x', 'ringbuf', 'null', 'hub'. */
  filename: string;
  /** A port (directly or through a hub) uses it. */
  'frontend-open': boolean;
}

/** One backend of a port's hub. Byte counts are from the backend's point of view of the stream. */
export interface PortMemberInfo {
  chardev: string;
  /** The backend is connected (a client on a socket, a terminal on a pty, ...). */
  open: boolean;
  /** Guest output delivered to this backend. */
  'bytes-out': number;
  /** Bytes this backend sent toward the guest. */
  'bytes-in': number;
  /** Guest output this backend missed because it could not keep up (bounded-buffer policy). */
  drops: number;
  /** A web console viewer: the browser's address:port and 'read-write' or 'read-only' ('screen': the server-side screen). */
  remote?: string;
  role?: string;
}

export interface PortInfo {
  id: string;
  name?: string;
  nr: number;
  console: boolean;
  /** The guest driver has the port open (PORT_OPEN from the guest). */
  'guest-open': boolean;
  /** What the device last told the guest (PORT_OPEN from the host): at least one backend is open. */
  'host-open': boolean;
  /** The port's chardev or hub id, if any. */
  chardev?: string;
  /** Guest -> host bytes. */
  'bytes-out': number;
  /** Host -> guest bytes. */
  'bytes-in': number;
  /**
   * Input held for the guest: read from the backends but not yet taken by the guest (its rx
   * buffers were full). Dropped with the member it came from when that member leaves.
   */
  'input-held': number;
  /**
   * Input waiting unread in the backends' OS objects (socket or pty buffers): nothing is read
   * while the guest has the port closed or its buffers are full. A departed client's goes with it.
   */
  'input-waiting': number;
  members: PortMemberInfo[];
}

/** QEMU's ChardevReturn: `pty` is the slave's path, for a pty backend. */
export interface ChardevAddResult {
  pty?: string;
}

/** A hub membership change (defined by the VM it is applied to). */
export type { HubChange };

export interface ControlTarget {
  /** The VMs' ids, in configuration order. */
  vmIds(): string[];
  /** The VM's live configuration (including run-time changes). */
  vmConfig(vm: string): VmConfig;
  queryChardev(vm: string): ChardevInfo[];
  queryPorts(vm: string): PortInfo[];
  /** Create and open a chardev (not yet used by any port). */
  chardevAdd(vm: string, chardev: ChardevSpec, next: VmConfig): Awaitable<ChardevAddResult>;
  /** Close and forget a chardev no port or hub uses. */
  chardevRemove(vm: string, id: string, next: VmConfig): Awaitable<void>;
  hubAttach(vm: string, change: HubChange, next: VmConfig): Awaitable<void>;
  hubDetach(vm: string, change: HubChange, next: VmConfig): Awaitable<void>;
  /** Hot-plug a port (PORT_ADD + PORT_NAME if the guest driver is up). `port.nr` is assigned. */
  deviceAdd(vm: string, port: PortConfig, next: VmConfig): Awaitable<void>;
  /** Unplug a port (PORT_REMOVE); its chardev stays, unused. */
  deviceDel(vm: string, id: string, next: VmConfig): Awaitable<void>;
  /** Take up to `size` bytes from a ringbuf chardev (oldest first). */
  ringbufRead(vm: string, id: string, size: number): Awaitable<Uint8Array>;
  /** Append bytes to a ringbuf chardev's ring, as QEMU's ringbuf-write does (ringbuf-read returns them). */
  ringbufWrite(vm: string, id: string, data: Uint8Array): Awaitable<void>;
  consoleResize(vm: string, cols: number, rows: number, next: VmConfig): Awaitable<void>;
  /** Shut the daemon down (called after the reply to `quit` has been sent). */
  quit(): void;
  /** The web console's URLs and viewers (undefined: no web console). */
  queryWeb?(): unknown;
  /** End one web viewer (its id from queryWeb). */
  webDisconnect?(id: string): void;
}

/** QMP error classes (QEMU's ErrorClass). */
export type QmpErrorClass = 'GenericError' | 'CommandNotFound' | 'DeviceNotFound' | 'DeviceNotActive';

/** Throw this from a target method for a class other than GenericError (ConfigError and
 *  StateError become GenericError with their message). */
export class QmpError extends Error {
  constructor(
    readonly errorClass: QmpErrorClass,
    message: string,
  ) {
    super(message);
    this.name = 'QmpError';
  }
}

/** Asynchronous events, broadcast to every client past capabilities negotiation. */
export interface ControlEvents {
  /** The guest opened/closed a port (QEMU's event: `id` is the port's device id). */
  VSERPORT_CHANGE: { id: string; open: boolean; vm: string };
  /** A vhost-user front-end (QEMU) connected to a VM's socket. */
  FRONTEND_CONNECTED: { vm: string };
  /** The front-end went away (or the connection was ended for a protocol or ring error). */
  FRONTEND_DISCONNECTED: { vm: string; reason?: string };
  /** A port was unplugged (device_del), as QEMU reports it: `path` is the QOM path QEMU would give a device with this id. */
  DEVICE_DELETED: { device: string; path: string; vm: string };
}
