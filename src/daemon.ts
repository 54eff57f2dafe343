// The daemon: the VMs of one process, the control server over them, and the process-level
// concerns (signals, shutdown). Each VM is independent: a broken front-end or ring of one
// ends that VM's connection only, and a failure while starting one VM stops start-up as a
// whole (the configuration asked for all of them) with everything opened so far closed.
import { resolve } from 'node:path';
import type { ChardevSpec, Config, ControlConfig, PortConfig, VmConfig } from './config/schema.js';
import { packageVersion } from './version.js';
import { ConfigError, StateError } from './errors.js';
import { ControlServer } from './control/server.js';
import { chardevInfo, portInfo } from './control/query.js';
import { QmpError, type ChardevInfo, type ControlTarget, type HubChange, type PortInfo } from './control/target.js';
import { logger, setLogLevel } from './log.js';
import { Vm } from './vm.js';
import { WebServer } from './web/server.js';
import { vmSource } from './web/source.js';
import type { MetricsServer } from './ops/metrics.js';
import {
  activatedSocket,
  closeUnusedActivated,
  receiveListenFds,
  sdNotify,
  stopWatchdog,
  takeActivatedSocket,
} from './ops/systemd.js';
import { named } from './chardev/chardev.js';
import { PipeChardev } from './chardev/pipe.js';
import {
  checkClientSocket,
  checkFifo,
  checkInputFile,
  checkLinkPath,
  checkOutputFile,
  checkSocketPath,
  claimSocketPath,
  PathError,
  type Claim,
} from './sys/paths.js';

export class Daemon implements ControlTarget {
  readonly #log = logger({ component: 'daemon' });
  readonly #vms = new Map<string, Vm>();
  #control: ControlServer | undefined;
  #web: WebServer | undefined;
  #metrics: MetricsServer | undefined;
  #controlClaim: Claim | undefined;
  #started = false;
  #stopping: Promise<void> | undefined;
  readonly #signalHandlers: [NodeJS.Signals, () => void][] = [];
  #exit: ((code: number) => void) | undefined;

  private constructor(readonly config: Config) {}

  /**
   * Open every VM, then the control server. With `exit`, signals are handled from the first
   * moment (see handleSignals): a SIGTERM while a `wait=on` chardev holds start-up still
   * shuts down cleanly.
   */
  static async start(config: Config, exit?: (code: number) => void): Promise<Daemon> {
    checkPaths(config.vms, config.control);
    // Sockets systemd passed (socket activation), matched to the configuration by path.
    receiveListenFds();
    // Every check --check runs, before anything is opened: a refusal leaves nothing behind.
    const problems = checkStartup(config);
    if (problems.length) throw new StartupError(problems);
    setLogLevel(config.logLevel);
    const d = new Daemon(config);
    if (exit) d.handleSignals(exit);
    try {
      for (const vc of config.vms) {
        // Registered before it opens, so that stop() closes a VM that is still starting.
        const vm = d.watch(Vm.create(vc));
        d.#vms.set(vc.id, vm);
        try {
          await vm.open();
        } catch (err) {
          throw config.vms.length > 1 ? named(err, `vm '${vc.id}'`) : err;
        }
      }
      if (d.#stopping) throw new StateError('stopped while starting');
      if (config.web) {
        d.#web = new WebServer(
          vmSource(() => d.vms()),
          { ...config.web, version: packageVersion() },
        );
        await d.#web.listen();
        if (d.#stopping) throw new StateError('stopped while starting');
      }
      if (config.control) {
        const activated = takeActivatedSocket(config.control.path);
        if (activated === undefined) d.#controlClaim = claimSocketPath(config.control.path, 'the control socket');
        d.#control = new ControlServer({
          path: config.control.path,
          ...(config.control.mode !== undefined && { mode: config.control.mode }),
          ...(activated !== undefined && { fd: activated.fd }),
          target: d,
          version: packageVersion(),
        });
        await d.#control.listen();
        d.#controlClaim?.created();
        // A signal during listen() ran stop() before the socket existed: close it now.
        if (d.#stopping) {
          await d.#control.close();
          throw new StateError('stopped while starting');
        }
      }
      if (config.metrics) {
        // Loaded only when asked for: prom-client is a start-up cost every other daemon skips.
        const { MetricsServer } = await import('./ops/metrics.js');
        d.#metrics = new MetricsServer(d, config.metrics);
        await d.#metrics.listen();
        if (d.#stopping) throw new StateError('stopped while starting');
      }
    } catch (err) {
      await d.stop();
      throw err;
    }
    d.#started = true;
    closeUnusedActivated();
    return d;
  }

