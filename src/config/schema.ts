// The validated configuration: one Config for the daemon, one VmConfig per vhost-user device.
//
// Everything that reaches the layers below has passed through here, at start-up
// (load.ts builds drafts from argv / a file and calls finishVm + finishConfig) and at run
// time (the control API builds a candidate VmConfig with one change applied and calls
// finishVm on it), so a rule is written once and a hot-plugged port obeys exactly what a
// configured one does.

import { ConfigError } from '../errors.js';
import type { LogLevel } from '../log.js';
import type { ResizeOrder } from '../device/types.js';
import { KeyvalError, parseBool, parseKeyval, takeList } from './keyval.js';
import { didYouMean } from './suggest.js';
import type { WebConfig } from '../web/config.js';
import {
  CONSOLE_SIZE_MAX,
  CONSOLE_SIZE_MIN,
  DEFAULT_HUB_MAX_MEMBERS,
  DEFAULT_MAX_PORTS,
  MAX_PORTS,
} from '../limits.js';
// Backend options are the chardev layer's knowledge; its parser is pure (touches nothing).
import {
  BACKEND_KEYS,
  COMMON_KEYS,
  KNOWN_BACKENDS,
  parseChardevOptions,
  type ChardevConfig,
} from '../chardev/registry.js';

export type PortDriver = 'virtconsole' | 'virtserialport';
export const PORT_DRIVERS: readonly PortDriver[] = ['virtconsole', 'virtserialport'];
export const RESIZE_ORDERS: readonly ResizeOrder[] = ['rows-cols', 'cols-rows'];

/**
 * A chardev as configured: its typed, validated form (`config`), made once by the backend's
 * parser (parseChardevOptions) when it was read, which the VM, the daemon's start-up checks
 * and the banner build from; and beside it the options exactly as written, for what shows
 * them (messages, the banner's sizes). Nothing parses `options` again after validation.
 */
export interface ChardevSpec {
  id: string;
  /** 'pty', 'socket', 'file', ..., or 'hub'. */
  backend: string;
  /** Backend options exactly as written (keyval strings), without `id`, the backend and a hub's `chardevs.N`. */
  options: Record<string, string>;
  /** Only for backend 'hub': the member chardev ids, in order (from `chardevs.0`, `chardevs.1`, ...). */
  members?: string[];
  /** The typed options (chardev/options.ts). A hub's `chardevs` is `members` as finishVm last checked it. */
  config: ChardevConfig;
}

export interface PortConfig {
  /** Device id (QMP `device_del`, VSERPORT_CHANGE). Default: the name if it is a valid id, else `port<nr>`. */
  id: string;
  driver: PortDriver;
  /** A chardev or hub id; absent: a port with no host backend (host side closed). */
  chardev?: string;
  /** Sent to the guest as PORT_NAME (/dev/virtio-ports/NAME). */
  name?: string;
  nr: number;
  /** QEMU's `bus=` as written (e.g. virtio-serial0.0): the VM's one virtio-serial bus; see checkBus. */
  bus?: string;
}

export interface ConsoleSize {
  cols: number;
  rows: number;
}

export interface VmConfig {
  id: string;
  /** vhost-user socket path (the daemon listens, QEMU connects). */
  socket: string;
  socketMode?: number;
  /** max_nr_ports; queues = 2 * (maxPorts + 1). 1 when multiport is off. */
  maxPorts: number;
  multiport: boolean;
  consoleSize: ConsoleSize;
  resizeOrder: ResizeOrder;
  chardevs: ChardevSpec[];
  devices: PortConfig[];
}

export interface ControlConfig {
  path: string;
  mode?: number;
}

export interface Config {
  logLevel: LogLevel;
  /** Daemon log lines: 'pretty' or 'json'; absent: pretty at a terminal, json otherwise. */
  logFormat?: 'pretty' | 'json';
  /** --metrics: serve Prometheus metrics over HTTP here. */
  metrics?: { host: string; port: number };
  control?: ControlConfig;
  /** --web: the web console; absent: none. */
  web?: WebConfig;
  vms: VmConfig[];
}

/** A port before validation: nr and id may be left for finishVm to assign. `source` is the text it came from, for error messages. */
export interface PortDraft {
  id?: string;
  driver: PortDriver;
  chardev?: string;
  name?: string;
  nr?: number;
  bus?: string;
  source?: string;
  /** How messages name this port (`device 'p1'` for QMP's device_add); default `--device 'SOURCE'`. */
  label?: string;
}

