// Typed, validated options of each backend, as parseChardevOptions (registry.ts) returns them.
import type { CommonOptions } from './chardev.js';

export type SocketAddress = { type: 'unix'; path: string } | { type: 'tcp'; host: string; port: number };

export interface NullOptions {
  backend: 'null';
}
export interface RingbufOptions {
  backend: 'ringbuf';
  size: number;
}
export interface FileOptions {
  backend: 'file';
  path: string;
  append: boolean;
  inputPath?: string;
}
export interface PipeOptions {
  backend: 'pipe';
  path: string;
}
/** The systemd journal (native protocol): `path` is its socket; syslog priority 0..7. */
export interface JournalOptions {
  backend: 'journal';
  path: string;
  identifier: string;
  priority: number;
}
export interface PtyOptions {
  backend: 'pty';
  path?: string;
}
export interface StdioOptions {
  backend: 'stdio';
  signal: boolean;
}
export interface SocketOptions {
  backend: 'socket';
  address: SocketAddress;
  server: boolean;
  /** server: start() waits for the first client. */
  wait: boolean;
  /** client: retry this long after a failed connect or a disconnect; 0 = never. */
  reconnectMs: number;
  nodelay: boolean;
  telnet: boolean;
  /** unix server: permission bits of the socket file. */
  mode: number;
}
/** A hub is a chardev id for QEMU users, but it is built by the hub layer (src/hub/). */
export interface HubOptions {
  backend: 'hub';
  chardevs: string[];
  maxMembers: number;
}

export type BackendOptions =
  | NullOptions
  | RingbufOptions
  | FileOptions
  | PipeOptions
  | PtyOptions
  | StdioOptions
  | SocketOptions
  | HubOptions
  | JournalOptions;

export type ChardevConfig<B extends BackendOptions = BackendOptions> = B & { id: string; common: CommonOptions };
