// Prometheus metrics at GET /metrics (`--metrics [HOST:]PORT`, loopback by default), from
// prom-client's registry in the text exposition format. Values are read from the live objects
// at scrape time (the same counters as query-ports), so nothing is counted twice and an idle
// daemon does no work for metrics between scrapes. Names follow Prometheus conventions:
// `vhost_console_` prefix, counters end in `_total`, byte counts in `_bytes_total`, 0/1 gauges
// for states; labels vm, port (the port's id), name (the port's name, '' if none), chardev.
import http from 'node:http';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { portInfo } from '../control/query.js';
import type { PortInfo } from '../control/target.js';
import type { VmPortState } from '../vm.js';
import { logger } from '../log.js';
import { formatAddress, type ListenAddress } from './address.js';

/** What the metrics read: the daemon's VMs and its control server. */
export interface MetricsSource {
  vms(): readonly MetricsVm[];
  controlClients(): number;
}

export interface MetricsVm {
  readonly id: string;
  readonly device: {
    readonly connected: boolean;
    on(event: 'device-error' | 'frontend-connected', fn: (...args: unknown[]) => void): unknown;
  };
  portStates(): VmPortState[];
}

export class MetricsServer {
  readonly registry = new Registry();
  readonly #faults = new Map<string, number>();
  readonly #connects = new Map<string, number>();
  readonly #watched = new WeakSet<object>();
  #server: http.Server | undefined;
  /** One snapshot per scrape (taken by metrics()), read by every metric's collect(). */
  #snap: { vm: MetricsVm; ports: PortInfo[] }[] = [];
  readonly #log = logger({ component: 'metrics' });

  constructor(
    private readonly source: MetricsSource,
    readonly address: ListenAddress,
  ) {
    const r = this.registry;
    collectDefaultMetrics({ register: r });
    // collect() runs with `this` bound to its metric: the server's state is reached through these.
    const snap = () => this.#snap;
    const faults = this.#faults;
    const connects = this.#connects;
    const ports = () =>
      snap().flatMap(({ vm, ports }) =>
        ports.map((p) => ({ vm: vm.id, p, l: { vm: vm.id, port: p.id, name: p.name ?? '' } })),
      );
    const members = () => ports().flatMap(({ p, l }) => p.members.map((m) => ({ m, l: { ...l, chardev: m.chardev } })));

    new Gauge({
      name: 'vhost_console_frontend_connected',
      help: 'Whether a vhost-user front-end (QEMU) is connected to the VM (0/1)',
      labelNames: ['vm'],
      registers: [r],
      collect() {
        this.reset();
        for (const { vm } of snap()) this.set({ vm: vm.id }, vm.device.connected ? 1 : 0);
      },
    });
    new Counter({
      name: 'vhost_console_frontend_connections_total',
      help: 'Front-end connections accepted since the daemon started',
      labelNames: ['vm'],
      registers: [r],
      collect() {
        this.reset();
        for (const { vm } of snap()) this.inc({ vm: vm.id }, connects.get(vm.id) ?? 0);
      },
    });
    new Counter({
      name: 'vhost_console_ring_faults_total',
      help: 'Front-end connections ended by a fault (a broken ring or a bad vhost-user message)',
      labelNames: ['vm'],
      registers: [r],
      collect() {
        this.reset();
        for (const { vm } of snap()) this.inc({ vm: vm.id }, faults.get(vm.id) ?? 0);
      },
    });
    new Counter({
      name: 'vhost_console_port_bytes_total',
      help: 'Bytes through the port: direction="from_guest" (guest output) or "to_guest" (input)',
      labelNames: ['vm', 'port', 'name', 'direction'],
      registers: [r],
      collect() {
        this.reset();
        for (const { p, l } of ports()) {
          this.inc({ ...l, direction: 'from_guest' }, p['bytes-out']);
          this.inc({ ...l, direction: 'to_guest' }, p['bytes-in']);
        }
      },
    });
    new Gauge({
      name: 'vhost_console_port_guest_open',
      help: 'Whether the guest has the port open (0/1)',
      labelNames: ['vm', 'port', 'name'],
      registers: [r],
      collect() {
        this.reset();
        for (const { p, l } of ports()) this.set(l, p['guest-open'] ? 1 : 0);
      },
    });
    new Gauge({
      name: 'vhost_console_port_host_open',
      help: 'Whether the host side of the port is open, as last told to the guest (0/1)',
      labelNames: ['vm', 'port', 'name'],
      registers: [r],
      collect() {
        this.reset();
        for (const { p, l } of ports()) this.set(l, p['host-open'] ? 1 : 0);
      },
    });
    new Gauge({
      name: 'vhost_console_port_members',
      help: "Backends attached to the port's hub",
      labelNames: ['vm', 'port', 'name'],
      registers: [r],
      collect() {
        this.reset();
        for (const { p, l } of ports()) this.set(l, p.members.length);
      },
    });
    new Gauge({
      name: 'vhost_console_port_members_connected',
      help: "Backends of the port's hub that are connected (a client on the socket, a terminal on the pty, ...)",
      labelNames: ['vm', 'port', 'name'],
      registers: [r],
      collect() {
        this.reset();
        for (const { p, l } of ports()) this.set(l, p.members.filter((m) => m.open).length);
      },
    });
    new Gauge({
      name: 'vhost_console_member_connected',
      help: 'Whether the hub member is connected (0/1)',
      labelNames: ['vm', 'port', 'name', 'chardev'],
      registers: [r],
      collect() {
        this.reset();
        for (const { m, l } of members()) this.set(l, m.open ? 1 : 0);
      },
    });
    new Counter({
      name: 'vhost_console_member_bytes_total',
      help: 'Bytes through a hub member: direction="from_guest" (written to it) or "to_guest" (typed into it)',
      labelNames: ['vm', 'port', 'name', 'chardev', 'direction'],
      registers: [r],
      collect() {
        this.reset();
        for (const { m, l } of members()) {
          this.inc({ ...l, direction: 'from_guest' }, m['bytes-out']);
          this.inc({ ...l, direction: 'to_guest' }, m['bytes-in']);
        }
      },
    });
    new Counter({
      name: 'vhost_console_member_dropped_bytes_total',
      help: 'Guest output a slow member missed (its buffer was full; drop policy)',
      labelNames: ['vm', 'port', 'name', 'chardev'],
      registers: [r],
      collect() {
        this.reset();
        for (const { m, l } of members()) this.inc(l, m.drops);
      },
    });
    new Gauge({
      name: 'vhost_console_control_clients',
      help: 'Clients connected to the control socket',
      registers: [r],
      collect() {
        this.set(source.controlClients());
      },
    });
    this.watch();
  }