/** A VM before validation: unset scalars take their defaults. */
export interface VmDraft {
  id: string;
  socket?: string;
  socketMode?: number;
  maxPorts?: number;
  multiport?: boolean;
  consoleSize?: ConsoleSize;
  resizeOrder?: ResizeOrder;
  chardevs: ChardevSpec[];
  devices: PortDraft[];
}

export const DEFAULT_CONSOLE_SIZE: ConsoleSize = { cols: 80, rows: 24 };
/** The virtio spec's order, and what the kernels of current stable series read (Debian 13's
 *  6.12 among them: the e2e guest's `stty size` is the judge). Older kernels need rows-cols. */
export const DEFAULT_RESIZE_ORDER: ResizeOrder = 'cols-rows';
export const DEFAULT_VM_ID = 'vm0';
/** Longest port name we send as PORT_NAME. */
export const MAX_PORT_NAME = 255;

/** QEMU's id rule (id_wellformed): a letter, then letters, digits, '-', '.', '_'. */
const ID = /^[A-Za-z][A-Za-z0-9._-]{0,127}$/;

export function checkId(what: string, id: string, option?: string): void {
  if (!ID.test(id)) {
    throw new ConfigError(
      `${what} id '${id}' is invalid: it must start with a letter and contain only letters, digits, '-', '.' and '_'`,
      option,
      id,
    );
  }
}

// ---------------------------------------------------------------------------------------
// Chardevs

/** Every backend name, for suggestions ('pyt' -> 'pty'). */
const BACKENDS: readonly string[] = KNOWN_BACKENDS;

/** QEMU's own name for one of ours (chardev-memory is a subclass of chardev-ringbuf, "bug-compatibility"). */
const BACKEND_ALIASES: Record<string, string> = { memory: 'ringbuf' };

/**
 * QEMU 10.x chardev backends (the user-creatable chardev-* types) this daemon does not
 * implement, with a hint where one of ours does the job. A name here is "not supported", not a
 * typo: no suggestion. (QEMU removed the `tty` and `parport` aliases in 8.0.)
 */
const QEMU_ONLY_BACKENDS: Record<string, string> = {
  vc: '; for a terminal use pty, or a socket and a client such as socat',
  serial: '',
  parallel: '',
  udp: '; use socket',
  spicevmc: '',
  spiceport: '',
  'qemu-vdagent': '',
  dbus: '',
  msmouse: '',
  wctablet: '',
  braille: '',
  testdev: '',
  console: '',
  mux: '; to share a port between backends use a hub',
};

/** Our options, every backend's, for flags and suggestions. */
const OUR_CHARDEV_OPTIONS: readonly string[] = [
  ...new Set(['id', ...COMMON_KEYS, ...Object.values(BACKEND_KEYS).flat()]),
];
/** Which of them are booleans (a flag may name them: `server`, `nowait`). */
const OUR_BOOLEANS = new Set([
  'server',
  'wait',
  'nodelay',
  'telnet',
  'append',
  'signal',
  'logappend',
  'timestamp',
  'input',
]);

/**
 * Options of QEMU's -chardev (chardev/char.c qemu_chardev_opts) this daemon does not implement.
 * `bool`: a QEMU boolean (a flag may name it). `noop`: the value that is QEMU's default and
 * changes nothing, accepted (and dropped) so that a copied line keeps working.
 */
const QEMU_ONLY_OPTIONS: Record<string, { bool?: true; noop?: string; hint?: string }> = {
  mux: { bool: true, noop: 'off' },
  websocket: { bool: true, noop: 'off' },
  tn3270: { bool: true, noop: 'off' },
  abstract: { bool: true, noop: 'off' },
  tight: { bool: true },
  ipv4: { bool: true, hint: '; host= chooses the address' },
  ipv6: { bool: true, hint: '; host= chooses the address' },
  mouse: { bool: true },
  clipboard: { bool: true },
  'tls-creds': { hint: '; put a TLS proxy in front of a unix or localhost socket' },
  'tls-authz': {},
  fd: { hint: '; give path= or host=,port=' },
  localaddr: {},
  localport: {},
  to: {},
  width: {},
  height: {},
  cols: {},
  rows: {},
  name: {},
  debug: {},
  chardev: {},
};

