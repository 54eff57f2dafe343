// Loads the native addon (build/Release/vhost_console.node, built by `npm install`) and gives
// its Device class a type. Only src/device/device.ts should use this.
import { createRequire } from 'node:module';
import type { DeviceOptions } from './types.js';

/** Options the native Device constructor accepts (validated again natively): the device's
 *  own options less the log label, with the RESIZE order optional (native default applies). */
export type NativeDeviceOptions = Omit<DeviceOptions, 'name' | 'resizeOrder'> &
  Partial<Pick<DeviceOptions, 'resizeOrder'>>;

export type NativeLogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Every event the addon reports, as the (name, ...args) tuples its callback receives. */
export type NativeEvent =
  | ['log', NativeLogLevel, string]
  | ['connected']
  | ['disconnected', string]
  | ['device-error', string]
  | ['driver-ready']
  | ['port-ready', number]
  | ['guest-open', number, boolean]
  | ['data', number, Buffer]
  | ['writable', number];

export type NativeEventCallback = (...event: NativeEvent) => void;

export interface NativeDevice {
  /** Throws an Error naming the socket if it cannot listen (e.g. held by a live process). */
  listen(): void;
  /** Serve on an already-listening socket (systemd socket activation); takes the fd. */
  listenFd(fd: number): void;
  close(): void;
  addPort(nr: number, name: string | undefined, console: boolean): void;
  removePort(nr: number): void;
  setHostOpen(nr: number, open: boolean): void;
  /** Bytes the guest's posted rx buffers took (0..data.length). */
  write(nr: number, data: Uint8Array): number;
  setOutputPaused(nr: number, paused: boolean): void;
  setConsoleSize(cols: number, rows: number): void;
  stats(nr: number): { bytesFromGuest: number; bytesToGuest: number } | undefined;
  isConnected(): boolean;
}

export interface NativeAddon {
  Device: new (options: NativeDeviceOptions, callback: NativeEventCallback) => NativeDevice;
}

let addon: NativeAddon | undefined;

/** The addon, loaded on first use (relative to this file: works from src/ and from dist/). */
export function nativeAddon(): NativeAddon {
  if (!addon) {
    const require = createRequire(import.meta.url);
    addon = require('../../build/Release/vhost_console.node') as NativeAddon;
  }
  return addon;
}
