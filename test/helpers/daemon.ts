// The real daemon as a child process (`node dist/cli.js ...`), for integration tests: start it,
// wait for its socket, read its JSON log lines from stderr, count its fds and memfd mappings
// from /proc, stop it.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The daemon's entry point; VHC_CLI points the tests at another build (e.g. a snapshot). */
export const CLI = process.env.VHC_CLI ?? join(ROOT, 'dist', 'cli.js');

export interface LogLine {
  level?: number;
  msg?: string;
  [k: string]: unknown;
}

export function tmpDir(prefix = 'vhc-it-'): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export async function until(pred: () => boolean, what: string, timeoutMs = 10_000, stepMs = 10): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

export class Daemon {
  readonly stderrLines: string[] = [];
  stdout = '';
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private readonly exited: Promise<void>;
  private readonly listeners = new Set<() => void>();

  private constructor(
    private readonly child: ChildProcess,
    readonly args: string[],
  ) {
    let partial = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      partial += d;
      const lines = partial.split('\n');
      partial = lines.pop()!;
      for (const l of lines) if (l.trim()) this.stderrLines.push(l);
      for (const f of this.listeners) f();
    });
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      this.stdout += d;
    });
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        for (const f of this.listeners) f();
        resolve();
      }),
    );
  }

  /** Spawns the daemon and waits until every file in `waitFiles` (its sockets) exists. */
  static async start(args: string[], waitFiles: string[], timeoutMs = 15_000): Promise<Daemon> {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npx tsc -p .\` (npm test does) first`);
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const d = new Daemon(child, args);
    try {
      await until(
        () => d.exit !== undefined || waitFiles.every((f) => existsSync(f)),
        `daemon sockets ${waitFiles.join(', ')}`,
        timeoutMs,
      );
    } catch (e) {
      await d.stop();
      throw new Error(`${(e as Error).message}\nstderr:\n${d.stderrLines.slice(-20).join('\n')}`);
    }
    if (d.exit)
      throw new Error(`daemon exited at start (${JSON.stringify(d.exit)}):\n${d.stderrLines.slice(-20).join('\n')}`);
    return d;
  }

  get pid(): number {
    return this.child.pid!;
  }
  get alive(): boolean {
    return this.exit === undefined;
  }

  /** stderr lines parsed as JSON (non-JSON lines come back as { msg: line }). */
  logs(): LogLine[] {
    return this.stderrLines.map((l) => {
      try {
        return JSON.parse(l) as LogLine;
      } catch {
        return { msg: l };
      }
    });
  }

  /** Waits for a log line (at `minLevel` or above; pino: 30 info, 40 warn, 50 error) whose text matches `re`. */
  async waitForLog(re: RegExp, o: { minLevel?: number; since?: number; timeoutMs?: number } = {}): Promise<LogLine> {
    const since = o.since ?? 0;
    const find = () =>
      this.stderrLines
        .slice(since)
        .map((l, i) => ({ l, i }))
        .find(({ l }) => {
          let level = 0;
          try {
            level = (JSON.parse(l) as LogLine).level ?? 0;
          } catch {
            level = 100;
          }
          return level >= (o.minLevel ?? 0) && re.test(l);
        });
    let hit = find();
    if (!hit) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          this.listeners.delete(check);
          reject(
            new Error(
              `no daemon log line matching ${re} within ${o.timeoutMs ?? 5000} ms; last lines:\n${this.stderrLines.slice(-15).join('\n')}`,
            ),
          );
        }, o.timeoutMs ?? 5000);
        const check = () => {
          hit = find();
          if (hit) {
            clearTimeout(timer);
            this.listeners.delete(check);
            resolve();
          }
        };
        this.listeners.add(check);
      });
    }
    try {
      return JSON.parse(hit!.l) as LogLine;
    } catch {
      return { msg: hit!.l };
    }
  }

  /** Open fds of the daemon process. */
  fdCount(): number {
    return readdirSync(`/proc/${this.pid}/fd`).length;
  }

  /**
   * What each open fd of the daemon is, sorted: paths, 'anon_inode:[eventfd]', and for unix
   * sockets 'unix:<bound path>' (or 'unix:peer' for an accepted/connected one) from /proc/net/unix.
   */
  fdTargets(): string[] {
    const dir = `/proc/${this.pid}/fd`;
    const unix = new Map<string, string>();
    for (const line of readFileSync(`/proc/${this.pid}/net/unix`, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length >= 7) unix.set(f[6]!, f[7] ?? 'peer');
    }
    return readdirSync(dir)
      .map((fd) => {
        let t: string;
        try {
          t = readlinkSync(`${dir}/${fd}`);
        } catch {
          return '?';
        }
        const m = /^socket:\[(\d+)\]$/.exec(t);
        return m ? `unix:${unix.get(m[1]!) ?? 'other'}` : t;
      })
      .sort();
  }

  /** Mappings of guest memory (memfd) in the daemon; `name` narrows to one memfd name. */
  memfdMaps(name = 'memfd:'): number {
    return readFileSync(`/proc/${this.pid}/maps`, 'utf8')
      .split('\n')
      .filter((l) => l.includes(name)).length;
  }

  async stop(): Promise<void> {
    if (this.alive) {
      this.child.kill('SIGTERM');
      const t = setTimeout(() => this.child.kill('SIGKILL'), 3000);
      await this.exited;
      clearTimeout(t);
    }
  }
}

/** A host-side client of one of the daemon's `socket,server=on` chardevs. */
export class HostClient {
  private chunks: Buffer[] = [];
  private size = 0;
  readonly closed: Promise<void>;
  private waiter: (() => void) | undefined;

  private constructor(readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.size += d.length;
      this.waiter?.();
    });
    sock.on('error', () => {});
    this.closed = new Promise((r) =>
      sock.once('close', () => {
        this.waiter?.();
        r();
      }),
    );
  }

  static async connect(path: string, o: { paused?: boolean } = {}): Promise<HostClient> {
    const s = await connectUnixSocket(path);
    const c = new HostClient(s);
    if (o.paused) s.pause();
    return c;
  }

  get received(): number {
    return this.size;
  }

  /** Waits for `n` bytes in total and returns (and forgets) exactly those. */
  async read(n: number, timeoutMs = 30_000): Promise<Buffer> {
    if (this.size < n) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          this.waiter = undefined;
          reject(new Error(`host socket: ${this.size} of ${n} bytes after ${timeoutMs} ms`));
        }, timeoutMs);
        this.waiter = () => {
          if (this.size >= n || this.sock.destroyed) {
            clearTimeout(timer);
            this.waiter = undefined;
            resolve();
          }
        };
      });
    }
    const all = Buffer.concat(this.chunks);
    this.chunks = all.length > n ? [all.subarray(n)] : [];
    this.size = all.length - Math.min(n, all.length);
    return all.subarray(0, n);
  }

  /** Writes everything, honouring the socket's back-pressure. */
  async write(data: Uint8Array): Promise<void> {
    await new Promise<void>((resolve, reject) => this.sock.write(data, (e) => (e ? reject(e) : resolve())));
  }

  close(): void {
    this.sock.destroy();
  }
}

/**
 * Connects to a unix socket the daemon serves. The socket file appears at bind(), a moment
 * before listen(): a connection in between is refused, so that is retried for a while.
 */
export async function connectUnixSocket(path: string, timeoutMs = 3000): Promise<net.Socket> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect(path);
        s.once('error', reject);
        s.once('connect', () => {
          s.off('error', reject);
          resolve(s);
        });
      });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if ((code !== 'ECONNREFUSED' && code !== 'ENOENT') || Date.now() > end) throw e;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