/** Re-throw a KeyvalError as a ConfigError naming the option and the whole text. */
function keyval(text: string, impliedKey: string, option: string) {
  try {
    return parseKeyval(text, impliedKey);
  } catch (e) {
    if (e instanceof KeyvalError) throw new ConfigError(`${option} '${text}': ${e.message}`, option, text);
    throw e;
  }
}

/** Receives a warning (a deprecated QEMU spelling that was accepted). */
export type Warn = (message: string) => void;

/**
 * `--chardev` text -> ChardevSpec (backend options checked; cross-references are finishVm's
 * job). QEMU's short-form booleans (`server`, `nowait`) are accepted as QEMU 10.x accepts them;
 * each one gives a warning through `warn`, as QEMU prints one.
 */
export function chardevFromKeyval(text: string, option = '--chardev', warn?: Warn): ChardevSpec {
  const kv = keyval(text, 'backend', option);
  return chardevFromParams(kv.implied!, kv.params, option, text, kv.flags, warn);
}

/** The message for an option QEMU has and we do not. */
function notSupported(id: string, key: string, value: string | undefined): string {
  if (key === 'mux') {
    return `chardev '${id}': option 'mux' is not supported by vhost-console; to share a port between several backends, put them in a hub: --chardev hub,id=hub0,chardevs.0=${id},chardevs.1=OTHER --device virtconsole,chardev=hub0`;
  }
  return `chardev '${id}': option '${key}'${value === undefined ? '' : ` (${key}=${value})`} is not supported by vhost-console${QEMU_ONLY_OPTIONS[key]?.hint ?? ''}`;
}

/**
 * Resolve flags (elements without '=') as QEMU's QemuOpts does: `server` = server=on, `nowait` =
 * wait=off (`nodelay` is itself an option: nodelay=on). QEMU accepts this for any option and
 * warns; we accept it for booleans only, and refuse the rest with advice that works.
 */
function resolveChardevFlags(
  id: string,
  params: Map<string, string>,
  flags: readonly string[],
  where: string,
  warn?: Warn,
): void {
  const isBool = (k: string) => OUR_BOOLEANS.has(k) || k === 'delay' || QEMU_ONLY_OPTIONS[k]?.bool === true;
  for (const flag of flags) {
    let key: string | undefined;
    let value = 'on';
    if (isBool(flag)) key = flag;
    else if (flag.startsWith('no') && isBool(flag.slice(2))) {
      key = flag.slice(2);
      value = 'off';
    }
    if (key === undefined) {
      const base = flag.startsWith('no') && QEMU_ONLY_OPTIONS[flag.slice(2)] !== undefined ? flag.slice(2) : flag;
      if (QEMU_ONLY_OPTIONS[base] !== undefined) throw new ConfigError(notSupported(id, base, undefined), base, flag);
      if (OUR_CHARDEV_OPTIONS.includes(flag))
        throw new ConfigError(`${where}: parameter '${flag}' has no value; write '${flag}=VALUE'`, flag, flag);
      throw new ConfigError(`${where}: unknown option '${flag}'${didYouMean(flag, OUR_CHARDEV_OPTIONS)}`, flag, flag);
    }
    const written = params.get(key);
    if (written !== undefined)
      throw new ConfigError(`${where}: '${key}' is given twice ('${flag}' and '${key}=${written}')`, key, flag);
    params.set(key, value);
    warn?.(`${where}: '${flag}' is QEMU's deprecated short form of '${key}=${value}'; write '${key}=${value}'`);
  }
}

