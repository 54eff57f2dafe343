// The control API's commands: argument checking, VM resolution, validation of the change
// against the configuration rules, then one call into the ControlTarget.
//
// Where QEMU has a command of the same name, the arguments and the reply have QEMU's shape
// (chardev-add, chardev-remove, query-chardev, ringbuf-read/-write, device_add, device_del,
// quit), so QMP clients and habits carry over. Several VMs: a command that names an existing
// object finds its VM by the object's id; `vm` is needed only when that is ambiguous, or to
// create something when the daemon runs several VMs.

import { ConfigError, StateError } from '../errors.js';
import { CONSOLE_SIZE_MAX, CONSOLE_SIZE_MIN } from '../limits.js';
import {
  PORT_DRIVERS,
  finishVm,
  hubSpec,
  portFromParams,
  type ChardevSpec,
  type VmConfig,
  type VmDraft,
} from '../config/schema.js';
import { didYouMean } from '../config/suggest.js';
import { chardevFromQmp } from './qmp-chardev.js';
import { QmpError, type ControlEvents, type ControlTarget, type HubChange } from './target.js';

type ArgType = 'string' | 'integer' | 'boolean' | 'object' | 'array' | 'any';
type ArgSpec = Record<string, { type: ArgType; optional?: boolean }>;
type Args = Record<string, unknown>;

export interface CommandContext {
  target: ControlTarget;
  emit<K extends keyof ControlEvents>(event: K, data: ControlEvents[K]): void;
  /** Run `fn` once the reply to this command is on its way (an event QEMU sends after the reply). */
  afterReply(fn: () => void): void;
  /** The daemon's version, 'major.minor.micro'. */
  version: string;
}

interface Command {
  args: ArgSpec;
  run(args: Args, ctx: CommandContext): unknown;
  /**
   * The command changes state: the server logs it at info with its arguments and the client
   * (the audit trail, docs/operations.md). A function gives the arguments to log instead of the
   * arguments themselves (ringbuf-write logs the size of its data, not the data).
   */
  audit?: true | ((args: Args) => Args);
}

const opt = (type: ArgType) => ({ type, optional: true });
const req = (type: ArgType) => ({ type });

/** QEMU's wording for argument errors, so that scripts matching on it keep working. */
export function checkArgs(args: Args, spec: ArgSpec): void {
  for (const [name, value] of Object.entries(args)) {
    const s = spec[name];
    if (s === undefined)
      throw new ConfigError(`Parameter '${name}' is unexpected${didYouMean(name, Object.keys(spec))}`, name);
    if (!hasType(value, s.type))
      throw new ConfigError(
        `Invalid parameter type for '${name}', expected: ${s.type} (got ${JSON.stringify(value)})`,
        name,
        JSON.stringify(value),
      );
  }
  for (const [name, s] of Object.entries(spec)) {
    if (!s.optional && args[name] === undefined) throw new ConfigError(`Parameter '${name}' is missing`, name);
  }
}

function hasType(v: unknown, type: ArgType): boolean {
  switch (type) {
    case 'string':
      return typeof v === 'string';
    case 'integer':
      return Number.isSafeInteger(v);
    case 'boolean':
      return typeof v === 'boolean';
    case 'object':
      return v !== null && typeof v === 'object' && !Array.isArray(v);
    case 'array':
      return Array.isArray(v);
    case 'any':
      return true;
  }
}

// ---------------------------------------------------------------------------------------
// Which VM

/**
 * The VM a request is about: `vm` if given; the only VM; or, for a request naming an existing
 * object, the one VM that has it. `has` tells whether a VM has the object; `what` names it.
 */
function resolveVm(
  target: ControlTarget,
  vm: unknown,
  what?: { label: string; has: (cfg: VmConfig) => boolean },
): string {
  const ids = target.vmIds();
  if (typeof vm === 'string') {
    if (!ids.includes(vm))
      throw new ConfigError(`vm '${vm}' does not exist (VMs: ${ids.join(', ')})${didYouMean(vm, ids)}`, 'vm', vm);
    return vm;
  }
  if (ids.length === 1) return ids[0]!;
  if (what === undefined)
    throw new ConfigError(`Parameter 'vm' is missing: the daemon runs several VMs (${ids.join(', ')})`, 'vm');
  const having = ids.filter((id) => what.has(target.vmConfig(id)));
  if (having.length === 1) return having[0]!;
  if (having.length === 0) throw notFound(what.label);
  throw new ConfigError(`${what.label} exists in several VMs (${having.join(', ')}): give 'vm'`, 'vm');
}

