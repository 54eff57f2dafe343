// The typed face of the native device: a ConsoleDevice whose ports are EventEmitters. The
// addon reports everything through one callback (name, ...args); this module routes each
// event to the device or to its port, and native log lines to the structured logger.
import { EventEmitter } from 'node:events';
import { ConfigError, StateError } from '../errors.js';
import { CONSOLE_SIZE_MAX, CONSOLE_SIZE_MIN, MAX_PORTS } from '../limits.js';
import { logger, type Logger } from '../log.js';
import { nativeAddon, type NativeDevice, type NativeEvent } from './native.js';
import type {
  ConsoleDevice,
  ConsoleDeviceEvents,
  DeviceOptions,
  DevicePort,
  DevicePortEvents,
  PortSpec,
} from './types.js';

class NativeDevicePort extends EventEmitter<DevicePortEvents> implements DevicePort {
  #guestOpen = false;
  #hostOpen = false;
  #removed = false;
  #lastStats = { bytesFromGuest: 0, bytesToGuest: 0 };

  constructor(
    private readonly native: NativeDevice,
    readonly nr: number,
    readonly name: string | undefined,
    readonly console: boolean,
  ) {
    super();
  }

  get guestOpen(): boolean {
    return this.#guestOpen;
  }

  get hostOpen(): boolean {
    return this.#hostOpen;
  }