/** The common path of `--chardev` text, config-file objects and QMP chardev-add. `params` is consumed. */
export function chardevFromParams(
  written: string,
  params: Map<string, string>,
  option = '--chardev',
  source?: string,
  flags: readonly string[] = [],
  warn?: Warn,
): ChardevSpec {
  const at = source === undefined ? '' : ` in '${source}'`;
  const id = params.get('id');
  if (id === undefined)
    throw new ConfigError(`${option}: chardev '${written}' has no id${at}`, option, source ?? written);
  checkId('chardev', id, option);
  params.delete('id');
  const backend = BACKEND_ALIASES[written] ?? written;
  if (!BACKENDS.includes(backend)) {
    const supported = `supported: ${BACKENDS.join(', ')}`;
    if (QEMU_ONLY_BACKENDS[backend] !== undefined) {
      throw new ConfigError(
        `chardev '${id}': backend '${backend}' is not supported by vhost-console (${supported})${QEMU_ONLY_BACKENDS[backend]}`,
        option,
        backend,
      );
    }
    throw new ConfigError(
      `chardev '${id}': unknown backend '${backend}'${didYouMean(backend, BACKENDS)} (${supported})`,
      option,
      backend,
    );
  }
  resolveChardevFlags(id, params, flags, source === undefined ? option : `${option} '${source}'`, warn);
  // QEMU's `delay` is the inverse of `nodelay` (QEMU: "'delay' and 'nodelay' are mutually exclusive").
  const delay = params.get('delay');
  if (delay !== undefined) {
    const on = parseBool(delay);
    if (on === undefined)
      throw new ConfigError(`chardev '${id}': option 'delay' must be on or off, not '${delay}'`, 'delay', delay);
    if (params.has('nodelay'))
      throw new ConfigError(`chardev '${id}': options 'delay' and 'nodelay' exclude each other`, 'delay', delay);
    params.delete('delay');
    params.set('nodelay', on ? 'off' : 'on');
  }
  for (const [key, value] of [...params]) {
    const q = QEMU_ONLY_OPTIONS[key];
    if (q === undefined) continue;
    if (q.noop !== undefined && parseBool(value) === parseBool(q.noop)) {
      params.delete(key);
      continue;
    }
    throw new ConfigError(notSupported(id, key, value), key, value);
  }
  const members = backend === 'hub' ? takeList(params, 'chardevs') : undefined;
  const options = Object.fromEntries(params);
  if (backend !== 'hub') {
    for (const key of Object.keys(options)) {
      if (key === 'chardevs' || key.startsWith('chardevs.'))
        throw new ConfigError(`chardev '${id}': '${key}' is only for hub chardevs`, option, source ?? key);
    }
  }
  // The one conversion to the typed form, by the backend's own parser (pure). A hub's list is
  // checked here with its other options (max-members); an empty list is finishVm's to judge,
  // as a run-time hub may be empty.
  const config = parseChardevOptions(backend, id, options, members);
  return members === undefined ? { id, backend, options, config } : { id, backend, options, members, config };
}

/** The hub hub-attach makes for a port that has none: no options, these members. */
export function hubSpec(id: string, members: string[]): ChardevSpec {
  return { id, backend: 'hub', options: {}, members, config: parseChardevOptions('hub', id, {}, members) };
}

/**
 * An object form (config-file table, QMP arguments) -> keyval params, so that it is checked by
 * exactly the code that checks the text form: booleans become on/off, numbers decimal text,
 * lists `key.N`, nested tables dotted keys. `skip` is the key holding the backend/driver.
 */
export function flattenParams(obj: Record<string, unknown>, label: string, skip?: string): Map<string, string> {
  const params = new Map<string, string>();
  const put = (key: string, v: unknown): void => {
    if (typeof v === 'string') params.set(key, v);
    else if (typeof v === 'number' && Number.isFinite(v)) params.set(key, String(v));
    else if (typeof v === 'boolean') params.set(key, v ? 'on' : 'off');
    else if (Array.isArray(v)) v.forEach((x, i) => put(`${key}.${i}`, x));
    else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) put(`${key}.${k}`, x);
    else
      throw new ConfigError(
        `${label}.${key}: ${JSON.stringify(v) ?? 'undefined'} is not a string, number or boolean`,
        `${label}.${key}`,
        String(v),
      );
  };
  for (const [k, v] of Object.entries(obj)) if (k !== skip) put(k, v);
  return params;
}

// ---------------------------------------------------------------------------------------
// Ports

const DEVICE_KEYS = ['id', 'chardev', 'name', 'nr', 'bus'];

/** `--device` text -> PortDraft. */
export function portFromKeyval(text: string, option = '--device'): PortDraft {
  const kv = keyval(text, 'driver', option);
  return portFromParams(kv.implied!, kv.params, option, text, kv.flags);
}

/**
 * QEMU bus types a port cannot go on, by the name QEMU gives an id-less bus of that type
 * (hw/core/bus.c: lower-case type name + '.N'): `bus=pci.0` names a PCI bus, not a port's.
 */
