// The e2e harness: a real QEMU booting a real Linux guest against the real daemon.
//
// Each test gets a fresh folder, a fresh daemon (`node dist/cli.js ...`) and one guest boot.
// Everything the processes say (daemon stdout/stderr, QEMU's serial console, control traffic,
// host-side sockets) goes to one log file per test under .e2e-cache/logs/, whose path is printed
// when a test fails. afterEach kills whatever the test started, in every outcome.
//
// The guest side is test/e2e/rig/guest-init: a command loop on the serial console (QEMU's
// -serial stdio), so `guest.run('e2e_ports')` runs a command in the guest and returns its output.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
} from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, type TestContext } from 'vitest';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** The daemon under test: dist/cli.js, or VHC_E2E_CLI (e.g. a copy of dist/ + build/ kept still while others rebuild). */
export const CLI = process.env.VHC_E2E_CLI ?? join(ROOT, 'dist/cli.js');
const CACHE = join(ROOT, '.e2e-cache');

// ---- the provisioned rig ----------------------------------------------------------------------

export interface Rig {
  qemu: string;
  qemuVersion: string;
  /** The generic vhost-user front-end: vhost-user-test-device-pci (QEMU >= 10.2) or vhost-user-device-pci. */
  device: string;
  kernel: string;
  kernelVersion: string;
  initrd: string;
  firmware: string;
}

const GUEST_INIT = join(ROOT, 'test/e2e/rig/guest-init');

/**
 * The rig written by test/e2e/rig/provision.sh (.e2e-cache/rig.env, or the rig.env named by
 * VHC_E2E_RIG, e.g. one provisioned with QEMU_FROM=trixie), or undefined if there is none.
 * If guest-init changed since the initramfs was built, provision.sh runs again first (it then
 * only repacks the initramfs, in about a second, without the network).
 */
export function loadRig(envFile = process.env.VHC_E2E_RIG ?? join(CACHE, 'rig.env')): Rig | undefined {
  if (!existsSync(envFile)) return undefined;
  const initHash = md5(readFileSync(GUEST_INIT)).slice(0, 12);
  if (!readFileSync(envFile, 'utf8').includes(`INIT_HASH_BUILT=${initHash}\n`)) {
    const r = spawnSync('bash', [join(ROOT, 'test/e2e/rig/provision.sh'), dirname(envFile)], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`repacking the initramfs for the changed guest-init failed:\n${r.stderr}`);
  }
  const env = new Map<string, string>();
  for (const line of readFileSync(envFile, 'utf8').split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line);
    if (m) env.set(m[1]!, m[2]!);
  }
  const need = (k: string): string => {
    const v = env.get(k);
    if (!v) throw new Error(`${envFile}: ${k} is missing; run npm run e2e:provision`);
    return v;
  };
  return {
    qemu: need('QEMU'),
    qemuVersion: env.get('QEMU_VERSION') ?? '?',
    device: need('DEVICE'),
    kernel: need('KERNEL'),
    kernelVersion: env.get('KERNEL_VERSION') ?? '?',
    initrd: need('INITRD'),
    firmware: need('FIRMWARE'),
  };
}

// ---- per-test log -----------------------------------------------------------------------------

export class TestLog {
  readonly path: string;
  private readonly t0 = Date.now();
  constructor(name: string) {
    mkdirSync(join(CACHE, 'logs'), { recursive: true });
    this.path = join(CACHE, 'logs', `${name.replace(/[^\w.-]+/g, '_').slice(0, 100)}.log`);
    rmSync(this.path, { force: true });
  }
  /** Lines tagged with where they came from and the seconds since the test started. */
  write(source: string, text: string): void {
    const t = ((Date.now() - this.t0) / 1000).toFixed(3).padStart(8);
    appendFileSync(
      this.path,
      text
        .split('\n')
        .map((l) => `${t} [${source}] ${l}\n`)
        .join(''),
    );
  }
  tail(lines = 60): string {
    return readFileSync(this.path, 'utf8').split('\n').slice(-lines).join('\n');
  }
}

// ---- waiting ----------------------------------------------------------------------------------

