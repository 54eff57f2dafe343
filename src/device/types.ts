// The device's typed face, as the upper layers (port/hub, vm, control) see it.
// The native addon is the "hardware" behind it; src/device/device.ts implements these
// interfaces on top of the addon. Nothing here depends on Node beyond EventEmitter.

import type { EventEmitter } from 'node:events';

/** Order of the two u16 fields of a RESIZE control message payload. Linux up to 6.14 (and
 *  again after the 2025 revert) reads rows first; 6.15-6.16 and some stable kernels read cols
 *  first (the spec's order). */
export type ResizeOrder = 'rows-cols' | 'cols-rows';

export interface DeviceOptions {
  /** Path of the vhost-user unix socket the front-end (QEMU) connects to. */
  socketPath: string;
  /** Permission bits of the socket file (default 0o600). */
  socketMode?: number;
  /** max_nr_ports in config space; queues = 2 * (maxPorts + 1). */
  maxPorts: number;
  /** Offer VIRTIO_CONSOLE_F_MULTIPORT (default true). Off: one console port (nr 0), 2 queues. */
  multiport?: boolean;
  /** Initial console size. */
  cols: number;
  rows: number;
  resizeOrder: ResizeOrder;
  /** A label for log lines (the VM's id). */
  name?: string;
}

export interface PortSpec {
  nr: number;
  /** Sent as PORT_NAME; absent for an unnamed port. */
  name?: string;
  /** Sent as CONSOLE_PORT: the guest reaches it as /dev/hvcN. */
  console: boolean;
}

export interface DevicePortEvents {
  /** Guest -> host bytes, in order, never split across ports. */
  data: [chunk: Buffer];
  /** The guest driver opened/closed the port (PORT_OPEN from the driver). */
  'guest-open': [open: boolean];
  /** The guest posted rx buffers after a write() returned short. */
  writable: [];
  /** The driver sent PORT_READY for this port. */
  ready: [];
}

/** One virtio port, guest side. */
export interface DevicePort extends EventEmitter<DevicePortEvents> {
  readonly nr: number;
  readonly name: string | undefined;
  readonly console: boolean;
  /** The guest has the port open (always true for a console port once it is set up). */
  readonly guestOpen: boolean;
  /** What the device last told the guest with PORT_OPEN from the host side. */
  readonly hostOpen: boolean;
  /** Tell the guest whether the host side is connected (PORT_OPEN 1/0). */
  setHostOpen(open: boolean): void;
  /**
   * Host -> guest. Copies as much of `data` as the guest's posted rx buffers take and returns
   * that count (0..data.length). For a generic port the guest has not opened, returns 0 (Linux
   * would discard it): hold the data and retry on 'guest-open' / 'writable'.
   */
  write(data: Uint8Array): number;
  /**
   * Guest -> host back-pressure. While paused the device takes no more tx buffers of this port
   * from the guest (the guest's write blocks). A console port ignores this: Linux busy-waits on
   * console tx, so its output is always consumed.
   */
  setOutputPaused(paused: boolean): void;
  /** Counters for query-ports. */
  stats(): { bytesFromGuest: number; bytesToGuest: number };
}

export interface ConsoleDeviceEvents {
  'frontend-connected': [];
  'frontend-disconnected': [reason: string];
  /** The guest driver sent DEVICE_READY (ports are being added). */
  'driver-ready': [];
  /** A broken ring / bad front-end message ended that connection. */
  'device-error': [message: string];
}

/** One vhost-user virtio-console device (one VM). */
export interface ConsoleDevice extends EventEmitter<ConsoleDeviceEvents> {
  readonly options: Readonly<DeviceOptions>;
  /** Start listening on the socket. Throws with a clear message if the path is held by a live daemon. */
  listen(): void;
  /**
   * Serve on a socket that is already listening (socket activation: the service manager
   * created `socketPath` and passed its fd). Takes the fd; close() leaves the path alone.
   */
  listenFd(fd: number): void;
  /** Stop: close the connection and the listening socket, remove the socket file. */
  close(): void;
  /** Add a port (at start-up or at run time: sends PORT_ADD if the driver is up). */
  addPort(spec: PortSpec): DevicePort;
  /** Remove a port (sends PORT_REMOVE if the driver is up). */
  removePort(nr: number): void;
  port(nr: number): DevicePort | undefined;
  ports(): DevicePort[];
  /** Change the console size: RESIZE to a multiport guest, config + config-change notification otherwise. */
  setConsoleSize(cols: number, rows: number): void;
  readonly connected: boolean;
}