const OTHER_BUS_TYPES: Record<string, string> = {
  pci: 'PCI',
  pcie: 'PCI Express',
  isa: 'ISA',
  ide: 'IDE',
  scsi: 'SCSI',
  'usb-bus': 'USB',
  'virtio-pci-bus': 'virtio-pci',
  'virtio-mmio-bus': 'virtio-mmio',
  'virtio-ccw-bus': 'virtio-ccw',
  'main-system-bus': 'system',
  'i2c-bus': 'I2C',
  'hda-bus': 'HDA',
};

/**
 * `bus=` on a port, as QEMU names a virtio-serial bus (hw/char/virtio-serial-bus.c, hw/core/bus.c):
 * a controller with `id=X` has the one bus `X.0` (virtio-serial-pci names it so "for command
 * line compatibility"); an id-less controller's bus is `virtio-serial-bus.N`. The daemon serves
 * one virtio-serial device per VM, so any such name is accepted as that device's bus; finishVm
 * then requires every port of the VM to name the same one. Returns an error message or undefined.
 */
export function checkBus(bus: string, driver: string): string | undefined {
  const example = "e.g. 'virtio-serial0.0' for a controller with id=virtio-serial0";
  if (bus.startsWith('/')) return `bus '${bus}': bus paths are not supported; give the bus name (${example})`;
  const m = /^([A-Za-z][A-Za-z0-9._-]*)\.(0|[1-9]\d*)$/.exec(bus);
  if (m === null) {
    if (ID.test(bus))
      return `bus '${bus}' is not a bus name: the bus of a virtio-serial controller with id=${bus} is '${bus}.0'`;
    return `bus '${bus}' is not a bus name (${example})`;
  }
  const [, owner, index] = m as unknown as [string, string, string];
  const other = OTHER_BUS_TYPES[owner];
  if (other !== undefined)
    return `bus '${bus}' is a ${other} bus: a ${driver} goes on a virtio-serial bus (${example})`;
  if (owner !== 'virtio-serial-bus' && index !== '0')
    return `bus '${bus}' does not exist: a virtio-serial controller has one bus, '${owner}.0'`;
  return undefined;
}

export function portFromParams(
  driver: string,
  params: Map<string, string>,
  option = '--device',
  source?: string,
  flags: readonly string[] = [],
): PortDraft {
  const at = source === undefined ? `${option}: ` : `${option} '${source}': `;
  const value = source ?? driver;
  if (!(PORT_DRIVERS as readonly string[]).includes(driver)) {
    throw new ConfigError(
      `${at}unknown driver '${driver}' (expected virtconsole or virtserialport)${didYouMean(driver, PORT_DRIVERS)}`,
      option,
      value,
    );
  }
  // QEMU would read a flag as a short-form boolean; a port has no boolean properties.
  for (const flag of flags) {
    if (DEVICE_KEYS.includes(flag))
      throw new ConfigError(`${at}parameter '${flag}' has no value; write '${flag}=VALUE'`, option, value);
    throw new ConfigError(`${at}unknown parameter '${flag}'${didYouMean(flag, DEVICE_KEYS)}`, option, value);
  }
  const draft: PortDraft = { driver: driver as PortDriver };
  if (source !== undefined) draft.source = source;
  for (const [key, v] of params) {
    switch (key) {
      case 'id':
        checkId('device', v, option);
        draft.id = v;
        break;
      case 'chardev':
        draft.chardev = v;
        break;
      case 'name':
        draft.name = v;
        break;
      case 'nr':
        draft.nr = parseUint(v, `${at}nr`, option, value);
        break;
      case 'bus': {
        const bad = checkBus(v, driver);
        if (bad !== undefined) throw new ConfigError(`${at}${bad}`, option, value);
        draft.bus = v;
        break;
      }
      default:
        throw new ConfigError(`${at}unknown parameter '${key}'${didYouMean(key, DEVICE_KEYS)}`, option, value);
    }
  }
  return draft;
}

/** A decimal integer >= 0, or a ConfigError "`what`: 'x' is not a number". */
export function parseUint(text: string, what: string, option?: string, value?: string): number {
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text)))
    throw new ConfigError(`${what}: '${text}' is not a non-negative integer`, option, value ?? text);
  return Number(text);
}