/** Poll `probe` until it returns something other than undefined/false, or fail naming `what`. */
export async function until<T>(what: string, timeoutMs: number, probe: () => T | undefined | false): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A growing list of lines that can be waited on: the first (past or future) line matching a pattern. */
class LineWaiter {
  readonly lines: string[] = [];
  private waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  push(line: string): void {
    this.lines.push(line);
    this.waiters = this.waiters.filter((w) => {
      if (!w.re.test(line)) return true;
      w.resolve(line);
      return false;
    });
  }
  /** Match lines from index `from` on (default: from now). */
  wait(
    re: RegExp,
    timeoutMs: number,
    what: string,
    from = this.lines.length,
    gone?: Promise<unknown>,
  ): Promise<string> {
    const seen = this.lines.slice(from).find((l) => re.test(l));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolveLine, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} (${re})`)),
        timeoutMs,
      );
      this.waiters.push({
        re,
        resolve: (l: string) => {
          clearTimeout(timer);
          resolveLine(l);
        },
      });
      void gone?.then(() => {
        clearTimeout(timer);
        reject(new Error(`process ended while waiting for ${what}`));
      });
    });
  }
}

function lineSplitter(onLine: (line: string) => void): (chunk: Buffer) => void {
  let rest = '';
  return (chunk) => {
    const parts = (rest + chunk.toString('latin1')).split('\n');
    rest = parts.pop() ?? '';
    for (const p of parts) onLine(p.replace(/\r$/, ''));
  };
}

// ---- processes --------------------------------------------------------------------------------

class Proc {
  readonly exited: Promise<number | string>;
  constructor(
    readonly child: ChildProcess,
    readonly name: string,
    log: TestLog,
  ) {
    this.exited = new Promise((r) =>
      child.once('exit', (code, sig) => {
        log.write(name, `exited ${sig ?? code}`);
        r(sig ?? code ?? -1);
      }),
    );
  }
  get pid(): number {
    return this.child.pid!;
  }
  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.alive) this.child.kill(signal);
    await this.exited;
  }
}

/** `node dist/cli.js --help`, once per run: the capabilities the daemon says it has. */
let helpText: string | undefined;
export function daemonHelp(): string {
  if (helpText === undefined) {
    const r = existsSync(CLI)
      ? spawnSync(process.execPath, [CLI, '--help'], { encoding: 'utf8', timeout: 10_000 })
      : undefined;
    helpText = r ? `${r.stdout}\n${r.stderr}` : '';
  }
  return helpText;
}

/** A named port whose host side is a server socket DIR/<id>.sock: chardev id `id`, device id `dev-<id>`. */
export interface DaemonPort {
  id: string;
  name: string;
}
export interface DaemonConfig {
  consoleSize?: string; // --console-size, e.g. '100x40'
  maxPorts?: number; // --max-ports
  multiport?: boolean; // false: --multiport off (single console port, num_vqs=2)
  resizeOrder?: 'rows-cols' | 'cols-rows';
  control?: boolean; // --control DIR/qmp.sock
  ports?: DaemonPort[]; // named ports, each backed by a server socket DIR/<id>.sock
  spareChardevs?: string[]; // socket chardevs not attached to a port (for hot-plug)
  extraArgs?: string[]; // more options, as given (e.g. --web 127.0.0.1:0)
  logLevel?: string; // --log-level (debug traces every vhost-user request)
  /** Socket activation: test/ops/fixtures/fake-systemd.py creates vm.sock (as a .socket unit
   *  does) and starts the daemon `delayMs` later with the socket passed as fd 3. */
  activation?: { delayMs: number };
}

/** The daemon's command line: console on hub0 = {socket con (DIR/con.sock), file log (DIR/console.log)}. */
export function daemonArgs(dir: string, c: DaemonConfig): string[] {
  const sock = (id: string): string[] => [
    '--chardev',
    `socket,id=${id},path=${join(dir, `${id}.sock`)},server=on,wait=off`,
  ];
  const a = [
    '--socket',
    join(dir, 'vm.sock'),
    '--console-size',
    c.consoleSize ?? '100x40',
    '--max-ports',
    String(c.maxPorts ?? 4),
  ];
  if (c.multiport === false) a.push('--multiport', 'off');
  if (c.resizeOrder) a.push('--resize-order', c.resizeOrder);
  if (c.control) a.push('--control', join(dir, 'qmp.sock'));
  if (c.logLevel) a.push('--log-level', c.logLevel);
  a.push(
    ...sock('con'),
    '--chardev',
    `file,id=log,path=${join(dir, 'console.log')}`,
    '--chardev',
    'hub,id=hub0,chardevs.0=con,chardevs.1=log',
    '--device',
    'virtconsole,chardev=hub0',
  );
  // Device ids as in QEMU, where VSERPORT_CHANGE names the port by its device id.
  for (const p of c.ports ?? [])
    a.push(...sock(p.id), '--device', `virtserialport,id=dev-${p.id},chardev=${p.id},name=${p.name}`);
  for (const id of c.spareChardevs ?? []) a.push(...sock(id));
  a.push(...(c.extraArgs ?? []));
  return a;
}

export class Daemon extends Proc {
  readonly socket: string;
  constructor(
    child: ChildProcess,
    readonly dir: string,
    readonly config: DaemonConfig,
    log: TestLog,
  ) {
    super(child, 'daemon', log);
    this.socket = join(dir, 'vm.sock');
  }
  get numVqs(): number {
    return this.config.multiport === false ? 2 : 2 * ((this.config.maxPorts ?? 4) + 1);
  }
  /** What the daemon's fds point at, sorted (for the log when a leak check fails). */
  fdTargets(): string[] {
    const dir = `/proc/${this.pid}/fd`;
    return readdirSync(dir)
      .map((fd) => {
        try {
          return readlinkSync(join(dir, fd));
        } catch {
          return '?';
        }
      })
      .sort();
  }
  /** Open fds and memfd mappings of the daemon process (for leak checks). */
  resources(): { fds: number; memfdMaps: number } {
    return {
      fds: readdirSync(`/proc/${this.pid}/fd`).length,
      memfdMaps: readFileSync(`/proc/${this.pid}/maps`, 'utf8')
        .split('\n')
        .filter((l) => l.includes('/memfd:')).length,
    };
  }
}

export interface BootOptions {
  /** Boot against this daemon, or 'builtin' for QEMU's own virtio-serial-pci (rig self-check). */
  daemon: Daemon | 'builtin';
  mem?: string;
  numVqs?: number;
  /** Extra kernel command line. */
  append?: string;
  /** Give QEMU a QMP socket (DIR/qemu-qmp.sock, reached with control('builtin')) for stop/cont. */
  qmp?: boolean;
}

export interface RunResult {
  rc: number;
  out: string[];
}

/** One QEMU process and the command loop of guest-init on its serial console. */
export class Guest extends Proc {
  private readonly serial = new LineWaiter();
  private seq = 0;
  constructor(
    child: ChildProcess,
    private readonly log: TestLog,
  ) {
    super(child, 'qemu', log);
    child.stdout!.on(
      'data',
      lineSplitter((l) => {
        log.write('serial', l);
        this.serial.push(l);
      }),
    );
    child.stderr!.on(
      'data',
      lineSplitter((l) => log.write('qemu-stderr', l)),
    );
  }
  /** All serial lines so far (kernel messages and E2E: lines). */
  get lines(): readonly string[] {
    return this.serial.lines;
  }
  /** Wait for a serial line matching `re` (from now, or from line index `from`). */
  waitLine(re: RegExp, timeoutMs = 20_000, from?: number): Promise<string> {
    return this.serial.wait(re, timeoutMs, `guest serial line`, from, this.exited);
  }
  /** Run one shell command in the guest; its output lines without the `E2E:<id>: ` prefix. */
  async run(cmd: string, timeoutMs = 20_000): Promise<RunResult> {
    const id = `c${++this.seq}`;
    const from = this.serial.lines.length;
    this.log.write('serial-in', `${id} ${cmd}`);
    this.child.stdin!.write(`${id} ${cmd}\n`);
    const end = await this.serial.wait(
      new RegExp(`^E2E: end ${id} rc=\\d+`),
      timeoutMs,
      `guest command '${cmd}'`,
      from,
      this.exited,
    );
    const prefix = `E2E:${id}: `;
    const out = this.serial.lines
      .slice(from)
      .filter((l) => l.startsWith(prefix))
      .map((l) => l.slice(prefix.length));
    return { rc: Number(/rc=(\d+)/.exec(end)![1]), out };
  }
  /** Like run, but fails unless the command exits 0. */
  async ok(cmd: string, timeoutMs?: number): Promise<string[]> {
    const r = await this.run(cmd, timeoutMs);
    if (r.rc !== 0) throw new Error(`guest command '${cmd}' exited ${r.rc}: ${r.out.join(' | ')}`);
    return r.out;
  }
  /** Kernel messages that mean trouble (guest-init's e2e_dmesg), [] if clean. */
  async dmesgBad(): Promise<string[]> {
    const out = await this.ok('e2e_dmesg');
    return out.filter((l) => l.startsWith('dmesg-bad:'));
  }
  async powerOff(): Promise<void> {
    if (!this.alive) return;
    this.child.stdin!.write('p0 poweroff -f\n');
    const t = setTimeout(() => void this.kill(), 10_000);
    await this.exited;
    clearTimeout(t);
  }
}

// ---- QMP-shaped control client ----------------------------------------------------------------

export interface QmpReply {
  return?: unknown;
  error?: { class: string; desc: string };
}
export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
}

export class Control {
  private replies: ((r: QmpReply) => void)[] = [];
  readonly events: QmpEvent[] = [];
  private constructor(
    private readonly sock: Socket,
    private readonly log: TestLog,
  ) {
    sock.on(
      'data',
      lineSplitter((l) => {
        if (!l.trim()) return;
        log.write('control<', l);
        const m = JSON.parse(l) as QmpEvent & QmpReply & { QMP?: unknown };
        if (m.event) this.events.push(m);
        else if (!m.QMP) this.replies.shift()?.(m);
      }),
    );
  }
  static async connect(path: string, log: TestLog): Promise<Control> {
    const sock = await connectUnix(path, 5_000);
    const c = new Control(sock, log);
    const r = await c.execute('qmp_capabilities');
    if (r.error) throw new Error(`qmp_capabilities failed: ${r.error.desc}`);
    return c;
  }
  execute(command: string, args?: Record<string, unknown>): Promise<QmpReply> {
    const msg = JSON.stringify(args ? { execute: command, arguments: args } : { execute: command });
    this.log.write('control>', msg);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply to ${msg} within 10 s`)), 10_000);
      this.replies.push((r) => {
        clearTimeout(timer);
        resolve(r);
      });
      this.sock.write(`${msg}\n`);
    });
  }
  /** The next (or an already received) event named `name` whose data satisfies `match`. */
  waitEvent(name: string, match: (d: Record<string, unknown>) => boolean, timeoutMs = 10_000): Promise<QmpEvent> {
    return until(`event ${name}`, timeoutMs, () => this.events.find((e) => e.event === name && match(e.data ?? {})));
  }
  close(): void {
    this.sock.destroy();
  }
}