function notFound(label: string): QmpError {
  return new QmpError(label.startsWith('port') ? 'DeviceNotFound' : 'GenericError', `${label} does not exist`);
}

const chardevIn = (id: string) => ({
  label: `chardev '${id}'`,
  has: (c: VmConfig) => c.chardevs.some((x) => x.id === id),
});
const portIn = (id: string) => ({ label: `port '${id}'`, has: (c: VmConfig) => c.devices.some((x) => x.id === id) });

function prefix(target: ControlTarget, vm: string): string {
  return target.vmIds().length > 1 ? `vm '${vm}': ` : '';
}

/** The VM with `change` applied, checked by the configuration rules (errors become GenericError). */
function next(target: ControlTarget, vm: string, change: (cfg: VmConfig) => VmDraft): VmConfig {
  return finishVm(change(target.vmConfig(vm)), { prefix: prefix(target, vm), runtime: true });
}

function chardevOf(cfg: VmConfig, id: string): ChardevSpec {
  const c = cfg.chardevs.find((x) => x.id === id);
  if (c === undefined) throw notFound(`chardev '${id}'`);
  return c;
}

/** Who uses chardev `id`: "port 'x'", "hub 'h'", or undefined. */
function userOf(cfg: VmConfig, id: string): string | undefined {
  const port = cfg.devices.find((d) => d.chardev === id);
  if (port) return `port '${port.id}'`;
  const hub = cfg.chardevs.find((c) => c.members?.includes(id));
  return hub ? `hub '${hub.id}'` : undefined;
}

// ---------------------------------------------------------------------------------------
// Hub membership

/** Resolve {port|hub} to the hub and, for an attach to a port without a hub, build it. */
function hubChange(
  cfg: VmConfig,
  args: Args,
  attach: boolean,
): { change: HubChange; chardevs: ChardevSpec[]; devices: VmConfig['devices'] } {
  const chardev = args.chardev as string;
  if ((args.port === undefined) === (args.hub === undefined))
    throw new ConfigError("give exactly one of 'port' and 'hub'", args.port === undefined ? 'port' : 'hub');
  let chardevs = cfg.chardevs.map((c) => ({ ...c, ...(c.members ? { members: [...c.members] } : {}) }));
  const devices = cfg.devices.map((d) => ({ ...d }));
  let hub: ChardevSpec | undefined;
  let port = typeof args.port === 'string' ? devices.find((d) => d.id === args.port) : undefined;
  let created = false;
  if (typeof args.port === 'string') {
    if (port === undefined) throw notFound(`port '${args.port}'`);
    hub = chardevs.find((c) => c.id === port!.chardev && c.backend === 'hub');
    if (hub === undefined && !attach) {
      // A port with a plain chardev is a hub of one on the host side: detaching that chardev
      // leaves the port with no backend (host side closed), as detaching a last member does.
      if (port.chardev !== chardev)
        throw new StateError(
          `port '${port.id}': '${chardev}' is not its chardev (${port.chardev ? `it uses '${port.chardev}'` : 'it has none'})`,
        );
      delete port.chardev;
      return { change: { hub: '', port: port.id, chardev }, chardevs, devices };
    }
    if (hub === undefined) {
      // Every port is a hub on the host side; give this one a name so it can be listed and addressed.
      let id = `hub-${port.id}`;
      for (let i = 1; chardevs.some((c) => c.id === id); i++) id = `hub-${port.id}-${i}`;
      hub = hubSpec(id, port.chardev === undefined ? [] : [port.chardev]);
      chardevs = [...chardevs, hub];
      port.chardev = id;
      created = true;
    }
  } else {
    hub = chardevs.find((c) => c.id === args.hub);
    if (hub === undefined) throw notFound(`chardev '${String(args.hub)}'`);
    if (hub.backend !== 'hub')
      throw new ConfigError(`chardev '${hub.id}' is not a hub (it is a ${hub.backend})`, 'hub', hub.id);
    port = devices.find((d) => d.chardev === hub!.id);
  }
  const member = chardevOf(cfg, chardev);
  const members = hub.members ?? [];
  if (attach) {
    if (members.includes(chardev)) throw new StateError(`hub '${hub.id}': '${chardev}' is already a member`);
    if (member.backend === 'hub')
      throw new ConfigError(`hub '${hub.id}': '${chardev}' is a hub; hubs do not nest`, 'chardev', chardev);
    const user = userOf(cfg, chardev);
    if (user !== undefined) throw new StateError(`chardev '${chardev}' is already used by ${user}`);
    hub.members = [...members, chardev];
  } else {
    if (!members.includes(chardev))
      throw new StateError(`hub '${hub.id}': '${chardev}' is not a member (members: ${members.join(', ') || 'none'})`);
    hub.members = members.filter((m) => m !== chardev);
  }
  const change: HubChange = { hub: hub.id, chardev };
  if (port) change.port = port.id;
  if (created) change.created = true;
  return { change, chardevs, devices };
}

