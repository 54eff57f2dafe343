// One VM: a vhost-user console device, its ports, and on the host side the hubs and chardevs
// behind them, built from a validated VmConfig and changed at run time by the control API.
//
// Every port is a hub on the host side: a port configured with a plain chardev gets an
// implicit hub with that chardev as its only member, so members can be attached to any port
// later without the port noticing. Configuration-level checks (ids, "in use", limits) were
// done by the config layer before anything here runs; what is checked here is live state.
import { EventEmitter } from 'node:events';
import { named, type Chardev } from './chardev/chardev.js';
import { chardevFromConfig } from './chardev/registry.js';
import { RingbufChardev } from './chardev/ringbuf.js';
import { PtyChardev } from './chardev/pty.js';
import { JournalChardev } from './chardev/journal.js';
import type { ChardevSpec, PortConfig, VmConfig } from './config/schema.js';
import { createConsoleDevice } from './device/device.js';
import type { ConsoleDevice } from './device/types.js';
import { StateError } from './errors.js';
import { Hub } from './hub/hub.js';
import { logger, type Logger } from './log.js';
import { Port, type PortStats } from './port/port.js';
import { claimSocketPath, type Claim } from './sys/paths.js';
import { takeActivatedSocket } from './ops/systemd.js';

interface PortEntry {
  config: PortConfig;
  port: Port;
  hub: Hub;
}

/**
 * A hub membership change. `hub` is the hub chardev; `port` the port it serves (if a port
 * uses it). `created` is set when the attach made the hub: the port had a plain chardev
 * (which became the hub's first member) or none — in the live objects nothing but the new
 * member changes, since every port is a hub on the host side. `hub` is empty for a detach
 * from a port that uses a plain chardev: its implicit hub of one is meant.
 */
export interface HubChange {
  hub: string;
  port?: string;
  chardev: string;
  created?: boolean;
}

/** One chardev or configured hub of the VM, as it is now. */
export interface VmChardevState {
  id: string;
  /** Its configuration (absent for a hub hub-attach created). */
  config: ChardevSpec | undefined;
  /** The live backend; undefined for a hub. */
  chardev: Chardev | undefined;
  /** It feeds a port: a member of a hub bound to one, or that hub. */
  feedsPort: boolean;
}

/** One port: its live configuration (hub-attach may have given it a hub since) and counters. */
export interface VmPortState {
  config: PortConfig;
  stats: PortStats;
}

export interface VmEvents {
  /** The guest opened/closed a port (`portId` is the port's device id). */
  'port-open': [portId: string, open: boolean];
  /** A vhost-user front-end (QEMU) connected, or went away (`reason`). */
  frontend: [connected: boolean, reason?: string];
}

export class Vm extends EventEmitter<VmEvents> {
  readonly id: string;
  readonly device: ConsoleDevice;
  readonly #log: Logger;
  #config: VmConfig;
  readonly #chardevs = new Map<string, Chardev>();
  /** Hubs by id: the configured ones and those hub-attach created for a port. */
  readonly #hubs = new Map<string, Hub>();
  readonly #ports = new Map<string, PortEntry>();
  #closed = false;
  #socketClaim: Claim | undefined;

  private constructor(config: VmConfig) {
    super();
    this.id = config.id;
    this.#config = config;
    this.#log = logger({ component: 'vm', vm: config.id });
    this.device = createConsoleDevice({
      socketPath: config.socket,
      ...(config.socketMode !== undefined && { socketMode: config.socketMode }),
      maxPorts: config.maxPorts,
      multiport: config.multiport,
      cols: config.consoleSize.cols,
      rows: config.consoleSize.rows,
      resizeOrder: config.resizeOrder,
      name: config.id,
    });
    this.device.on('frontend-connected', () => this.emit('frontend', true));
    this.device.on('frontend-disconnected', (reason: string) => this.emit('frontend', false, reason));
  }

  /** A VM that has opened nothing yet: open() it. Separate so that close() can interrupt open(). */
  static create(config: VmConfig): Vm {
    return new Vm(config);
  }