// ---- host-side sockets ------------------------------------------------------------------------

export async function connectUnix(path: string, timeoutMs: number): Promise<Socket> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await new Promise<Socket>((res, rej) => {
        const s = connect(path);
        s.once('connect', () => {
          s.removeAllListeners('error');
          res(s);
        });
        s.once('error', rej);
      });
    } catch (e) {
      if (Date.now() > end) throw new Error(`cannot connect to ${path}: ${(e as Error).message}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** A client of one of the daemon's server sockets (a hub member): everything it receives is kept. */
export class HostPeer {
  private chunks: Buffer[] = [];
  private size = 0;
  private constructor(
    readonly sock: Socket,
    readonly id: string,
    log: TestLog,
  ) {
    sock.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.size += d.length;
      log.write(`${id}<`, `${d.length} bytes: ${JSON.stringify(d.subarray(0, 120).toString('latin1'))}`);
    });
    sock.on('error', (e) => log.write(id, `error ${e.message}`));
  }
  static async connect(path: string, id: string, log: TestLog): Promise<HostPeer> {
    return new HostPeer(await connectUnix(path, 5_000), id, log);
  }
  get received(): Buffer {
    return Buffer.concat(this.chunks, this.size);
  }
  get length(): number {
    return this.size;
  }
  text(): string {
    return this.received.toString('latin1');
  }
  /** Wait until at least `n` bytes have arrived. */
  waitBytes(n: number, timeoutMs = 30_000): Promise<Buffer> {
    return until(`${n} bytes on ${this.id} (have ${this.size})`, timeoutMs, () => this.size >= n && this.received);
  }
  /** Wait until the received text matches `re`. */
  waitText(re: RegExp, timeoutMs = 15_000): Promise<RegExpExecArray> {
    return until(`${re} on ${this.id}`, timeoutMs, () => re.exec(this.text()) ?? undefined);
  }
  write(data: string | Uint8Array): void {
    this.sock.write(data);
  }
  close(): void {
    this.sock.destroy();
  }
}

export const md5 = (b: Uint8Array): string => createHash('md5').update(b).digest('hex');

// ---- the per-test context ---------------------------------------------------------------------

export interface E2E {
  dir: string;
  log: TestLog;
  rig: Rig;
  startDaemon(config: DaemonConfig): Promise<Daemon>;
  boot(opts: BootOptions): Promise<Guest>;
  /** The daemon's control socket, or with 'builtin' QEMU's own QMP (the reference for events; with boot({qmp}) too). */
  control(daemon: Daemon | 'builtin'): Promise<Control>;
  peer(daemon: Daemon, id: string): Promise<HostPeer>;
  /** Skip the test, loudly, because the daemon lacks `capability`. */
  skip(capability: string): never;
}

/**
 * Registers beforeEach/afterEach for a test file and returns a getter for the current test's
 * context. Without a rig, or without a daemon CLI to test, tests skip saying so.
 */
export function useE2E(): () => E2E {
  let current: E2E | undefined;
  const cleanups: (() => unknown)[] = [];

  beforeEach((ctx: TestContext) => {
    const rig = loadRig();
    if (!rig) {
      if (process.env.VHC_E2E === '1')
        throw new Error('VHC_E2E=1 but the rig is not provisioned: npm run e2e:provision');
      skipLoudly(ctx, 'the e2e rig (.e2e-cache/rig.env; npm run e2e:provision)');
    }
    const dir = mkdtempSync(join(tmpdir(), 'vhc-e2e-'));
    const log = new TestLog(`${ctx.task.file?.name.replace(/.*\//, '') ?? 'e2e'}-${ctx.task.name}`);
    log.write('rig', `QEMU ${rig.qemuVersion} ${rig.device}, kernel ${rig.kernelVersion}, dir ${dir}`);
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));

    current = {
      dir,
      log,
      rig: rig,
      skip: (capability) => skipLoudly(ctx, capability),
      async startDaemon(config) {
        if (!existsSync(CLI)) skipLoudly(ctx, 'the daemon CLI (dist/cli.js; npx tsc -p .)');
        const args = daemonArgs(dir, config);
        // Every option this configuration uses must be one the daemon documents in --help.
        const help = daemonHelp();
        const missing = [...new Set(args.filter((a) => a.startsWith('--') && !help.includes(a)))];
        if (missing.length) skipLoudly(ctx, `daemon option(s) ${missing.join(', ')} (not in node dist/cli.js --help)`);
        log.write('daemon', `node dist/cli.js ${args.join(' ')}`);
        // VHC_E2E_DAEMON_PRELOAD: LD_PRELOAD for the daemon alone, e.g. libasan for an ASan-built addon.
        const preload = process.env.VHC_E2E_DAEMON_PRELOAD;
        const env = preload ? { ...process.env, LD_PRELOAD: preload } : process.env;
        const child = config.activation
          ? spawn(
              'python3',
              [
                join(ROOT, 'test/ops/fixtures/fake-systemd.py'),
                '--listen',
                join(dir, 'vm.sock'),
                '--mode',
                '0600',
                '--delay',
                String(config.activation.delayMs),
                '--',
                process.execPath,
                CLI,
                ...args,
              ],
              { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] },
            )
          : spawn(process.execPath, [CLI, ...args], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
        const d = new Daemon(child, dir, config, log);
        cleanups.push(() => d.kill());
        child.stdout.on(
          'data',
          lineSplitter((l) => log.write('daemon-out', l)),
        );
        child.stderr.on(
          'data',
          lineSplitter((l) => log.write('daemon-err', l)),
        );
        await until('the daemon to listen on vm.sock', 10_000, () => {
          if (!d.alive) throw new Error(`daemon exited before listening; log ${log.path}:\n${log.tail(20)}`);
          return existsSync(d.socket);
        });
        return d;
      },
      async boot(opts) {
        const mem = opts.mem ?? '256M';
        const args = [
          '-L',
          rig.firmware,
          '-machine',
          'q35,accel=tcg,memory-backend=mem',
          '-cpu',
          'max',
          '-smp',
          '1',
          '-m',
          mem,
          '-object',
          `memory-backend-memfd,id=mem,size=${mem},share=on`,
          '-nodefaults',
          '-no-user-config',
          '-display',
          'none',
          '-no-reboot',
          '-serial',
          'stdio',
          '-kernel',
          rig.kernel,
          '-initrd',
          rig.initrd,
          '-append',
          `console=ttyS0 panic=-1 quiet ${opts.append ?? ''}`,
        ];
        if (opts.daemon === 'builtin') {
          // QEMU's own device, its QMP socket (qemu-qmp.sock) and a spare chardev ref2 for hot-plug.
          const ref = (n: number): string[] => [
            '-chardev',
            `socket,id=ref${n},path=${join(dir, `builtin${n}.sock`)},server=on,wait=off`,
          ];
          args.push(
            '-device',
            'virtio-serial-pci,id=vser0,max_ports=4',
            ...ref(0),
            ...ref(1),
            ...ref(2),
            '-device',
            'virtconsole,bus=vser0.0,nr=0,chardev=ref0,id=con0',
            '-device',
            'virtserialport,bus=vser0.0,nr=1,chardev=ref1,name=org.e2e.port1,id=port1',
            '-qmp',
            `unix:${join(dir, 'qemu-qmp.sock')},server=on,wait=off`,
          );
        } else {
          const vqs = opts.numVqs ?? opts.daemon.numVqs;
          args.push(
            '-chardev',
            `socket,id=vu0,path=${opts.daemon.socket}`,
            '-device',
            `${rig.device},chardev=vu0,virtio-id=3,num_vqs=${vqs},config_size=12`,
          );
          if (opts.qmp) args.push('-qmp', `unix:${join(dir, 'qemu-qmp.sock')},server=on,wait=off`);
        }
        log.write('qemu', `${rig.qemu} ${args.join(' ')}`);
        const g = new Guest(spawn(rig.qemu, args, { cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] }), log);
        cleanups.push(() => g.kill());
        await g.waitLine(/^E2E: ready/, 60_000);
        return g;
      },
      async control(daemon) {
        const c = await Control.connect(join(dir, daemon === 'builtin' ? 'qemu-qmp.sock' : 'qmp.sock'), log);
        cleanups.push(() => c.close());
        return c;
      },
      async peer(daemon, id) {
        const p = await HostPeer.connect(join(daemon.dir, `${id}.sock`), id, log);
        cleanups.push(() => p.close());
        return p;
      },
    };
  });

  afterEach(async (ctx: TestContext) => {
    const failed = ctx.task.result?.state === 'fail';
    for (const c of cleanups.splice(0).reverse()) {
      try {
        await c();
      } catch (e) {
        current?.log.write('cleanup', String(e));
      }
    }
    if (failed && current) console.error(`e2e log: ${current.log.path}\n${current.log.tail(40)}`);
    current = undefined;
  });

  return () => {
    if (!current) throw new Error('useE2E(): no test is running');
    return current;
  };
}

