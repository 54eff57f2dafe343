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
import { KeyvalError, parseKeyval, takeList } from './keyval.js';
import { didYouMean } from './suggest.js';
// Backend options are the chardev layer's knowledge; its parser is pure (touches nothing).
import { DEFAULT_HUB_MAX_MEMBERS, KNOWN_BACKENDS, parseChardevOptions } from '../chardev/registry.js';

export type PortDriver = 'virtconsole' | 'virtserialport';
export const PORT_DRIVERS: readonly PortDriver[] = ['virtconsole', 'virtserialport'];
export const RESIZE_ORDERS: readonly ResizeOrder[] = ['rows-cols', 'cols-rows'];

export interface ChardevConfig {
  id: string;
  /** 'pty', 'socket', 'file', ..., or 'hub'. */
  backend: string;
  /** Backend options exactly as written (keyval strings), without `id`, the backend and a hub's `chardevs.N`. */
  options: Record<string, string>;
  /** Only for backend 'hub': the member chardev ids, in order (from `chardevs.0`, `chardevs.1`, ...). */
  members?: string[];
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
}

export interface ConsoleSize { cols: number; rows: number }

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
  chardevs: ChardevConfig[];
  devices: PortConfig[];
}

export interface ControlConfig { path: string; mode?: number }

export interface Config {
  logLevel: LogLevel;
  control?: ControlConfig;
  vms: VmConfig[];
}

/** A port before validation: nr and id may be left for finishVm to assign. `source` is the text it came from, for error messages. */
export interface PortDraft {
  id?: string;
  driver: PortDriver;
  chardev?: string;
  name?: string;
  nr?: number;
  source?: string;
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
  chardevs: ChardevConfig[];
  devices: PortDraft[];
}

/** QEMU's default max_ports: 31 ports = 64 queues. Linux allocates rx buffers only for ports
 *  that exist, so unused slots cost the guest nothing but their (small) vrings, and leave
 *  room for hot-plug. */
export const DEFAULT_MAX_PORTS = 31;
/** vhost-user carries a queue's index in 8 bits (SET_VRING_KICK/CALL), so 2 * (max_ports + 1)
 *  queues must fit 256: 127 ports (the device layer's limit too). */
export const MAX_MAX_PORTS = 127;
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
    throw new ConfigError(`${what} id '${id}' is invalid: it must start with a letter and contain only letters, digits, '-', '.' and '_'`, option, id);
  }
}

// ---------------------------------------------------------------------------------------
// Chardevs

/** Every backend name, for suggestions ('pyt' -> 'pty'). */
const BACKENDS: readonly string[] = KNOWN_BACKENDS;

/** Re-throw a KeyvalError as a ConfigError naming the option and the whole text. */
function keyval(text: string, impliedKey: string, option: string) {
  try {
    return parseKeyval(text, impliedKey);
  } catch (e) {
    if (e instanceof KeyvalError) throw new ConfigError(`${option} '${text}': ${e.message}`, option, text);
    throw e;
  }
}

/** `--chardev` text -> ChardevConfig (backend options checked; cross-references are finishVm's job). */
export function chardevFromKeyval(text: string, option = '--chardev'): ChardevConfig {
  const kv = keyval(text, 'backend', option);
  return chardevFromParams(kv.implied!, kv.params, option, text);
}

/** The common path of `--chardev` text, config-file objects and QMP chardev-add. `params` is consumed. */
export function chardevFromParams(backend: string, params: Map<string, string>, option = '--chardev', source?: string): ChardevConfig {
  const at = source === undefined ? '' : ` in '${source}'`;
  const id = params.get('id');
  if (id === undefined) throw new ConfigError(`${option}: chardev '${backend}' has no id${at}`, option, source ?? backend);
  checkId('chardev', id, option);
  params.delete('id');
  if (!BACKENDS.includes(backend)) {
    throw new ConfigError(`chardev '${id}': unknown backend '${backend}'${didYouMean(backend, BACKENDS)}`, option, backend);
  }
  const members = backend === 'hub' ? takeList(params, 'chardevs') : undefined;
  const options = Object.fromEntries(params);
  if (backend !== 'hub') {
    for (const key of Object.keys(options)) {
      if (key === 'chardevs' || key.startsWith('chardevs.')) throw new ConfigError(`chardev '${id}': '${key}' is only for hub chardevs`, option, source ?? key);
    }
  }
  // A hub's list is checked here with its other options (max-members); an empty list is
  // finishVm's to judge, as a run-time hub may be empty.
  if (members === undefined) parseChardevOptions(backend, id, options);
  else if (members.length > 0) parseChardevOptions(backend, id, { ...options, ...Object.fromEntries(members.map((m, i) => [`chardevs.${i}`, m])) });
  return members === undefined ? { id, backend, options } : { id, backend, options, members };
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
    else throw new ConfigError(`${label}.${key}: ${JSON.stringify(v) ?? 'undefined'} is not a string, number or boolean`, `${label}.${key}`, String(v));
  };
  for (const [k, v] of Object.entries(obj)) if (k !== skip) put(k, v);
  return params;
}