// ---------------------------------------------------------------------------------------
// The commands

function decode(data: string, format: unknown): Buffer {
  if (format === undefined || format === 'utf8') return Buffer.from(data, 'utf8');
  if (format === 'base64') {
    // Buffer.from ignores junk silently; a typo in a script must not become garbage for the guest.
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(data) || data.length % 4 !== 0)
      throw new ConfigError("Parameter 'data': not valid base64", 'data');
    return Buffer.from(data, 'base64');
  }
  throw badFormat(format);
}

function badFormat(format: unknown): ConfigError {
  return new ConfigError(`Parameter 'format': '${String(format)}' is not utf8 or base64`, 'format', String(format));
}

function ringbuf(ctx: CommandContext, args: Args): [string, string] {
  const id = args.device as string;
  const vm = resolveVm(ctx.target, args.vm, chardevIn(id));
  const c = chardevOf(ctx.target.vmConfig(vm), id);
  if (c.backend !== 'ringbuf')
    throw new ConfigError(`chardev '${id}' is not a ringbuf (it is a ${c.backend})`, 'device', id);
  return [vm, id];
}

export const COMMANDS: Record<string, Command> = {
  'query-commands': {
    args: {},
    run: () =>
      Object.keys(COMMANDS)
        .concat('qmp_capabilities')
        .sort()
        .map((name) => ({ name })),
  },

  'query-version': {
    // QEMU's VersionInfo shape. The numbers are vhost-console's own version (as in the greeting),
    // not a QEMU version; `package` says so.
    args: {},
    run: (_args, { version }) => {
      const [major = 0, minor = 0, micro = 0] = version.split('.').map((x) => parseInt(x, 10) || 0);
      return { qemu: { major, minor, micro }, package: `vhost-console ${version}` };
    },
  },

  'query-vms': {
    args: { vm: opt('string') },
    run: (args, { target }) =>
      (args.vm === undefined ? target.vmIds() : [resolveVm(target, args.vm)]).map((id) => {
        const c = target.vmConfig(id);
        return {
          id,
          socket: c.socket,
          'max-ports': c.maxPorts,
          multiport: c.multiport,
          'console-size': { ...c.consoleSize },
        };
      }),
  },

  'query-chardev': {
    args: { vm: opt('string') },
    run: (args, { target }) => {
      const vms = args.vm === undefined ? target.vmIds() : [resolveVm(target, args.vm)];
      return vms.flatMap((vm) => target.queryChardev(vm).map((c) => ({ ...c, vm })));
    },
  },

  'query-ports': {
    args: { vm: opt('string') },
    run: (args, { target }) => {
      const vms = args.vm === undefined ? target.vmIds() : [resolveVm(target, args.vm)];
      return vms.flatMap((vm) => target.queryPorts(vm).map((p) => ({ ...p, vm })));
    },
  },

  'chardev-add': {
    audit: true,
    args: { id: req('string'), backend: req('object'), vm: opt('string') },
    run: async (args, { target }) => {
      const vm = resolveVm(target, args.vm);
      const id = args.id as string;
      if (target.vmConfig(vm).chardevs.some((c) => c.id === id)) throw new StateError(`chardev '${id}' already exists`);
      const chardev = chardevFromQmp(id, args.backend);
      if (chardev.backend === 'hub')
        throw new ConfigError(
          "chardev-add: create hubs with hub-attach (a port's hub exists already)",
          'backend.type',
          'hub',
        );
      const cfg = next(target, vm, (c) => ({ ...c, chardevs: [...c.chardevs, chardev] }));
      const result = await target.chardevAdd(vm, chardev, cfg);
      return result.pty === undefined ? {} : { pty: result.pty };
    },
  },

  'chardev-remove': {
    audit: true,
    args: { id: req('string'), vm: opt('string') },
    run: async (args, { target }) => {
      const id = args.id as string;
      const vm = resolveVm(target, args.vm, chardevIn(id));
      const cur = target.vmConfig(vm);
      chardevOf(cur, id);
      // As QEMU ("Chardev 'x' is busy"): a chardev in use stays; detach or device_del first.
      const user = userOf(cur, id);
      if (user !== undefined) throw new StateError(`chardev '${id}' is busy: used by ${user}`);
      const cfg = next(target, vm, (c) => ({ ...c, chardevs: c.chardevs.filter((x) => x.id !== id) }));
      await target.chardevRemove(vm, id, cfg);
      return {};
    },
  },

  'hub-attach': {
    audit: true,
    args: { port: opt('string'), hub: opt('string'), chardev: req('string'), vm: opt('string') },
    run: async (args, { target }) => {
      const vm = resolveVm(
        target,
        args.vm,
        typeof args.port === 'string' ? portIn(args.port) : chardevIn(String(args.hub ?? args.chardev)),
      );
      const { change, chardevs, devices } = hubChange(target.vmConfig(vm), args, true);
      const cfg = next(target, vm, (c) => ({ ...c, chardevs, devices }));
      await target.hubAttach(vm, change, cfg);
      return {};
    },
  },

  'hub-detach': {
    audit: true,
    args: { port: opt('string'), hub: opt('string'), chardev: req('string'), vm: opt('string') },
    run: async (args, { target }) => {
      const vm = resolveVm(
        target,
        args.vm,
        typeof args.port === 'string' ? portIn(args.port) : chardevIn(String(args.hub ?? args.chardev)),
      );
      const { change, chardevs, devices } = hubChange(target.vmConfig(vm), args, false);
      const cfg = next(target, vm, (c) => ({ ...c, chardevs, devices }));
      await target.hubDetach(vm, change, cfg);
      return {};
    },
  },

  device_add: {
    audit: true,
    args: {
      driver: req('string'),
      id: opt('string'),
      chardev: opt('string'),
      name: opt('string'),
      nr: opt('integer'),
      bus: opt('string'),
      vm: opt('string'),
    },
    run: async (args, { target }) => {
      const vm = resolveVm(target, args.vm);
      const driver = args.driver as string;
      // QMP's words, not --device's: QEMU says "'x' is not a valid device model name".
      if (!(PORT_DRIVERS as readonly string[]).includes(driver)) {
        throw new ConfigError(
          `'${driver}' is not a valid device model name (vhost-console adds virtconsole and virtserialport)${didYouMean(driver, PORT_DRIVERS)}`,
          'driver',
          driver,
        );
      }
      const params = new Map<string, string>();
      for (const key of ['id', 'chardev', 'name', 'nr', 'bus'] as const)
        if (args[key] !== undefined) params.set(key, `${args[key] as string | number}`); // checkArgs checked the types
      const draft = portFromParams(driver, params, 'device_add');
      draft.label = typeof args.id === 'string' ? `device '${args.id}'` : `device_add (${driver})`;
      const cfg = next(target, vm, (c) => ({ ...c, devices: [...c.devices, draft] }));
      const port = cfg.devices[cfg.devices.length - 1]!;
      await target.deviceAdd(vm, port, cfg);
      return {};
    },
  },

  device_del: {
    audit: true,
    args: { id: req('string'), vm: opt('string') },
    run: async (args, ctx) => {
      const id = args.id as string;
      const vm = resolveVm(ctx.target, args.vm, portIn(id));
      if (!ctx.target.vmConfig(vm).devices.some((d) => d.id === id)) throw notFound(`port '${id}'`);
      const cfg = next(ctx.target, vm, (c) => ({ ...c, devices: c.devices.filter((d) => d.id !== id) }));
      await ctx.target.deviceDel(vm, id, cfg);
      // QEMU's order (qapi/qdev.json): the reply, then DEVICE_DELETED.
      ctx.afterReply(() => ctx.emit('DEVICE_DELETED', { device: id, path: `/machine/peripheral/${id}`, vm }));
      return {};
    },
  },

  'ringbuf-read': {
    args: { device: req('string'), size: req('integer'), format: opt('string'), vm: opt('string') },
    run: async (args, ctx) => {
      const size = args.size as number;
      if (size <= 0) throw new ConfigError(`Parameter 'size': ${size} must be greater than zero`, 'size', String(size));
      if (args.format !== undefined && args.format !== 'utf8' && args.format !== 'base64') throw badFormat(args.format);
      const [vm, id] = ringbuf(ctx, args);
      const data = Buffer.from(await ctx.target.ringbufRead(vm, id, size));
      return data.toString(args.format === 'base64' ? 'base64' : 'utf8');
    },
  },

  'ringbuf-write': {
    // The data may be anything (a password); the log says how much, not what.
    audit: ({ data, ...rest }) => ({ ...rest, 'data-length': typeof data === 'string' ? data.length : 0 }),
    args: { device: req('string'), data: req('string'), format: opt('string'), vm: opt('string') },
    run: async (args, ctx) => {
      const data = decode(args.data as string, args.format);
      const [vm, id] = ringbuf(ctx, args);
      await ctx.target.ringbufWrite(vm, id, data);
      return {};
    },
  },

  'console-resize': {
    audit: true,
    args: { cols: req('integer'), rows: req('integer'), vm: opt('string') },
    run: async (args, { target }) => {
      const vm = resolveVm(target, args.vm);
      const cols = args.cols as number;
      const rows = args.rows as number;
      for (const [name, v] of [
        ['cols', cols],
        ['rows', rows],
      ] as const) {
        if (v < CONSOLE_SIZE_MIN || v > CONSOLE_SIZE_MAX)
          throw new ConfigError(
            `Parameter '${name}': ${v} is out of range (${CONSOLE_SIZE_MIN}..${CONSOLE_SIZE_MAX})`,
            name,
            String(v),
          );
      }
      const cfg = next(target, vm, (c) => ({ ...c, consoleSize: { cols, rows } }));
      await target.consoleResize(vm, cols, rows, cfg);
      return {};
    },
  },

  'query-web': {
    args: {},
    run: (_args, { target }) => {
      const info = target.queryWeb?.();
      if (info === undefined)
        throw new QmpError('GenericError', 'the web console is not enabled (start the daemon with --web)');
      return info;
    },
  },

  'web-disconnect': {
    args: { id: req('string') },
    run: (args, { target }) => {
      if (target.webDisconnect === undefined || target.queryWeb?.() === undefined) {
        throw new QmpError('GenericError', 'the web console is not enabled (start the daemon with --web)');
      }
      target.webDisconnect(args.id as string);
      return {};
    },
  },

  quit: {
    // The server calls target.quit() once this reply is on its way.
    audit: true,
    args: {},
    run: () => ({}),
  },
};

/** QMP's own argument: `enable` lists capabilities to turn on; we offer none. */
export function checkCapabilities(args: Args): void {
  checkArgs(args, { enable: opt('array') });
  for (const cap of (args.enable as unknown[] | undefined) ?? []) {
    throw new ConfigError(`Capability '${String(cap)}' not available`, 'enable', String(cap));
  }
}