// ---------------------------------------------------------------------------------------
// Whole-VM rules

export interface FinishOptions {
  /** Prefix for messages (`vm 'vm1': `) when the daemon has several VMs. */
  prefix?: string;
  /** Run-time changes may leave a hub empty (its last member detached); a configuration may not. */
  runtime?: boolean;
}

/** Apply defaults and every cross-reference rule; assign port numbers and ids. Throws ConfigError. */
export function finishVm(draft: VmDraft, opts: FinishOptions = {}): VmConfig {
  const p = opts.prefix ?? '';
  const fail = (message: string, option?: string, value?: string): never => {
    throw new ConfigError(p + message, option, value);
  };

  checkId('vm', draft.id);
  if (draft.socket === undefined || draft.socket === '')
    fail('no vhost-user socket path (--socket PATH)', '--socket', '');
  const multiport = draft.multiport ?? true;
  const maxPorts = draft.maxPorts ?? (multiport ? DEFAULT_MAX_PORTS : 1);
  if (!Number.isInteger(maxPorts) || maxPorts < 1 || maxPorts > MAX_PORTS)
    fail(`--max-ports: ${maxPorts} is out of range (1..${MAX_PORTS})`, '--max-ports', String(maxPorts));
  if (!multiport && maxPorts !== 1)
    fail(
      `--max-ports: ${maxPorts} conflicts with --multiport off, which has exactly one port`,
      '--max-ports',
      String(maxPorts),
    );
  const consoleSize = draft.consoleSize ?? DEFAULT_CONSOLE_SIZE;
  checkConsoleSize(consoleSize.cols, consoleSize.rows, (m) =>
    fail(`--console-size: ${m}`, '--console-size', `${consoleSize.cols}x${consoleSize.rows}`),
  );
  if (draft.socketMode !== undefined) checkMode(draft.socketMode, '--socket-mode', p);

  // Chardevs: unique ids; a hub's members exist, are not hubs, and belong to no other user.
  const chardevs = new Map<string, ChardevSpec>();
  for (const c of draft.chardevs) {
    if (chardevs.has(c.id)) fail(`chardev id '${c.id}' is used twice`, '--chardev', c.id);
    chardevs.set(c.id, c);
  }
  /** chardev id -> who uses it ("hub 'hub0'", "port 'console'"). */
  const usedBy = new Map<string, string>();
  for (const c of draft.chardevs) {
    if (c.backend !== 'hub') {
      if (c.members !== undefined) fail(`chardev '${c.id}': only a hub has members`, '--chardev', c.id);
      continue;
    }
    const members = c.members ?? [];
    if (members.length === 0 && !opts.runtime)
      fail(`hub '${c.id}': no members (give chardevs.0=ID, chardevs.1=ID, ...)`, '--chardev', c.id);
    // QEMU caps a hub at 4 members; ours holds more (viewers attached at run time), up to its max-members.
    const max = c.config.backend === 'hub' ? c.config.maxMembers : DEFAULT_HUB_MAX_MEMBERS;
    if (members.length > max)
      fail(`hub '${c.id}': ${members.length} members, at most ${max} (max-members)`, '--chardev', c.id);
    for (const m of members) {
      const member = chardevs.get(m);
      if (member === undefined)
        fail(`hub '${c.id}': member '${m}' does not exist${didYouMean(m, chardevs.keys())}`, '--chardev', m);
      if (member!.backend === 'hub') fail(`hub '${c.id}': member '${m}' is a hub; hubs do not nest`, '--chardev', m);
      const user = usedBy.get(m);
      if (user !== undefined) fail(`hub '${c.id}': member '${m}' is already used by ${user}`, '--chardev', m);
      usedBy.set(m, `hub '${c.id}'`);
    }
  }

  // Ports: explicit numbers first, then QEMU's assignment for the rest, in order.
  if (!multiport) {
    const d = draft.devices;
    if (d.length !== 1 || d[0]!.driver !== 'virtconsole' || (d[0]!.nr ?? 0) !== 0) {
      const got =
        d.length === 0
          ? 'none'
          : d.map((x) => (x.label !== undefined || x.source === undefined ? nameOf(x) : describePort(x))).join(', ');
      fail(
        `${opts.runtime ? 'multiport is off' : '--multiport off'}: exactly one port is allowed, a virtconsole at nr 0 (got ${got})`,
        '--device',
        d[0]?.source ?? '',
      );
    }
  }
  const usedNr = new Map<number, PortDraft>();
  for (const d of draft.devices) {
    const where = d.source ?? describePort(d);
    const at = labelOf(d);
    if (d.nr === undefined) continue;
    if (!Number.isInteger(d.nr) || d.nr < 0 || d.nr >= maxPorts)
      fail(`${at}: nr ${d.nr} is out of range (0..${maxPorts - 1}: max-ports is ${maxPorts})`, '--device', where);
    if (d.nr === 0 && d.driver !== 'virtconsole')
      fail(`${at}: nr 0 is reserved for a virtconsole (as in QEMU)`, '--device', where);
    if (usedNr.has(d.nr)) fail(`${at}: nr ${d.nr} is already used by ${nameOf(usedNr.get(d.nr)!)}`, '--device', where);
    usedNr.set(d.nr, d);
  }
  const nrs: number[] = [];
  for (const d of draft.devices) {
    let nr = d.nr;
    if (nr === undefined) {
      // QEMU: a console takes 0 when free; everything else takes the lowest free number from 1.
      if (d.driver === 'virtconsole' && !usedNr.has(0)) nr = 0;
      else {
        nr = 1;
        while (usedNr.has(nr)) nr++;
        if (nr >= maxPorts)
          fail(`${labelOf(d)}: no free port number (max-ports is ${maxPorts})`, '--device', d.source ?? '');
      }
      usedNr.set(nr, d);
    }
    nrs.push(nr);
  }

  // bus=: all of a VM's ports are on its one virtio-serial device, so they name one bus.
  const onBus = draft.devices.find((d) => d.bus !== undefined);
  for (const d of draft.devices) {
    if (d.bus === undefined || d.bus === onBus!.bus) continue;
    fail(
      `${labelOf(d)}: bus '${d.bus}' is another virtio-serial controller than '${onBus!.bus}' (${nameOf(onBus!)}): vhost-console serves one virtio-serial device per VM; give the ports of another controller a VM of their own (a vm list in --config)`,
      '--device',
      d.source ?? d.bus,
    );
  }

  const devices: PortConfig[] = [];
  const names = new Map<string, string>();
  const explicitIds = new Set(draft.devices.flatMap((d) => (d.id === undefined ? [] : [d.id])));
  const ids = new Set<string>();
  draft.devices.forEach((d, i) => {
    const nr = nrs[i]!;
    const where = d.source ?? describePort(d);
    const at = labelOf(d);
    let id = d.id;
    if (id === undefined) {
      id =
        d.name !== undefined && ID.test(d.name) && !explicitIds.has(d.name) && !ids.has(d.name) ? d.name : `port${nr}`;
    }
    if (ids.has(id))
      fail(
        `${at}: device id '${id}' is used twice${d.id === undefined ? ` (give this port ${d.label === undefined ? 'an id=' : "an 'id'"})` : ''}`,
        '--device',
        where,
      );
    ids.add(id);
    if (d.name !== undefined) {
      checkPortName(d.name, (m) => fail(`${at}: ${m}`, '--device', where));
      const other = names.get(d.name);
      if (other !== undefined) fail(`${at}: name '${d.name}' is already used by port '${other}'`, '--device', where);
      names.set(d.name, id);
    }
    if (d.chardev !== undefined) {
      if (!chardevs.has(d.chardev))
        fail(
          `port '${id}': chardev '${d.chardev}' does not exist${didYouMean(d.chardev, chardevs.keys())}`,
          '--device',
          where,
        );
      const user = usedBy.get(d.chardev);
      if (user !== undefined)
        fail(`port '${id}': chardev '${d.chardev}' is already used by ${user}`, '--device', where);
      usedBy.set(d.chardev, `port '${id}'`);
    }
    const port: PortConfig = { id, driver: d.driver, nr };
    if (d.chardev !== undefined) port.chardev = d.chardev;
    if (d.name !== undefined) port.name = d.name;
    if (d.bus !== undefined) port.bus = d.bus;
    devices.push(port);
  });

  const vm: VmConfig = {
    id: draft.id,
    socket: draft.socket!,
    maxPorts,
    multiport,
    consoleSize: { cols: consoleSize.cols, rows: consoleSize.rows },
    resizeOrder: draft.resizeOrder ?? DEFAULT_RESIZE_ORDER,
    chardevs: draft.chardevs.map(copyChardev),
    devices,
  };
  if (draft.socketMode !== undefined) vm.socketMode = draft.socketMode;
  if (!RESIZE_ORDERS.includes(vm.resizeOrder))
    fail(`--resize-order: '${vm.resizeOrder}' is not rows-cols or cols-rows`, '--resize-order', vm.resizeOrder);
  return vm;
}