// ---------------------------------------------------------------------------------------
// Ports

const DEVICE_KEYS = ['id', 'chardev', 'name', 'nr'];

/** `--device` text -> PortDraft. */
export function portFromKeyval(text: string, option = '--device'): PortDraft {
  const kv = keyval(text, 'driver', option);
  return portFromParams(kv.implied!, kv.params, option, text);
}

export function portFromParams(driver: string, params: Map<string, string>, option = '--device', source?: string): PortDraft {
  const value = source ?? driver;
  if (!(PORT_DRIVERS as readonly string[]).includes(driver)) {
    throw new ConfigError(`${option} '${value}': unknown driver '${driver}' (expected virtconsole or virtserialport)${didYouMean(driver, PORT_DRIVERS)}`, option, value);
  }
  const draft: PortDraft = { driver: driver as PortDriver };
  if (source !== undefined) draft.source = source;
  for (const [key, v] of params) {
    switch (key) {
      case 'id': checkId('device', v, option); draft.id = v; break;
      case 'chardev': draft.chardev = v; break;
      case 'name': draft.name = v; break;
      case 'nr': draft.nr = parseUint(v, `${option} '${value}': nr`, option, value); break;
      default: throw new ConfigError(`${option} '${value}': unknown parameter '${key}'${didYouMean(key, DEVICE_KEYS)}`, option, value);
    }
  }
  return draft;
}