  vms(): Vm[] {
    return [...this.#vms.values()];
  }

  /** The web console, if configured (--web). */
  get web(): WebServer | undefined {
    return this.#web;
  }

  /** The service manager's STATUS= line: the VMs, and how many have a front-end connected. */
  statusLine(): string {
    const vms = this.vms();
    const ids =
      vms.length <= 8
        ? vms.map((v) => v.id).join(', ')
        : `${vms
            .slice(0, 8)
            .map((v) => v.id)
            .join(', ')}, ...`;
    const up = vms.filter((v) => v.device.connected).length;
    return `STATUS=serving ${vms.length} VM${vms.length === 1 ? '' : 's'} (${ids}), ${up} with a front-end connected`;
  }

  /** Clients on the control socket (for metrics). */
  controlClients(): number {
    return this.#control?.clientCount ?? 0;
  }

  /** The metrics endpoint's URL, if --metrics is given. */
  get metricsUrl(): string | undefined {
    return this.#metrics?.url;
  }

  /** SIGTERM/SIGINT: clean shutdown; SIGHUP: reopen log files. `exit` ends the process after shutdown. */
  handleSignals(exit: (code: number) => void): void {
    this.#exit = exit;
    const on = (sig: NodeJS.Signals, fn: () => void) => {
      process.on(sig, fn);
      this.#signalHandlers.push([sig, fn]);
    };
    for (const sig of ['SIGTERM', 'SIGINT'] as const) {
      on(sig, () => {
        this.#log.info({ signal: sig }, 'shutting down');
        this.#stopThenExit(exit);
      });
    }
    on('SIGHUP', () => {
      this.#log.info('SIGHUP: reopening log files');
      for (const vm of this.#vms.values()) vm.reopenLogs();
    });
  }

  /** Close the control server and every VM (sockets removed, terminals restored, logs flushed). */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      sdNotify('STOPPING=1', 'STATUS=stopping');
      stopWatchdog();
      await this.#metrics?.close();
      await this.#control?.close();
      await this.#web?.close();
      this.#controlClaim?.release();
      this.#controlClaim = undefined;
      // A stop before start-up finished undoes it: files that start created go too.
      const undo = !this.#started;
      await Promise.allSettled([...this.#vms.values()].map((vm) => vm.close({ undo })));
      this.#vms.clear();
      // Only now: a second SIGTERM during shutdown must not kill the process half-way.
      for (const [sig, fn] of this.#signalHandlers.splice(0)) process.off(sig, fn);
    })();
    return this.#stopping;
  }

  /** Resolves when stop() has run (after `quit`, a signal, or a caller's stop()). */
  get stopped(): Promise<void> | undefined {
    return this.#stopping;
  }

  private watch(vm: Vm): Vm {
    vm.on('port-open', (id: string, open: boolean) =>
      this.#control?.emitEvent('VSERPORT_CHANGE', { id, open, vm: vm.id }),
    );
    vm.on('port-open', (id: string, open: boolean) => this.#web?.portOpen(vm.id, id, open));
    vm.on('frontend', (connected: boolean, reason?: string) => {
      // `systemctl status` shows how many VMs have their QEMU.
      if (this.#started) sdNotify(this.statusLine());
      if (connected) this.#control?.emitEvent('FRONTEND_CONNECTED', { vm: vm.id });
      else this.#control?.emitEvent('FRONTEND_DISCONNECTED', { vm: vm.id, ...(reason !== undefined && { reason }) });
    });
    return vm;
  }

  private vm(id: string): Vm {
    const vm = this.#vms.get(id);
    if (!vm) throw new QmpError('DeviceNotFound', `no VM '${id}'`);
    return vm;
  }

  // --- ControlTarget ---------------------------------------------------------------------

  vmIds(): string[] {
    return [...this.#vms.keys()];
  }

  vmConfig(vm: string): VmConfig {
    return this.vm(vm).config;
  }

  queryChardev(vm: string): ChardevInfo[] {
    return this.vm(vm).chardevStates().map(chardevInfo);
  }

  queryPorts(vm: string): PortInfo[] {
    const ports = this.vm(vm).portStates().map(portInfo);
    // Web console members: their remote address and role.
    for (const p of ports) for (const m of p.members) Object.assign(m, this.#web?.memberInfo(m.chardev));
    return ports;
  }

  chardevAdd(vm: string, chardev: ChardevSpec, next: VmConfig): Promise<{ pty?: string }> {
    checkPaths(
      this.vmIds().map((id) => (id === vm ? next : this.vm(id).config)),
      this.config.control,
    );
    // The same checks as at start-up; the chardev's own start claims its paths under a lock.
    const problems = chardevProblems(chardev, '');
    if (problems.length) throw new StartupError(problems);
    return this.vm(vm).addChardev(chardev, next);
  }

  chardevRemove(vm: string, id: string, next: VmConfig): Promise<void> {
    return this.vm(vm).removeChardev(id, next);
  }

  hubAttach(vm: string, change: HubChange, next: VmConfig): void {
    this.vm(vm).hubAttach(change, next);
  }

  hubDetach(vm: string, change: HubChange, next: VmConfig): void {
    this.vm(vm).hubDetach(change, next);
  }

  deviceAdd(vm: string, port: PortConfig, next: VmConfig): void {
    this.vm(vm).addPort(port, next);
    this.#web?.refresh();
  }

  deviceDel(vm: string, id: string, next: VmConfig): void {
    this.vm(vm).removePort(id, next);
    this.#web?.refresh();
  }

  ringbufRead(vm: string, id: string, size: number): Uint8Array {
    return this.vm(vm).ringbuf(id).read(size);
  }

  ringbufWrite(vm: string, id: string, data: Uint8Array): void {
    // As QEMU: the bytes go into the ring itself (ringbuf-read returns them), not to the guest.
    this.vm(vm).ringbuf(id).write(data);
  }

  consoleResize(vm: string, cols: number, rows: number, next: VmConfig): void {
    this.vm(vm).resize(cols, rows, next);
  }

  queryWeb(): unknown {
    return this.#web?.info();
  }

  webDisconnect(id: string): void {
    if (!this.#web) throw new StateError('the web console is not enabled (start the daemon with --web)');
    this.#web.disconnect(id);
  }

  quit(): void {
    this.#log.info('quit requested over the control API');
    // Ends the process the way a signal does when the CLI runs us; an embedder's daemon just stops.
    if (this.#exit) this.#stopThenExit(this.#exit);
    else void this.stop().catch((err: unknown) => this.#log.error({ err }, 'stop failed'));
  }

  /** Stop, then end the process: 0 after a clean stop, 1 (with the reason logged) if stopping failed. */
  #stopThenExit(exit: (code: number) => void): void {
    this.stop().then(
      () => exit(0),
      (err: unknown) => {
        this.#log.error({ err }, 'stop failed');
        exit(1);
      },
    );
  }
}

/**
 * Paths the daemon creates and removes must each have one owner: a unix server socket or a pty
 * link replaces whatever socket or link is at its path (QEMU does the same with a stale one),
 * so a second user of a path would silently take it from the first -- a chardev could even
 * take the control socket or a VM's vhost-user socket.
 */
export function checkPaths(vms: readonly VmConfig[], control?: ControlConfig): void {
  const owners = new Map<string, string>();
  const claim = (path: string, who: string) => {
    const other = owners.get(resolve(path));
    if (other !== undefined) throw new ConfigError(`${who}: path '${path}' is already used by ${other}`, 'path', path);
    owners.set(resolve(path), who);
  };
  if (control) claim(control.path, 'the control socket');
  for (const vm of vms) {
    const prefix = vms.length > 1 ? `vm '${vm.id}': ` : '';
    claim(vm.socket, `${prefix}the vhost-user socket`);
    for (const c of vm.chardevs) {
      // The paths a chardev creates: a unix server's socket, a pty's link.
      const t = c.config;
      const path =
        t.backend === 'pty'
          ? t.path
          : t.backend === 'socket' && t.server && t.address.type === 'unix'
            ? t.address.path
            : undefined;
      if (path !== undefined) claim(path, `${prefix}chardev '${c.id}'`);
    }
  }
}

/** Start-up refused before anything was opened; one message per problem. */
export class StartupError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
    this.name = 'StartupError';
  }
}

/**
 * Every check the daemon runs before it opens anything, without side effects (nothing is
 * created, opened for writing, locked or removed): the paths of the control socket, of each
 * VM's vhost-user socket and of every chardev. Returns one message per problem. `--check`
 * and `--print-qemu-args` run it; Daemon.start runs it first, then claims each path for good.
 */
export function checkStartup(config: Config): string[] {
  const problems: string[] = [];
  try {
    checkPaths(config.vms, config.control);
  } catch (err) {
    problems.push((err as Error).message);
  }
  const look = (f: () => void) => {
    try {
      f();
    } catch (err) {
      problems.push((err as Error).message);
    }
  };
  // A socket systemd passed is its own (listening, so it would look "in use"): nothing to check.
  const free = (path: string) => activatedSocket(path) === undefined;
  if (config.control && free(config.control.path))
    look(() => checkSocketPath(config.control!.path, 'the control socket'));
  for (const vm of config.vms) {
    const prefix = config.vms.length > 1 ? `vm '${vm.id}': ` : '';
    if (free(vm.socket)) look(() => checkSocketPath(vm.socket, `${prefix}the vhost-user socket`));
    for (const c of vm.chardevs) problems.push(...chardevProblems(c, prefix));
  }
  return problems;
}

/** The path checks of one chardev (see checkStartup). */
export function chardevProblems(c: ChardevSpec, prefix: string): string[] {
  const who = `${prefix}chardev '${c.id}'`;
  const problems: string[] = [];
  const look = (f: () => void) => {
    try {
      f();
    } catch (err) {
      if (!(err instanceof PathError) && !(err instanceof ConfigError)) throw err;
      problems.push(err.message);
    }
  };
  const logfile = c.config.common.logfile;
  if (logfile !== undefined) look(() => checkOutputFile(logfile, `${who}: logfile`));
  if (c.backend === 'hub') return problems;
  look(() => {
    const t = c.config;
    switch (t.backend) {
      case 'socket':
        if (t.address.type !== 'unix') break;
        if (t.server) checkSocketPath(t.address.path, who);
        else if (t.reconnectMs === 0) checkClientSocket(t.address.path, who);
        break;
      case 'pty':
        if (t.path !== undefined) checkLinkPath(t.path, who);
        break;
      case 'pipe':
        for (const p of new Set(PipeChardev.paths(t.path))) look(() => checkFifo(p, who));
        break;
      case 'file':
        checkOutputFile(t.path, who);
        if (t.inputPath !== undefined) checkInputFile(t.inputPath, `${who}: input-path`);
        break;
      default:
        break;
    }
  });
  return problems;
}
