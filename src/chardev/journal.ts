// `journal`: the guest's output, line by line, into the host's systemd journal (the native
// protocol: one datagram per entry to /run/systemd/journal/socket), with fields naming the VM
// and the port, so console logs flow into a fleet's existing log pipeline:
//
//   journalctl VHOST_CONSOLE_VM=web1 VHOST_CONSOLE_PORT=port0 -o cat
//
// Each entry: MESSAGE (one line, without its \n and a trailing \r), PRIORITY (default 6,
// info), SYSLOG_IDENTIFIER (default vhost-console), VHOST_CONSOLE_VM, VHOST_CONSOLE_PORT,
// VHOST_CONSOLE_PORT_NAME (named ports), VHOST_CONSOLE_CHARDEV. A line longer than
// MAX_LINE is cut into entries of MAX_LINE bytes; a partial line is sent after PARTIAL_MS
// without its newline (a prompt), or at close. Sending never blocks the event loop: when the
// journal's queue is full the entry is dropped and counted (journald rate-limits the same way).
// Output only (always connected, no input), like a file.
import { Chardev } from './chardev.js';
import type { ChardevConfig, JournalOptions } from './options.js';
import { closeFd, errnoText, openDatagramSocket, sendDatagramTo } from '../sys/unix-socket.js';

export const DEFAULT_JOURNAL_SOCKET = '/run/systemd/journal/socket';
export const MAX_LINE = 8192;
const PARTIAL_MS = 1000;
const EAGAIN = 11;

export interface JournalContext {
  vm?: string;
  port?: string;
  portName?: string;
}

export class JournalChardev extends Chardev {
  #fd: number | undefined;
  #partial: Buffer[] = [];
  #partialLen = 0;
  #timer: NodeJS.Timeout | undefined;
  #context: JournalContext = {};
  /** Entries sent, and lost to a full or absent journal. */
  sent = 0;
  dropped = 0;
  #lastError = 0;

  constructor(readonly config: ChardevConfig<JournalOptions>) {
    super(config.id, 'journal', config.common);
  }

  /** Which VM and port this chardev serves (the VM sets it when it wires the port). */
  setContext(ctx: JournalContext): void {
    this.#context = { ...ctx };
  }

  protected open(): void {
    this.#fd = openDatagramSocket();
    this.setConnected(true);
  }

  protected writeOut(data: Uint8Array): number {
    let from = 0;
    for (;;) {
      const nl = data.indexOf(0x0a, from);
      if (nl < 0) break;
      this.#push(data.subarray(from, nl));
      this.#emit();
      from = nl + 1;
    }
    if (from < data.length) this.#push(data.subarray(from));
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#partialLen > 0) {
      this.#timer = setTimeout(() => this.#emit(), PARTIAL_MS);
      this.#timer.unref();
    }
    return data.length;
  }

  protected setReading(): void {}

  protected shutdown(): void {
    clearTimeout(this.#timer);
    if (this.#partialLen > 0) this.#emit();
    if (this.#fd !== undefined) closeFd(this.#fd);
    this.#fd = undefined;
  }

  /** Add bytes to the pending line, sending MAX_LINE-byte pieces of an overlong one. */
  #push(bytes: Uint8Array): void {
    let at = 0;
    while (at < bytes.length) {
      const n = Math.min(bytes.length - at, MAX_LINE - this.#partialLen);
      this.#partial.push(Buffer.from(bytes.subarray(at, at + n)));
      this.#partialLen += n;
      at += n;
      if (this.#partialLen >= MAX_LINE) this.#emit();
    }
  }

  #emit(): void {
    let line = Buffer.concat(this.#partial, this.#partialLen);
    this.#partial = [];
    this.#partialLen = 0;
    if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
    if (this.#fd === undefined) return;
    const err = sendDatagramTo(this.#fd, this.config.path, this.#entry(line));
    if (err === 0) {
      this.sent++;
      return;
    }
    this.dropped++;
    // Said once per kind of failure (a journal that is gone stays gone for a while).
    if (err !== this.#lastError) {
      this.#lastError = err;
      this.log.warn(
        { socket: this.config.path, err: errnoText(err), transient: err === EAGAIN },
        'journal entry dropped',
      );
    }
  }

  #entry(message: Buffer): Buffer {
    const { vm, port, portName } = this.#context;
    const fields: [string, string | Buffer][] = [
      ['MESSAGE', message],
      ['PRIORITY', String(this.config.priority)],
      ['SYSLOG_IDENTIFIER', this.config.identifier],
      ...(vm !== undefined ? [['VHOST_CONSOLE_VM', vm] as [string, string]] : []),
      ...(port !== undefined ? [['VHOST_CONSOLE_PORT', port] as [string, string]] : []),
      ...(portName !== undefined ? [['VHOST_CONSOLE_PORT_NAME', portName] as [string, string]] : []),
      ['VHOST_CONSOLE_CHARDEV', this.id],
    ];
    return Buffer.concat(fields.map(([k, v]) => field(k, v)));
  }
}

/**
 * One field of the native protocol: KEY=VALUE\n, or, for a value with a newline in it (never
 * a MESSAGE here, but a port name could), KEY\n + 64-bit little-endian length + VALUE + \n.
 */
function field(key: string, value: string | Buffer): Buffer {
  const v = typeof value === 'string' ? Buffer.from(value) : value;
  if (!v.includes(0x0a)) return Buffer.concat([Buffer.from(`${key}=`), v, Buffer.from('\n')]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(v.length));
  return Buffer.concat([Buffer.from(`${key}\n`), len, v, Buffer.from('\n')]);
}