/** A decimal integer >= 0, or a ConfigError "`what`: 'x' is not a number". */
export function parseUint(text: string, what: string, option?: string, value?: string): number {
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) throw new ConfigError(`${what}: '${text}' is not a non-negative integer`, option, value ?? text);
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
  const fail = (message: string, option?: string, value?: string): never => { throw new ConfigError(p + message, option, value); };

  checkId('vm', draft.id);
  if (draft.socket === undefined || draft.socket === '') fail('no vhost-user socket path (--socket PATH)', '--socket', '');
  const multiport = draft.multiport ?? true;
  let maxPorts = draft.maxPorts ?? (multiport ? DEFAULT_MAX_PORTS : 1);
  if (!Number.isInteger(maxPorts) || maxPorts < 1 || maxPorts > MAX_MAX_PORTS) fail(`--max-ports: ${maxPorts} is out of range (1..${MAX_MAX_PORTS})`, '--max-ports', String(maxPorts));
  if (!multiport && maxPorts !== 1) fail(`--max-ports: ${maxPorts} conflicts with --multiport off, which has exactly one port`, '--max-ports', String(maxPorts));
  const consoleSize = draft.consoleSize ?? DEFAULT_CONSOLE_SIZE;
  checkConsoleSize(consoleSize.cols, consoleSize.rows, (m) => fail(`--console-size: ${m}`, '--console-size', `${consoleSize.cols}x${consoleSize.rows}`));
  if (draft.socketMode !== undefined) checkMode(draft.socketMode, '--socket-mode', p);

  // Chardevs: unique ids; a hub's members exist, are not hubs, and belong to no other user.
  const chardevs = new Map<string, ChardevConfig>();
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
    if (members.length === 0 && !opts.runtime) fail(`hub '${c.id}': no members (give chardevs.0=ID, chardevs.1=ID, ...)`, '--chardev', c.id);
    // QEMU caps a hub at 4 members; ours holds more (viewers attached at run time), up to its max-members.
    const max = c.options['max-members'] === undefined ? DEFAULT_HUB_MAX_MEMBERS : Number(c.options['max-members']);
    if (members.length > max) fail(`hub '${c.id}': ${members.length} members, at most ${max} (max-members)`, '--chardev', c.id);
    for (const m of members) {
      const member = chardevs.get(m);
      if (member === undefined) fail(`hub '${c.id}': member '${m}' does not exist${didYouMean(m, chardevs.keys())}`, '--chardev', m);
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
      fail(`--multiport off: exactly one port is allowed, a virtconsole at nr 0 (got ${d.length === 0 ? 'none' : d.map(describePort).join(', ')})`, '--device', d[0]?.source ?? '');
    }
  }
  const usedNr = new Map<number, PortDraft>();
  for (const d of draft.devices) {
    const where = d.source ?? describePort(d);
    if (d.nr === undefined) continue;
    if (!Number.isInteger(d.nr) || d.nr < 0 || d.nr >= maxPorts) fail(`--device '${where}': nr ${d.nr} is out of range (0..${maxPorts - 1}; see --max-ports)`, '--device', where);
    if (d.nr === 0 && d.driver !== 'virtconsole') fail(`--device '${where}': nr 0 is reserved for a virtconsole (as in QEMU)`, '--device', where);
    if (usedNr.has(d.nr)) fail(`--device '${where}': nr ${d.nr} is already used by '${usedNr.get(d.nr)!.source ?? describePort(usedNr.get(d.nr)!)}'`, '--device', where);
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
        if (nr >= maxPorts) fail(`--device '${d.source ?? describePort(d)}': no free port number (max-ports is ${maxPorts})`, '--device', d.source ?? '');
      }
      usedNr.set(nr, d);
    }
    nrs.push(nr);
  }

  const devices: PortConfig[] = [];
  const names = new Map<string, string>();
  const explicitIds = new Set(draft.devices.flatMap((d) => (d.id === undefined ? [] : [d.id])));
  const ids = new Set<string>();
  draft.devices.forEach((d, i) => {
    const nr = nrs[i]!;
    const where = d.source ?? describePort(d);
    let id = d.id;
    if (id === undefined) {
      id = d.name !== undefined && ID.test(d.name) && !explicitIds.has(d.name) && !ids.has(d.name) ? d.name : `port${nr}`;
    }
    if (ids.has(id)) fail(`--device '${where}': device id '${id}' is used twice${d.id === undefined ? ' (give this port an id=)' : ''}`, '--device', where);
    ids.add(id);
    if (d.name !== undefined) {
      checkPortName(d.name, (m) => fail(`--device '${where}': ${m}`, '--device', where));
      const other = names.get(d.name);
      if (other !== undefined) fail(`--device '${where}': name '${d.name}' is already used by port '${other}'`, '--device', where);
      names.set(d.name, id);
    }
    if (d.chardev !== undefined) {
      if (!chardevs.has(d.chardev)) fail(`port '${id}': chardev '${d.chardev}' does not exist${didYouMean(d.chardev, chardevs.keys())}`, '--device', where);
      const user = usedBy.get(d.chardev);
      if (user !== undefined) fail(`port '${id}': chardev '${d.chardev}' is already used by ${user}`, '--device', where);
      usedBy.set(d.chardev, `port '${id}'`);
    }
    const port: PortConfig = { id, driver: d.driver, nr };
    if (d.chardev !== undefined) port.chardev = d.chardev;
    if (d.name !== undefined) port.name = d.name;
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
  if (!RESIZE_ORDERS.includes(vm.resizeOrder)) fail(`--resize-order: '${vm.resizeOrder}' is not rows-cols or cols-rows`, '--resize-order', vm.resizeOrder);
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
    if (other !== undefined) throw new ConfigError(`vm '${vm.id}': socket '${vm.socket}' is already used by vm '${other}'`, '--socket', vm.socket);
    sockets.set(vm.socket, vm.id);
  }
  if (control !== undefined) {
    if (control.path === '') throw new ConfigError('--control: empty path', '--control', '');
    if (sockets.has(control.path)) throw new ConfigError(`--control: '${control.path}' is also the socket of vm '${sockets.get(control.path)}'`, '--control', control.path);
    if (control.mode !== undefined) checkMode(control.mode, '--control-mode', '');
  }
  return control === undefined ? { logLevel, vms } : { logLevel, control: { ...control }, vms };
}

export function checkConsoleSize(cols: number, rows: number, fail: (message: string) => never): void {
  for (const [what, v] of [['cols', cols], ['rows', rows]] as const) {
    if (!Number.isInteger(v) || v < 1 || v > 65535) fail(`${what} ${v} is out of range (1..65535)`);
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
  if (/[\x00-\x1f\x7f/]/.test(name)) fail(`name '${JSON.stringify(name).slice(1, -1)}' contains a control character or '/'`);
}

function describePort(d: PortDraft): string {
  return [d.driver, ...(d.chardev === undefined ? [] : [`chardev=${d.chardev}`]), ...(d.name === undefined ? [] : [`name=${d.name}`]), ...(d.nr === undefined ? [] : [`nr=${d.nr}`])].join(',');
}

function copyChardev(c: ChardevConfig): ChardevConfig {
  return c.members === undefined ? { id: c.id, backend: c.backend, options: { ...c.options } } : { id: c.id, backend: c.backend, options: { ...c.options }, members: [...c.members] };
}
