// A minimal QMP client for the daemon's control socket: greeting, qmp_capabilities,
// commands with ids, and an event log. QMP messages are JSON objects; the daemon writes one
// per line, which is all this client relies on.
import type net from 'node:net';
import { connectUnixSocket } from './daemon.js';

/** Calls `fn` with every JSON object the socket sends, one per line (as the daemon writes them). */
export function onJsonLines(sock: net.Socket, fn: (m: Record<string, unknown>) => void): void {
  let buf = '';
  sock.setEncoding('utf8');
  sock.on('error', () => {});
  sock.on('data', (d: string) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line) fn(JSON.parse(line) as Record<string, unknown>);
    }
  });
}

export interface QmpEvent {
  event: string;
  data: Record<string, unknown>;
}

export class QmpClient {
  readonly events: QmpEvent[] = [];
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly listeners = new Set<() => void>();

  private constructor(private readonly sock: net.Socket) {
    onJsonLines(sock, (m) => this.onMessage(m));
  }

  static async connect(path: string): Promise<QmpClient> {
    const c = new QmpClient(await connectUnixSocket(path));
    await c.execute('qmp_capabilities');
    return c;
  }

  private onMessage(m: Record<string, unknown>): void {
    if ('event' in m) {
      this.events.push({ event: m.event as string, data: (m.data ?? {}) as Record<string, unknown> });
      for (const l of this.listeners) l();
      return;
    }
    if (!('id' in m)) return; // the greeting
    const w = this.waiting.get(m.id as number);
    if (!w) return;
    this.waiting.delete(m.id as number);
    if ('error' in m) w.reject(new Error(`QMP error: ${JSON.stringify(m.error)}`));
    else w.resolve(m.return);
  }

  execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.sock.write(JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id }) + '\n');
    });
  }

  /** Waits for an event (after index `since` of the log) that satisfies `pred`. */
  waitEvent(pred: (e: QmpEvent) => boolean, what: string, since = 0, timeoutMs = 5000): Promise<QmpEvent> {
    const find = () => this.events.slice(since).find(pred);
    const hit = find();
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.listeners.delete(check);
        reject(
          new Error(`no QMP event ${what} within ${timeoutMs} ms; got ${JSON.stringify(this.events.slice(since))}`),
        );
      }, timeoutMs);
      const check = () => {
        const e = find();
        if (e) {
          clearTimeout(timer);
          this.listeners.delete(check);
          resolve(e);
        }
      };
      this.listeners.add(check);
    });
  }

  close(): void {
    this.sock.destroy();
  }
}
