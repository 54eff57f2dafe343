// `socket`: unix (`path=`) or TCP (`host=`, `port=`), server or client.
//
// Server: one client at a time, like QEMU; a client that arrives while another is connected
// is closed at once (QEMU leaves it waiting in the backlog; a closed connection tells the
// user something instead of hanging). When the client leaves, the next one is served.
// `wait=on` makes start() wait for the first client, as QEMU waits before starting the guest.
// Client: `reconnect=SECONDS` retries a failed or lost connection; without it a failed first
// connect fails start() and a lost connection stays lost.
import fs from 'node:fs';
import net from 'node:net';
import { Chardev } from './chardev.js';
import type { ChardevConfig, SocketOptions } from './options.js';
import { StreamLink } from './stream.js';
import * as libc from '../sys/libc.js';
import { claimSocketPath, type Claim } from '../sys/paths.js';
import { TELNET_GREETING, TelnetFilter, telnetEscape } from './telnet.js';

/** How often a paused connection is checked for a departed client. */
const HANGUP_POLL_MS = 200;

export class SocketChardev extends Chardev {
  #server: net.Server | undefined;
  #link: StreamLink | undefined;
  #hangupTimer: NodeJS.Timeout | undefined;
  #retry: NodeJS.Timeout | undefined;
  #firstClient: (() => void) | undefined;
  /** The connected peer's socket (for qemuFilename). */
  #sock: net.Socket | undefined;
  /** A client's connect attempts are failing: said once at info, then at debug until one succeeds. */
  #connectFailing = false;
  #claim: Claim | undefined;

  constructor(readonly config: ChardevConfig<SocketOptions>) {
    super(config.id, 'socket', config.common);
  }

  /** Where the server listens (the bound TCP port when `port=0` was asked for). */
  address(): net.AddressInfo | string | null {
    return this.#server?.address() ?? null;
  }

  /** The address as a user would write it, for messages (a listening server's bound port, for `port=0`). */
  get where(): string {
    const a = this.config.address;
    if (a.type === 'unix') return `unix:${a.path}`;
    const bound = this.#server?.address();
    return `tcp:${a.host}:${bound !== null && typeof bound === 'object' ? bound.port : a.port}`;
  }

  /**
   * QEMU's query-chardev `filename` (chardev/char-socket.c): while no peer is connected,
   * 'disconnected:' and the address ('disconnected:unix:/run/x.sock,server=on'); with a peer,
   * unix 'unix:PATH[,server=on]', TCP 'tcp:LOCAL:PORT[,server=on] <-> PEER:PORT' ('telnet:'
   * for telnet=on). A server on `port=0` shows the port it got.
   */
  qemuFilename(): string {
    const a = this.config.address;
    const server = this.config.server ? ',server=on' : '';
    const proto = this.config.telnet ? 'telnet' : 'tcp';
    const sock = this.#sock;
    if (!this.connected || sock === undefined)
      return `disconnected:${this.where.replace(/^tcp:/, `${proto}:`)}${server}`;
    if (a.type === 'unix') return `unix:${a.path}${server}`;
    const host = (h: string | undefined) => (h !== undefined && h.includes(':') ? `[${h}]` : (h ?? ''));
    return `${proto}:${host(sock.localAddress)}:${sock.localPort ?? ''}${server} <-> ${host(sock.remoteAddress)}:${sock.remotePort ?? ''}`;
  }

  protected async open(): Promise<void> {
    if (this.config.server) await this.listen();
    else await this.connect(true);
  }