/** Rules across VMs: unique ids and sockets. The VMs are already finished. */
export function finishConfig(logLevel: LogLevel, vms: VmConfig[], control?: ControlConfig): Config {
  const ids = new Set<string>();
  const sockets = new Map<string, string>();
  for (const vm of vms) {
    if (ids.has(vm.id)) throw new ConfigError(`vm id '${vm.id}' is used twice`, 'vm', vm.id);
    ids.add(vm.id);
    const other = sockets.get(vm.socket);
    if (other !== undefined)
      throw new ConfigError(
        `vm '${vm.id}': socket '${vm.socket}' is already used by vm '${other}'`,
        '--socket',
        vm.socket,
      );
    sockets.set(vm.socket, vm.id);
  }
  if (control !== undefined) {
    if (control.path === '') throw new ConfigError('--control: empty path', '--control', '');
    if (sockets.has(control.path))
      throw new ConfigError(
        `--control: '${control.path}' is also the socket of vm '${sockets.get(control.path)}'`,
        '--control',
        control.path,
      );
    if (control.mode !== undefined) checkMode(control.mode, '--control-mode', '');
  }
  return control === undefined ? { logLevel, vms } : { logLevel, control: { ...control }, vms };
}

export function checkConsoleSize(cols: number, rows: number, fail: (message: string) => never): void {
  for (const [what, v] of [
    ['cols', cols],
    ['rows', rows],
  ] as const) {
    if (!Number.isInteger(v) || v < CONSOLE_SIZE_MIN || v > CONSOLE_SIZE_MAX)
      fail(`${what} ${v} is out of range (${CONSOLE_SIZE_MIN}..${CONSOLE_SIZE_MAX})`);
  }
}

