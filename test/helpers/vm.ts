// One daemon configured like a small VM (a console and named ports on socket chardevs),
// plus the test front-ends and host clients talking to it, all cleaned up by dispose().
import { join } from 'node:path';
import { ConsoleDriver, type ConsoleDriverOptions } from '../frontend/index.js';
import { Daemon, HostClient, tmpDir } from './daemon.js';
import { QmpClient } from './qmp.js';

export interface PortDef {
  driver: 'virtconsole' | 'virtserialport';
  chardev: string;
  name?: string;
  nr?: number;
}

export interface VmSpec {
  maxPorts?: number;
  consoleSize?: string;
  /** Default: a console on c0, org.example.port1 on c1, org.example.port2 on c2. */
  ports?: PortDef[];
  /** Chardevs by id; default: a `socket,server=on,wait=off` chardev for every port's chardev. */
  chardevs?: Record<string, string>;
  extraArgs?: string[];
  /** Serve the control API (QMP-shaped) on <dir>/ctl.sock. */
  control?: boolean;
}

export const DEFAULT_PORTS: PortDef[] = [
  { driver: 'virtconsole', chardev: 'c0' },
  { driver: 'virtserialport', chardev: 'c1', name: 'org.example.port1' },
  { driver: 'virtserialport', chardev: 'c2', name: 'org.example.port2' },
];

export class Vm {
  readonly socket: string;
  private readonly drivers: ConsoleDriver[] = [];
  private readonly hosts: HostClient[] = [];
  private readonly qmps: QmpClient[] = [];

  private constructor(
    readonly dir: string,
    private readonly removeDir: () => void,
    readonly daemon: Daemon,
    readonly maxPorts: number,
    readonly multiport: boolean,
  ) {
    this.socket = join(dir, 'vm.sock');
  }

  static async start(spec: VmSpec = {}): Promise<Vm> {
    const { path: dir, remove } = tmpDir();
    const maxPorts = spec.maxPorts ?? 4;
    const ports = spec.ports ?? DEFAULT_PORTS;
    const multiport = !(spec.extraArgs ?? []).join(' ').includes('--multiport off');
    const args = [
      '--socket',
      join(dir, 'vm.sock'),
      '--console-size',
      spec.consoleSize ?? '80x25',
      ...(multiport ? ['--max-ports', String(maxPorts)] : []),
      '--log-level',
      'debug',
    ];
    const chardevs =
      spec.chardevs ??
      Object.fromEntries(
        ports.map((p) => [p.chardev, `socket,path=${join(dir, `${p.chardev}.sock`)},server=on,wait=off`]),
      );
    const waitFiles = [join(dir, 'vm.sock')];
    for (const [id, def] of Object.entries(chardevs)) {
      // '@DIR@' in a chardev stands for the VM's directory (where the default sockets go).
      const [backend, ...rest] = def.replaceAll('@DIR@', dir).split(',');
      args.push('--chardev', [backend, `id=${id}`, ...rest].join(','));
      if (backend === 'socket') waitFiles.push(join(dir, `${id}.sock`));
    }
    for (const p of ports) {
      args.push(
        '--device',
        [
          p.driver,
          `chardev=${p.chardev}`,
          ...(p.name ? [`name=${p.name}`] : []),
          ...(p.nr !== undefined ? [`nr=${p.nr}`] : []),
        ].join(','),
      );
    }
    args.push(...(spec.extraArgs ?? []));
    if (spec.control) {
      args.push('--control', join(dir, 'ctl.sock'));
      waitFiles.push(join(dir, 'ctl.sock'));
    }
    let daemon: Daemon;
    try {
      daemon = await Daemon.start(args, waitFiles);
    } catch (e) {
      remove();
      throw e;
    }
    return new Vm(dir, remove, daemon, maxPorts, multiport);
  }

  get numQueues(): number {
    return this.multiport ? 2 * (this.maxPorts + 1) : 2;
  }

  chardevPath(id: string): string {
    return join(this.dir, `${id}.sock`);
  }

  /** A test front-end + driver brought up to DEVICE_READY (tracked for cleanup). */
  async driver(o: Partial<ConsoleDriverOptions> = {}): Promise<ConsoleDriver> {
    // The socket file appears at bind(), a moment before listen(): retry a refused connect.
    const end = Date.now() + 3000;
    let d: ConsoleDriver;
    for (;;) {
      try {
        d = await ConsoleDriver.start({ socketPath: this.socket, numQueues: this.numQueues, ...o });
        break;
      } catch (e) {
        if (!/connect\(.*errno 111/.test(String(e)) || Date.now() > end) throw e;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    this.drivers.push(d);
    return d;
  }

  /** A client of chardev `id`'s unix socket (tracked for cleanup). */
  async host(id: string, o: { paused?: boolean } = {}): Promise<HostClient> {
    const h = await HostClient.connect(this.chardevPath(id), o);
    this.hosts.push(h);
    return h;
  }

  /** A negotiated client of the control socket (needs `control: true`; tracked for cleanup). */
  async qmp(): Promise<QmpClient> {
    const c = await QmpClient.connect(join(this.dir, 'ctl.sock'));
    this.qmps.push(c);
    return c;
  }

  async dispose(): Promise<void> {
    for (const q of this.qmps.splice(0)) q.close();
    for (const d of this.drivers.splice(0)) await d.close().catch(() => {});
    for (const h of this.hosts.splice(0)) h.close();
    await this.daemon.stop();
    this.removeDir();
  }
}