  /** Count faults and connections of every VM (VMs are fixed after start; idempotent). */
  private watch(): void {
    for (const vm of this.source.vms()) {
      if (this.#watched.has(vm.device)) continue;
      this.#watched.add(vm.device);
      vm.device.on('device-error', () => this.#faults.set(vm.id, (this.#faults.get(vm.id) ?? 0) + 1));
      vm.device.on('frontend-connected', () => this.#connects.set(vm.id, (this.#connects.get(vm.id) ?? 0) + 1));
    }
  }

  /** The text exposition, as GET /metrics returns it. */
  metrics(): Promise<string> {
    this.watch();
    this.#snap = this.source.vms().map((vm) => ({ vm, ports: vm.portStates().map(portInfo) }));
    return this.registry.metrics();
  }

  /** The URL scrapers use (with the port the system chose, for port 0). */
  get url(): string {
    const a = this.#server?.address();
    const port = a && typeof a === 'object' ? a.port : this.address.port;
    return `http://${formatAddress({ host: this.address.host, port })}/metrics`;
  }

  async listen(): Promise<void> {
    const server = http.createServer((req, res) => void this.handle(req, res));
    // Bounded: no keep-alive pile-up from a misbehaving scraper.
    server.headersTimeout = 10_000;
    server.requestTimeout = 10_000;
    server.maxConnections = 64;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.address.port, this.address.host, () => {
        server.off('error', reject);
        resolve();
      });
    }).catch((e: Error) => {
      throw new Error(`metrics endpoint ${formatAddress(this.address)}: ${e.message}`);
    });
    server.on('error', (e) => this.#log.error({ err: e.message }, 'metrics endpoint error'));
    this.#server = server;
    this.#log.info({ url: this.url }, 'metrics endpoint listening');
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: the metrics are at /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    try {
      const body = await this.metrics();
      res.writeHead(200, { 'content-type': this.registry.contentType });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch (err) {
      this.#log.error({ err: (err as Error).message }, 'collecting metrics failed');
      res.writeHead(500, { 'content-type': 'text/plain' }).end('collecting metrics failed\n');
    }
  }

  async close(): Promise<void> {
    const s = this.#server;
    this.#server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