function checkMode(mode: number, option: string, prefix: string): void {
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) {
    throw new ConfigError(`${prefix}${option}: ${mode} is not a permission mode (0..0777)`, option, String(mode));
  }
}

function checkPortName(name: string, fail: (message: string) => never): void {
  // The guest shows the name in sysfs and udev makes /dev/virtio-ports/NAME from it.
  if (name === '') fail('empty name');
  if (Buffer.byteLength(name) > MAX_PORT_NAME) fail(`name is longer than ${MAX_PORT_NAME} bytes`);
  // eslint-disable-next-line no-control-regex -- control characters are what this rejects
  if (/[\x00-\x1f\x7f/]/.test(name))
    fail(`name '${JSON.stringify(name).slice(1, -1)}' contains a control character or '/'`);
}

/** How a message names the port at fault: `--device 'TEXT'`, or the label the caller gave (QMP). */
function labelOf(d: PortDraft): string {
  return d.label ?? `--device '${d.source ?? describePort(d)}'`;
}

/** How a message names another port: its text, else its id (a port already running), else its description. */
function nameOf(d: PortDraft): string {
  if (d.source !== undefined && d.label === undefined) return `'${d.source}'`;
  if (d.id !== undefined) return `port '${d.id}'`;
  return `'${describePort(d)}'`;
}

function describePort(d: PortDraft): string {
  return [
    d.driver,
    ...(d.chardev === undefined ? [] : [`chardev=${d.chardev}`]),
    ...(d.name === undefined ? [] : [`name=${d.name}`]),
    ...(d.nr === undefined ? [] : [`nr=${d.nr}`]),
  ].join(',');
}

/** A copy sharing nothing with its input; a hub's typed member list follows `members` (run-time attach/detach). */
function copyChardev(c: ChardevSpec): ChardevSpec {
  const config = structuredClone(c.config);
  if (c.members === undefined) return { id: c.id, backend: c.backend, options: { ...c.options }, config };
  if (config.backend === 'hub') config.chardevs = [...c.members];
  return { id: c.id, backend: c.backend, options: { ...c.options }, members: [...c.members], config };
}
