// Small utilities for the daemon-level tests (test/daemon, test/cli) on top of test/helpers:
// running the CLI to completion, a pty peer, a raw control-socket client, waiting for files.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { ConsoleDriver, type ConsoleDriverOptions, type ConsolePort } from '../frontend/index.js';
import { CLI, Daemon, HostClient, ROOT, tmpDir, until } from '../helpers/daemon.js';
import { QmpClient, onJsonLines } from '../helpers/qmp.js';

export { until };

/** Runs `node dist/cli.js args` to completion (for options that exit at once). */
export function runCli(args: string[], cwd = ROOT): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd, encoding: 'utf8', timeout: 15_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The daemon started with a cwd of our choosing (test/helpers' Daemon runs in the repo root). */
export function spawnCli(args: string[], cwd: string) {
  const child = spawn(process.execPath, [CLI, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('exit', (code, signal) => r({ code, signal })),
  );
  return {
    child,
    exited,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    async kill(): Promise<void> {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

/** A terminal program on a pty's slave: non-blocking fd, polled reads. */
export class PtyPeer {
  readonly fd: number;
  private chunks: Buffer[] = [];
  constructor(path: string) {
    this.fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK);
  }
  /** Everything readable now, appended to what was read before. */
  private drain(): number {
    const buf = Buffer.alloc(1 << 16);
    for (;;) {
      let n: number;
      try {
        n = fs.readSync(this.fd, buf, 0, buf.length, null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EAGAIN') break;
        throw e;
      }
      if (n <= 0) break;
      this.chunks.push(Buffer.from(buf.subarray(0, n)));
    }
    return this.chunks.reduce((s, c) => s + c.length, 0);
  }
  async read(n: number, timeoutMs = 20_000): Promise<Buffer> {
    await until(() => this.drain() >= n, `${n} bytes on the pty`, timeoutMs, 2);
    const all = Buffer.concat(this.chunks);
    this.chunks = [all.subarray(n)];
    return all.subarray(0, n);
  }
  write(data: string | Uint8Array): void {
    fs.writeSync(this.fd, typeof data === 'string' ? Buffer.from(data) : data);
  }
  close(): void {
    fs.closeSync(this.fd);
  }
}

/** A control-socket client that sends raw text and collects every message (greeting included). */
export class RawQmp {
  readonly messages: Record<string, unknown>[] = [];
  private constructor(readonly sock: net.Socket) {
    onJsonLines(sock, (m) => this.messages.push(m));
  }
  static async connect(path: string): Promise<RawQmp> {
    const sock = net.connect(path);
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    return new RawQmp(sock);
  }
  send(text: string): void {
    this.sock.write(text);
  }
  /** Waits for the n-th non-event message (0 = the greeting) and returns it. */
  async reply(n: number): Promise<Record<string, unknown>> {
    const replies = () => this.messages.filter((m) => !('event' in m));
    await until(() => replies().length > n, `control reply #${n}`);
    return replies()[n]!;
  }
  close(): void {
    this.sock.destroy();
  }
}

/** Those of `paths` that exist (sockets and dangling links count). */
export function present(paths: string[]): string[] {
  return paths.filter((p) => {
    try {
      fs.lstatSync(p);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * One daemon in its own temporary directory, started from argv built with that directory,
 * plus the front-ends, host clients and control clients the test opens (closed by dispose()).
 */
export class Rig {
  private readonly drivers: ConsoleDriver[] = [];
  private readonly closers: (() => void)[] = [];

  private constructor(
    readonly dir: string,
    private readonly removeDir: () => void,
    readonly daemon: Daemon,
  ) {}

  /** `build(dir)` gives the argv and the files (sockets) to wait for. */
  static async start(build: (dir: string) => { args: string[]; wait: string[] }): Promise<Rig> {
    const { path: dir, remove } = tmpDir('vhc-daemon-');
    const { args, wait } = build(dir);
    try {
      return new Rig(dir, remove, await Daemon.start(args, wait));
    } catch (e) {
      remove();
      throw e;
    }
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  async driver(o: Partial<ConsoleDriverOptions> & { socket?: string; numQueues: number }): Promise<ConsoleDriver> {
    const d = await ConsoleDriver.start({ socketPath: o.socket ?? this.path('vm.sock'), ...o });
    this.drivers.push(d);
    return d;
  }

  async qmp(name = 'ctl.sock'): Promise<QmpClient> {
    const q = await QmpClient.connect(this.path(name));
    this.closers.push(() => q.close());
    return q;
  }

  async raw(name = 'ctl.sock'): Promise<RawQmp> {
    const q = await RawQmp.connect(this.path(name));
    this.closers.push(() => q.close());
    return q;
  }

  async host(name: string, o: { paused?: boolean } = {}): Promise<HostClient> {
    const h = await HostClient.connect(this.path(name), o);
    this.closers.push(() => h.close());
    return h;
  }

  pty(path: string): PtyPeer {
    const p = new PtyPeer(path);
    this.closers.push(() => {
      try {
        p.close();
      } catch {
        /* closed already */
      }
    });
    return p;
  }

  async dispose(): Promise<void> {
    for (const d of this.drivers.splice(0)) await d.close().catch(() => {});
    for (const c of this.closers.splice(0)) c();
    await this.daemon.stop();
    this.removeDir();
  }
}

/** A port has finished its set-up: the console flag for port 0, its name for the others. */
export const settled = (p: ConsolePort): boolean => (p.id === 0 ? p.console : p.name !== undefined);

/** Errors of a QmpClient command come back as rejections carrying the JSON error. */
export async function qmpError(p: Promise<unknown>): Promise<{ class: string; desc: string }> {
  try {
    await p;
  } catch (e) {
    const m = /^QMP error: (.*)$/s.exec((e as Error).message);
    if (m) return JSON.parse(m[1]!) as { class: string; desc: string };
    throw e;
  }
  throw new Error('the command succeeded; an error was expected');
}