function skipLoudly(ctx: TestContext, capability: string): never {
  console.warn(`E2E SKIPPED '${ctx.task.name}': needs ${capability}, which does not exist yet`);
  ctx.skip();
  throw new Error('unreachable: ctx.skip() returned');
}

/** Skip unless `node dist/cli.js --help` mentions every one of `flags`. */
export function requireFlags(e: E2E, ...flags: string[]): void {
  const help = daemonHelp();
  const missing = flags.filter((f) => !help.includes(f));
  if (missing.length) e.skip(`daemon CLI flag(s) ${missing.join(', ')}`);
}

/** Skip if the control command does not exist (CommandNotFound); else return its reply. */
export async function requireCommand(
  e: E2E,
  c: Control,
  command: string,
  args?: Record<string, unknown>,
): Promise<QmpReply> {
  const r = await c.execute(command, args);
  if (r.error?.class === 'CommandNotFound') e.skip(`control command '${command}'`);
  return r;
}

/** Parse `send md5=.. len=..` / `recv NAME md5=.. len=..` lines of guest-init. */
export function digest(line: string): { md5: string; len: number } {
  const m = /md5=([0-9a-f]{32}) len=(\d+)/.exec(line);
  if (!m) throw new Error(`no md5/len in '${line}'`);
  return { md5: m[1]!, len: Number(m[2]) };
}