  /**
   * Open the chardevs (in order, as QEMU does: a `wait=on` server holds start-up until its
   * first client), build the hubs and ports, then listen for the front-end. On failure
   * everything opened so far is closed again.
   */
  async open(): Promise<void> {
    const config = this.#config;
    try {
      // The vhost-user socket first: a second daemon with this configuration is refused
      // before it touches any chardev path.
      // Socket activation: systemd created the socket and owns its path; nothing to claim.
      const activated = takeActivatedSocket(config.socket);
      if (activated === undefined) this.#socketClaim = claimSocketPath(config.socket, 'the vhost-user socket');
      for (const c of config.chardevs) {
        if (c.backend !== 'hub') await this.openChardev(c);
        // A `wait=on` server may hold start-up for long; a signal may close us meanwhile.
        if (this.#closed) throw new StateError(`VM '${this.id}' was closed while starting`);
      }
      for (const c of config.chardevs) if (c.backend === 'hub') this.buildHub(c);
      for (const p of config.devices) this.plugPort(p);
      this.labelJournals();
      try {
        if (activated !== undefined) this.device.listenFd(activated.fd);
        else this.device.listen();
      } catch (err) {
        throw named(err, 'the vhost-user socket');
      }
      this.#socketClaim?.created();
    } catch (err) {
      // Undo exactly what this start did: its sockets, links, locks and the files it created.
      await this.close({ undo: true });
      throw err;
    }
    this.#log.debug({ socket: config.socket, ports: config.devices.length }, 'ports wired');
  }

  get config(): VmConfig {
    return this.#config;
  }

  /** The slave paths of the VM's pty chardevs, for the start-up banner. */
  ptys(): { id: string; path: string; link?: string }[] {
    const out: { id: string; path: string; link?: string }[] = [];
    for (const c of this.#chardevs.values()) {
      if (c instanceof PtyChardev)
        out.push({ id: c.id, path: c.slavePath, ...(c.config.path !== undefined && { link: c.config.path }) });
    }
    return out;
  }

  /** SIGHUP: reopen every log file (logrotate moved them away). */
  reopenLogs(): void {
    for (const c of this.#chardevs.values()) c.reopenLogs();
    for (const h of this.#hubs.values()) h.reopenLogs();
  }

  /** Close everything; `undo` (a failed start) also removes the files this start created. */
  async close(opts: { undo?: boolean } = {}): Promise<void> {
    this.#closed = true;
    for (const e of this.#ports.values()) e.port.close();
    this.#ports.clear();
    this.device.close();
    this.#socketClaim?.release();
    this.#socketClaim = undefined;
    for (const h of this.#hubs.values()) h.close(opts);
    this.#hubs.clear();
    await Promise.allSettled([...this.#chardevs.values()].map((c) => c.close(opts)));
    this.#chardevs.clear();
  }

  // --- run-time changes (the control API validated them against the config rules) -------

  async addChardev(cfg: ChardevSpec, next: VmConfig): Promise<{ pty?: string }> {
    const c = await this.openChardev(cfg);
    this.#config = next;
    return c instanceof PtyChardev ? { pty: c.slavePath } : {};
  }

  async removeChardev(id: string, next: VmConfig): Promise<void> {
    const hub = this.#hubs.get(id);
    if (hub !== undefined) {
      // An unused hub (its port was unplugged): its members go back to being unused chardevs.
      if ([...this.#ports.values()].some((e) => e.hub === hub))
        throw new StateError(`chardev '${id}' is busy: used by a port`);
      hub.close();
      this.#hubs.delete(id);
      this.#config = next;
      return;
    }
    const c = this.#chardevs.get(id);
    if (c === undefined) throw new StateError(`no chardev '${id}'`);
    if (c.owner !== undefined) throw new StateError(`chardev '${id}' is busy: used by ${c.owner}`);
    this.#chardevs.delete(id);
    this.#config = next;
    await c.close();
  }

  hubAttach(change: HubChange, next: VmConfig): void {
    const hub = this.hubOf(change);
    hub.attach(this.chardev(change.chardev));
    if (change.created) this.#hubs.set(change.hub, hub);
    this.labelJournals();
    this.#config = next;
  }

  hubDetach(change: HubChange, next: VmConfig): void {
    this.hubOf(change).detach(change.chardev);
    this.#config = next;
  }

  addPort(cfg: PortConfig, next: VmConfig): void {
    this.plugPort(cfg);
    this.labelJournals();
    this.#config = next;
  }

  removePort(id: string, next: VmConfig): void {
    const e = this.#ports.get(id);
    if (e === undefined) throw new StateError(`no port '${id}'`);
    e.port.close();
    this.device.removePort(e.config.nr);
    // An implicit hub goes with its port; its members stay, unused, for chardev-remove.
    if (![...this.#hubs.values()].includes(e.hub)) e.hub.close();
    this.#ports.delete(id);
    this.#config = next;
  }

  resize(cols: number, rows: number, next?: VmConfig): void {
    this.device.setConsoleSize(cols, rows);
    this.#config = next ?? { ...this.#config, consoleSize: { cols, rows } };
  }

  ringbuf(id: string): RingbufChardev {
    const c = this.#chardevs.get(id);
    if (!(c instanceof RingbufChardev)) throw new StateError(`chardev '${id}' is not a ringbuf`);
    return c;
  }

  // --- queries -----------------------------------------------------------------------------

  /** The chardevs, then the configured hubs (the control layer shows them as query-chardev). */
  chardevStates(): VmChardevState[] {
    const portHubs = new Set([...this.#ports.values()].map((e) => e.hub.label));
    const configOf = (id: string) => this.#config.chardevs.find((x) => x.id === id);
    const out: VmChardevState[] = [];
    for (const c of this.#chardevs.values()) {
      out.push({
        id: c.id,
        config: configOf(c.id),
        chardev: c,
        feedsPort: c.owner !== undefined && portHubs.has(c.owner),
      });
    }
    for (const [id, h] of this.#hubs)
      out.push({ id, config: configOf(id), chardev: undefined, feedsPort: portHubs.has(h.label) });
    return out;
  }

  /** Every plugged port with its live configuration and counters (query-ports, metrics). */
  /** Each port with its hub and guest-open state: the web console attaches its members there. */
  portHubs(): { config: PortConfig; hub: Hub; guestOpen: boolean }[] {
    return [...this.#ports.values()].map((e) => ({
      config: this.#config.devices.find((d) => d.id === e.config.id) ?? e.config,
      hub: e.hub,
      guestOpen: e.port.device.guestOpen,
    }));
  }

  portStates(): VmPortState[] {
    return [...this.#ports.values()].map(({ config: plugged, port }) => ({
      // The live configuration: hub-attach may have given the port a hub since it was plugged.
      config: this.#config.devices.find((d) => d.id === plugged.id) ?? plugged,
      stats: port.stats(),
    }));
  }

  // --- wiring ------------------------------------------------------------------------------

  private async openChardev(cfg: ChardevSpec): Promise<Chardev> {
    const c = chardevFromConfig(cfg.config);
    // Known before it is started, so that close() also ends a start that waits (wait=on).
    this.#chardevs.set(cfg.id, c);
    try {
      await c.start();
    } catch (err) {
      this.#chardevs.delete(cfg.id);
      throw err;
    }
    return c;
  }

  private buildHub(cfg: ChardevSpec): Hub {
    const typed = cfg.config;
    if (typed.backend !== 'hub') throw new StateError(`chardev '${cfg.id}' is not a hub`);
    const hub = Hub.fromConfig(typed, (id) => this.#hubs.get(id) ?? this.#chardevs.get(id));
    this.#hubs.set(cfg.id, hub);
    return hub;
  }

  private plugPort(cfg: PortConfig): void {
    const hub = this.hubForPort(cfg);
    const console = cfg.driver === 'virtconsole';
    const dp = this.device.addPort({ nr: cfg.nr, console, ...(cfg.name !== undefined && { name: cfg.name }) });
    let port: Port;
    try {
      port = new Port(dp, hub, console ? { onResize: (cols, rows) => this.resize(cols, rows) } : {});
    } catch (err) {
      this.device.removePort(cfg.nr);
      throw err;
    }
    dp.on('guest-open', (open: boolean) => this.emit('port-open', cfg.id, open));
    this.#ports.set(cfg.id, { config: cfg, port, hub });
  }

  /** Journal members name their VM and port in every entry. */
  private labelJournals(): void {
    for (const { config, hub } of this.#ports.values()) {
      for (const m of hub.members()) {
        if (m.chardev instanceof JournalChardev)
          m.chardev.setContext({
            vm: this.id,
            port: config.id,
            ...(config.name !== undefined && { portName: config.name }),
          });
      }
    }
  }

  /** A configured hub, or an implicit one around the port's plain chardev (or an empty one). */
  private hubForPort(cfg: PortConfig): Hub {
    if (cfg.chardev !== undefined) {
      const h = this.#hubs.get(cfg.chardev);
      if (h) return h;
    }
    const hub = new Hub(`port-${cfg.id}`, { label: `port '${cfg.id}'` });
    if (cfg.chardev !== undefined) {
      try {
        hub.attach(this.chardev(cfg.chardev));
      } catch (err) {
        hub.close();
        throw err;
      }
    }
    return hub;
  }

  private hubOf(change: HubChange): Hub {
    const h = this.#hubs.get(change.hub) ?? (change.port !== undefined ? this.#ports.get(change.port)?.hub : undefined);
    if (h === undefined) throw new StateError(`no hub '${change.hub}'`);
    return h;
  }

  private chardev(id: string): Chardev {
    const c = this.#chardevs.get(id);
    if (c === undefined) throw new StateError(`no chardev '${id}'`);
    return c;
  }
}