  setHostOpen(open: boolean): void {
    if (this.#removed) return;
    this.native.setHostOpen(this.nr, open);
    this.#hostOpen = open;
  }

  write(data: Uint8Array): number {
    if (this.#removed || data.length === 0) return 0;
    return this.native.write(this.nr, data);
  }

  setOutputPaused(paused: boolean): void {
    if (!this.#removed) this.native.setOutputPaused(this.nr, paused);
  }

  stats(): { bytesFromGuest: number; bytesToGuest: number } {
    if (!this.#removed) this.#lastStats = this.native.stats(this.nr) ?? this.#lastStats;
    return { ...this.#lastStats };
  }

  /** The device's view of the guest changed (driver PORT_OPEN, or a disconnect). */
  noteGuestOpen(open: boolean): void {
    this.#guestOpen = open;
    this.emit('guest-open', open);
  }

  /** After removePort: the object stays valid for its holders but no longer reaches the guest. */
  detach(): void {
    this.stats();
    this.#removed = true;
    this.#guestOpen = false;
  }
}

class NativeConsoleDevice extends EventEmitter<ConsoleDeviceEvents> implements ConsoleDevice {
  readonly options: Readonly<DeviceOptions>;
  readonly #native: NativeDevice;
  readonly #ports = new Map<number, NativeDevicePort>();
  readonly #log: Logger;
  #connected = false;

  constructor(options: DeviceOptions) {
    super();
    validateOptions(options);
    this.options = Object.freeze({ ...options });
    this.#log = logger({ component: 'device', vm: options.name });
    const { Device } = nativeAddon();
    this.#native = new Device(
      {
        socketPath: options.socketPath,
        socketMode: options.socketMode ?? 0o600,
        maxPorts: options.maxPorts,
        multiport: options.multiport ?? true,
        cols: options.cols,
        rows: options.rows,
        resizeOrder: options.resizeOrder,
      },
      (...event) => this.#onEvent(event),
    );
  }

  get connected(): boolean {
    return this.#connected;
  }

  listen(): void {
    try {
      this.#native.listen();
    } catch (err) {
      throw new StateError(`device '${this.#label()}': ${(err as Error).message}`);
    }
  }

  listenFd(fd: number): void {
    try {
      this.#native.listenFd(fd);
    } catch (err) {
      throw new StateError(`device '${this.#label()}': ${(err as Error).message}`);
    }
  }

  close(): void {
    this.#native.close();
    this.#connected = false;
  }

  addPort(spec: PortSpec): DevicePort {
    try {
      this.#native.addPort(spec.nr, spec.name, spec.console);
    } catch (err) {
      throw new ConfigError(`device '${this.#label()}': ${(err as Error).message}`, 'nr', String(spec.nr));
    }
    const port = new NativeDevicePort(this.#native, spec.nr, spec.name, spec.console);
    this.#ports.set(spec.nr, port);
    return port;
  }

  removePort(nr: number): void {
    const port = this.#ports.get(nr);
    if (!port) throw new StateError(`device '${this.#label()}': port ${nr} does not exist`);
    this.#native.removePort(nr);
    port.detach();
    this.#ports.delete(nr);
  }

  port(nr: number): DevicePort | undefined {
    return this.#ports.get(nr);
  }

  ports(): DevicePort[] {
    return [...this.#ports.values()].sort((a, b) => a.nr - b.nr);
  }

  setConsoleSize(cols: number, rows: number): void {
    checkInt('cols', cols, CONSOLE_SIZE_MIN, CONSOLE_SIZE_MAX);
    checkInt('rows', rows, CONSOLE_SIZE_MIN, CONSOLE_SIZE_MAX);
    this.#native.setConsoleSize(cols, rows);
  }

  #label(): string {
    return this.options.name ?? this.options.socketPath;
  }

  #onEvent(event: NativeEvent): void {
    switch (event[0]) {
      case 'log':
        this.#log[event[1]](event[2]);
        return;
      case 'connected':
        this.#connected = true;
        this.emit('frontend-connected');
        return;
      case 'disconnected':
        this.#connected = false;
        this.emit('frontend-disconnected', event[1]);
        return;
      case 'device-error':
        this.emit('device-error', event[1]);
        return;
      case 'driver-ready':
        this.emit('driver-ready');
        return;
      case 'port-ready':
        this.#ports.get(event[1])?.emit('ready');
        return;
      case 'guest-open':
        this.#ports.get(event[1])?.noteGuestOpen(event[2]);
        return;
      case 'data':
        this.#ports.get(event[1])?.emit('data', event[2]);
        return;
      case 'writable':
        this.#ports.get(event[1])?.emit('writable');
        return;
    }
  }
}

function checkInt(option: string, value: unknown, min: number, max: number): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max)
    throw new ConfigError(
      `device option ${option}: ${String(value)} is not an integer in ${min}..${max}`,
      option,
      String(value),
    );
}

function validateOptions(o: DeviceOptions): void {
  if (typeof o.socketPath !== 'string' || o.socketPath === '')
    throw new ConfigError(
      `device option socketPath: '${String(o.socketPath)}' is not a path`,
      'socketPath',
      String(o.socketPath),
    );
  if (Buffer.byteLength(o.socketPath) > 107)
    throw new ConfigError(
      `device option socketPath: '${o.socketPath}' is longer than 107 bytes (a unix socket limit)`,
      'socketPath',
      o.socketPath,
    );
  if (o.socketMode !== undefined) checkInt('socketMode', o.socketMode, 0, 0o7777);
  checkInt('maxPorts', o.maxPorts, 1, MAX_PORTS);
  checkInt('cols', o.cols, CONSOLE_SIZE_MIN, CONSOLE_SIZE_MAX);
  checkInt('rows', o.rows, CONSOLE_SIZE_MIN, CONSOLE_SIZE_MAX);
  if (o.resizeOrder !== 'rows-cols' && o.resizeOrder !== 'cols-rows')
    throw new ConfigError(
      `device option resizeOrder: '${String(o.resizeOrder)}' is not 'rows-cols' or 'cols-rows'`,
      'resizeOrder',
      String(o.resizeOrder),
    );
  if (o.multiport !== undefined && typeof o.multiport !== 'boolean')
    throw new ConfigError(
      `device option multiport: '${String(o.multiport)}' is not a boolean`,
      'multiport',
      String(o.multiport),
    );
}

/** A virtio-console vhost-user device (one VM). Call listen() to accept a front-end. */
export function createConsoleDevice(options: DeviceOptions): ConsoleDevice {
  return new NativeConsoleDevice(options);
}