  private async listen(): Promise<void> {
    const a = this.config.address;
    // A stale socket from an earlier run is replaced; a live one (another vhost-console's lock,
    // or any process listening on it) and any other file are refused and left untouched.
    if (a.type === 'unix') this.#claim = claimSocketPath(a.path, `chardev '${this.id}'`);
    const server = net.createServer({ noDelay: this.config.nodelay }, (sock) => this.accept(sock));
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) =>
        reject(new Error(`chardev '${this.id}': cannot listen on ${this.where}: ${err.message}`)),
      );
      if (a.type === 'unix') server.listen(a.path, resolve);
      else server.listen(a.port, a.host, resolve);
    });
    this.#claim?.created();
    server.on('error', (err) => this.log.warn({ err: err.message }, 'server error'));
    if (a.type === 'unix') fs.chmodSync(a.path, this.config.mode);
    // port=0: the system chose the port, and the user needs to hear which.
    if (a.type === 'tcp' && a.port === 0)
      this.log.info({ address: this.where }, `listening on ${this.where} (port=0: the port the system chose)`);
    else this.log.debug({ address: this.where }, 'listening');
    if (this.config.wait && !this.connected) {
      this.log.info({ address: this.where }, 'waiting for a client (wait=on)');
      await new Promise<void>((resolve) => (this.#firstClient = resolve));
    }
  }

  private accept(sock: net.Socket): void {
    // A client that left while its input was paused may not have been noticed yet (the
    // hang-up is polled): look before refusing the next one.
    if (this.#link && this.inputPaused) this.dropHungUpClient();
    if (this.#link || this.closed) {
      this.log.info('refused a second client: one client at a time');
      sock.destroy();
      return;
    }
    this.serve(sock);
    this.#firstClient?.();
    this.#firstClient = undefined;
  }

  private connect(first: boolean): Promise<void> {
    const a = this.config.address;
    return new Promise<void>((resolve, reject) => {
      const sock =
        a.type === 'unix'
          ? net.connect(a.path)
          : net.connect({ host: a.host, port: a.port, noDelay: this.config.nodelay });
      sock.once('connect', () => {
        sock.removeAllListeners('error');
        if (this.#connectFailing) this.log.info({ address: this.where }, `connected to ${this.where}`);
        this.#connectFailing = false;
        this.serve(sock);
        resolve();
      });
      sock.once('error', (err) => {
        sock.destroy();
        if (this.config.reconnectMs > 0) {
          // Once at info (a typo in the address must be visible at the default level), then debug.
          if (!this.#connectFailing)
            this.log.info(
              { address: this.where, err: err.message },
              `cannot connect to ${this.where}: ${err.message}; retrying every ${this.config.reconnectMs} ms`,
            );
          else this.log.debug({ err: err.message }, 'connect failed; will retry');
          this.#connectFailing = true;
          this.scheduleReconnect();
          resolve();
        } else if (first) {
          reject(new Error(`chardev '${this.id}': cannot connect to ${this.where}: ${err.message}`));
        } else {
          resolve();
        }
      });
    });
  }

  private scheduleReconnect(): void {
    if (this.closed || this.#retry) return;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      if (!this.closed && !this.#link) void this.connect(false);
    }, this.config.reconnectMs);
    this.#retry.unref();
  }

  private serve(sock: net.Socket): void {
    const telnet = this.config.telnet ? new TelnetFilter() : undefined;
    this.#link = new StreamLink(
      sock,
      sock,
      {
        data: (chunk) => this.deliver(telnet ? telnet.filter(chunk) : chunk),
        writable: () => this.emit('writable'),
        end: (err) => {
          if (err) this.log.debug({ err: err.message }, 'connection error');
          this.#link = undefined;
          this.#sock = undefined;
          this.setConnected(false);
          if (!this.config.server && this.config.reconnectMs > 0) this.scheduleReconnect();
        },
      },
      !this.inputPaused,
    );
    this.#sock = sock;
    if (telnet) sock.write(TELNET_GREETING);
    if (this.inputPaused) this.watchHangup(sock);
    this.setConnected(true);
  }

  protected writeOut(data: Uint8Array): number {
    if (!this.#link) return data.length;
    if (!this.config.telnet) return this.#link.write(data);
    // Escaping may lengthen the bytes: take all or nothing so the count stays in source bytes.
    return this.#link.writeWhole(telnetEscape(data)) ? data.length : 0;
  }

  protected setReading(on: boolean): void {
    this.#link?.setReading(on);
    this.watchHangup(on ? undefined : this.#link?.input);
  }

  /** The client's bytes not read yet (they wait in the socket while the guest takes nothing). */
  override inputWaiting(): number {
    const fd = (this.#link?.input as { _handle?: { fd?: number } } | undefined)?._handle?.fd;
    return (this.#link?.bufferedInput ?? 0) + (fd === undefined || fd < 0 ? 0 : Math.max(0, libc.bytesReadable(fd)));
  }

  /**
   * While input is paused (the guest takes nothing) Node does not read the socket, so it
   * would not see the client leave, and the one client slot would stay taken by a dead peer.
   * QEMU watches G_IO_HUP apart from reading; we poll for POLLHUP the same way the pty
   * backend does. The departed client's unread input is dropped, as in QEMU.
   */
  private watchHangup(sock: unknown): void {
    clearInterval(this.#hangupTimer);
    this.#hangupTimer = undefined;
    const fd = (sock as { _handle?: { fd?: number } } | undefined)?._handle?.fd;
    if (fd === undefined || fd < 0) return;
    this.#hangupTimer = setInterval(() => {
      if (this.#link?.input === sock) this.dropHungUpClient();
    }, HANGUP_POLL_MS).unref();
  }

  /** If the client hung up (POLLHUP, seen without reading), end its connection now; its unread input goes with it. */
  private dropHungUpClient(): boolean {
    const link = this.#link;
    const fd = (link?.input as { _handle?: { fd?: number } } | undefined)?._handle?.fd;
    if (link === undefined || fd === undefined || fd < 0 || !libc.pollHangup(fd)) return false;
    this.log.info('client hung up while its input waited for the guest; its unread input is dropped');
    clearInterval(this.#hangupTimer);
    this.#hangupTimer = undefined;
    link.destroy();
    this.#link = undefined;
    this.#sock = undefined;
    this.setConnected(false);
    return true;
  }

  protected async shutdown(): Promise<void> {
    clearInterval(this.#hangupTimer);
    this.#hangupTimer = undefined;
    clearTimeout(this.#retry);
    this.#retry = undefined;
    this.#firstClient?.();
    this.#firstClient = undefined;
    this.#link?.destroy();
    this.#link = undefined;
    this.#sock = undefined;
    const server = this.#server;
    this.#server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    // Only the socket this process made is removed (Node unlinks it on close too), then the lock.
    this.#claim?.release();
    this.#claim = undefined;
  }
}
