// argv (and an optional config file) -> one validated Config.
//
// The flags and the file share one vocabulary: a file key is a flag name without the
// dashes (`max-ports = 8` is `--max-ports 8`), and both go through the same value parsers,
// so the two forms cannot drift apart. How they combine:
//
//  - Top-level VM keys (socket, chardev, device, ...) from the file and from the flags make
//    one VM (id `vm0` unless `id` is given). A flag overrides the file's scalar; --chardev
//    and --device append to the file's lists.
//  - Each entry of the file's `vm` list is one more VM, with the same keys plus a required id.
//  - Global keys (control, control-mode, log-level): the flag overrides the file.
//  - With no VM anywhere and no --config, the embedded default (defaults.ts) is used.

import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { ConfigError } from '../errors.js';
import { LOG_LEVELS, type LogLevel } from '../log.js';
import { escapeValue, parseBool } from './keyval.js';
import {
  DEFAULT_VM_ID,
  RESIZE_ORDERS,
  checkConsoleSize,
  checkId,
  chardevFromKeyval,
  flattenParams,
  chardevFromParams,
  finishConfig,
  finishVm,
  portFromKeyval,
  portFromParams,
  type ChardevSpec,
  type Config,
  type ConsoleSize,
  type ControlConfig,
  type PortDraft,
  type VmConfig,
  type VmDraft,
} from './schema.js';
import { DEFAULT_ARGV } from './defaults.js';
import { didYouMean } from './suggest.js';
import { DEFAULT_SCROLLBACK, DEFAULT_WEB_HOST, finishWeb, type WebDraft } from '../web/config.js';
import { MAX_PORTS } from '../limits.js';
import { parseListenAddress, type ListenAddress } from '../ops/address.js';
import { LOG_FORMATS, type LogFormat } from '../log.js';

export type ParsedCli =
  | { action: 'help' }
  | { action: 'version' }
  /** 'print-qemu-args': print qemuArgs() for every VM and exit. `usedDefault`: no VM was configured, the embedded default is in use.
   *  `warnings`: accepted but deprecated spellings (QEMU's short-form booleans), for the caller to print. */
  /** 'check': run every start-up check and exit. `guestMemory`: --guest-memory, for the printed QEMU arguments. */
  | {
      action: 'run' | 'print-qemu-args' | 'check';
      config: Config;
      usedDefault: boolean;
      warnings: string[];
      guestMemory: string;
    };

/** Guest memory in the printed QEMU arguments when --guest-memory is not given. */
export const DEFAULT_GUEST_MEMORY = '1G';

/** One command-line option: a flag name is also the config-file key (without the dashes). */
export interface Flag {
  name: string;
  metavar?: string;
  help: string;
  scope: 'vm' | 'global' | 'action';
  repeat?: boolean;
}

/** Every option, in --help's order (src/cli/usage.ts prints them). */
export const FLAGS: readonly Flag[] = [
  {
    name: 'socket',
    metavar: 'PATH',
    scope: 'vm',
    help: 'vhost-user socket the daemon listens on (QEMU connects to it)',
  },
  { name: 'socket-mode', metavar: 'OCTAL', scope: 'vm', help: 'permission bits of the socket (default 0600)' },
  {
    name: 'id',
    metavar: 'ID',
    scope: 'vm',
    help: `the VM's id in logs and the control API (default ${DEFAULT_VM_ID})`,
  },
  {
    name: 'chardev',
    metavar: 'BACKEND,id=ID[,...]',
    scope: 'vm',
    repeat: true,
    help: 'a host backend, QEMU -chardev syntax (pty, socket, file, pipe, stdio, ringbuf, null, hub, journal)',
  },
  {
    name: 'device',
    metavar: 'DRIVER[,chardev=ID][,name=NAME][,nr=N][,id=ID]',
    scope: 'vm',
    repeat: true,
    help: 'a port: virtconsole or virtserialport, QEMU -device syntax',
  },
  {
    name: 'max-ports',
    metavar: 'N',
    scope: 'vm',
    help: `max_nr_ports, 1..${MAX_PORTS} (default 31; queues = 2*(N+1))`,
  },
  {
    name: 'multiport',
    metavar: 'on|off',
    scope: 'vm',
    help: 'offer MULTIPORT (default on); off: one console port, 2 queues',
  },
  { name: 'console-size', metavar: 'COLSxROWS', scope: 'vm', help: 'initial console size (default 80x24)' },
  {
    name: 'resize-order',
    metavar: 'rows-cols|cols-rows',
    scope: 'vm',
    help: 'field order of RESIZE messages for the guest kernel (default cols-rows)',
  },
  {
    name: 'config',
    metavar: 'FILE',
    scope: 'global',
    help: 'read a JSON or TOML configuration file (same keys as the flags)',
  },
  { name: 'control', metavar: 'PATH', scope: 'global', help: 'serve the QMP-shaped control API on this unix socket' },
  {
    name: 'control-mode',
    metavar: 'OCTAL',
    scope: 'global',
    help: 'permission bits of the control socket (default 0600)',
  },
  { name: 'log-level', metavar: 'LEVEL', scope: 'global', help: `${LOG_LEVELS.join('|')} (default info)` },
  {
    name: 'log-format',
    metavar: 'pretty|json',
    scope: 'global',
    help: 'daemon log lines: pretty (default when stderr is a terminal) or json (default otherwise)',
  },
  {
    name: 'metrics',
    metavar: '[HOST:]PORT',
    scope: 'global',
    help: 'serve Prometheus metrics at http://HOST:PORT/metrics (HOST default 127.0.0.1)',
  },
  {
    name: 'web',
    metavar: '[HOST:]PORT',
    scope: 'global',
    help: `serve the console ports in a browser (HOST default ${DEFAULT_WEB_HOST}; PORT 0: a free port)`,
  },
  {
    name: 'web-cert',
    metavar: 'FILE',
    scope: 'global',
    help: 'TLS certificate (PEM) for the web console; with --web-key',
  },
  { name: 'web-key', metavar: 'FILE', scope: 'global', help: 'TLS private key (PEM) for the web console' },
  {
    name: 'web-insecure',
    metavar: 'on|off',
    scope: 'global',
    help: 'allow plain HTTP on a non-loopback --web address (default off)',
  },
  {
    name: 'web-token-file',
    metavar: 'FILE',
    scope: 'global',
    help: 'read-write=TOKEN and read-only=TOKEN lines (default: new tokens at each start)',
  },
  {
    name: 'web-scrollback',
    metavar: 'LINES',
    scope: 'global',
    help: `lines of history a web viewer gets on attach (default ${DEFAULT_SCROLLBACK})`,
  },
  {
    name: 'web-generic',
    metavar: 'on|off',
    scope: 'global',
    help: 'serve generic (virtserialport) ports on the web too (default off: console ports only)',
  },
  {
    name: 'guest-memory',
    metavar: 'SIZE',
    scope: 'global',
    help: 'guest memory in the printed QEMU command line, e.g. 512M, 2G (default 1G)',
  },
  {
    name: 'print-qemu-args',
    scope: 'action',
    help: 'check the configuration as start-up would, print a qemu-system-x86_64 command line for each VM and exit (2 on errors)',
  },
  {
    name: 'check',
    scope: 'action',
    help: 'run every start-up check (options, files, sockets) without creating anything; exit 0, or 2 with the errors',
  },
  { name: 'help', scope: 'action', help: 'show this help and exit' },
  { name: 'version', scope: 'action', help: 'show the version and exit' },
];
const FLAG = new Map(FLAGS.map((f) => [f.name, f]));
const SHORT: Record<string, string> = { '-h': 'help', '-V': 'version' };
const VM_KEYS = FLAGS.filter((f) => f.scope === 'vm').map((f) => f.name);
const GLOBAL_KEYS = FLAGS.filter((f) => f.scope === 'global' && f.name !== 'config').map((f) => f.name);

// ---------------------------------------------------------------------------------------
// Values. Each parser takes what a flag (a string) or a file (a string, number, boolean,
// array or object) gives, and `label` to name it in errors ('--max-ports', 'vm.toml: vm[1].max-ports').

/** A VM's fields as they are read, before its id is known (the top level of a file has none). */
type Fields = Omit<VmDraft, 'id'> & { id?: string };
type Globals = {
  logLevel?: LogLevel;
  control?: string;
  controlMode?: number;
  guestMemory?: string;
  logFormat?: LogFormat;
  metrics?: ListenAddress;
  web?: Partial<WebDraft>;
};

const bad = (label: string, value: unknown, what: string): never => {
  const shown = typeof value === 'string' ? `'${value}'` : JSON.stringify(value);
  throw new ConfigError(`${label}: ${shown} ${what}`, label, typeof value === 'string' ? value : JSON.stringify(value));
};

function str(v: unknown, label: string, what = 'must be a string'): string {
  if (typeof v !== 'string') bad(label, v, what);
  return v as string;
}

function path(v: unknown, label: string): string {
  const s = str(v, label, 'is not a path');
  if (s === '') bad(label, s, 'is not a path (empty)');
  return s;
}

function mode(v: unknown, label: string): number {
  // A string is octal as in chmod; a number is taken as is (TOML's 0o660), and JSON users write a string.
  const m =
    typeof v === 'number'
      ? v
      : typeof v === 'string' && /^(0o?)?[0-7]{1,4}$/.test(v)
        ? parseInt(v.replace(/^0o/, ''), 8)
        : NaN;
  if (!Number.isInteger(m) || m < 0 || m > 0o777) bad(label, v, 'is not an octal permission mode (e.g. 0660)');
  return m;
}

function uint(v: unknown, label: string): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < 0) bad(label, v, 'is not a non-negative integer');
  return n;
}

function bool(v: unknown, label: string): boolean {
  const b = typeof v === 'boolean' ? v : typeof v === 'string' ? parseBool(v) : undefined;
  if (b === undefined) bad(label, v, 'is not on or off');
  return b!;
}

function oneOf<T extends string>(v: unknown, label: string, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    bad(label, v, `is not one of ${allowed.join(', ')}${typeof v === 'string' ? didYouMean(v, allowed) : ''}`);
  }
  return v as T;
}

function consoleSize(v: unknown, label: string): ConsoleSize {
  const m = typeof v === 'string' ? /^(\d{1,6})[xX](\d{1,6})$/.exec(v) : null;
  if (!m) return bad(label, v, 'is not COLSxROWS (e.g. 80x24)');
  const size = { cols: Number(m[1]), rows: Number(m[2]) };
  checkConsoleSize(size.cols, size.rows, (what) => bad(label, v, `is out of range: ${what}`));
  return size;
}

/** Warnings of the parseArgs call under way (parsing is synchronous). */
let warnings: string[] = [];

function chardev(v: unknown, label: string): ChardevSpec {
  if (typeof v === 'string') return chardevFromKeyval(v, label, (m) => warnings.push(m));
  if (!isObject(v))
    return bad(label, v, 'is not a chardev (a string BACKEND,id=ID,... or a table with backend and id)');
  const backend = str(v.backend, `${label}.backend`, 'must be a string (pty, socket, file, ...)');
  return chardevFromParams(backend, flattenParams(v, label, 'backend'), label, formatObject(backend, v));
}

function device(v: unknown, label: string): PortDraft {
  if (typeof v === 'string') return portFromKeyval(v, label);
  if (!isObject(v)) return bad(label, v, 'is not a device (a string DRIVER,chardev=ID,... or a table with driver)');
  const driver = str(v.driver, `${label}.driver`, 'must be virtconsole or virtserialport');
  return portFromParams(driver, flattenParams(v, label, 'driver'), label, formatObject(driver, v));
}

/** The keyval text equivalent to an object form, to quote in error messages. */
function formatObject(head: string, obj: Record<string, unknown>): string {
  const parts = [head];
  for (const [k, v] of Object.entries(obj)) {
    if (k === 'backend' || k === 'driver') continue;
    parts.push(
      `${k}=${escapeValue(typeof v === 'boolean' ? (v ? 'on' : 'off') : Array.isArray(v) ? v.join('+') : String(v))}`,
    );
  }
  return parts.join(',');
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Store one VM key into `f`. `label` names the option or file key for errors. Lists append. */
function setVmKey(f: Fields, key: string, v: unknown, label: string): void {
  switch (key) {
    case 'id': {
      const id = str(v, label);
      checkId('vm', id, label);
      f.id = id;
      break;
    }
    case 'socket':
      f.socket = path(v, label);
      break;
    case 'socket-mode':
      f.socketMode = mode(v, label);
      break;
    case 'max-ports': {
      const n = uint(v, label);
      if (n < 1 || n > MAX_PORTS) bad(label, v, `is out of range (1..${MAX_PORTS})`);
      f.maxPorts = n;
      break;
    }
    case 'multiport':
      f.multiport = bool(v, label);
      break;
    case 'console-size':
      f.consoleSize = consoleSize(v, label);
      break;
    case 'resize-order':
      f.resizeOrder = oneOf(v, label, RESIZE_ORDERS);
      break;
    case 'chardev':
      for (const [x, l] of listOf(v, label)) f.chardevs.push(chardev(x, l));
      break;
    case 'device':
      for (const [x, l] of listOf(v, label)) f.devices.push(device(x, l));
      break;
    default:
      throw new Error(`internal: unhandled VM key ${key}`);
  }
}

/** A flag gives one value per occurrence; a file may give one value or a list. */
function listOf(v: unknown, label: string): [unknown, string][] {
  return Array.isArray(v) ? v.map((x, i) => [x, `${label}[${i}]`]) : [[v, label]];
}

function setGlobalKey(g: Globals, key: string, v: unknown, label: string): void {
  switch (key) {
    case 'log-level':
      g.logLevel = oneOf(v, label, LOG_LEVELS);
      break;
    case 'control':
      // The file may give { path, mode } as one table.
      if (isObject(v)) {
        for (const k of Object.keys(v))
          if (k !== 'path' && k !== 'mode')
            bad(`${label}.${k}`, k, `is not a control key (path, mode)${didYouMean(k, ['path', 'mode'])}`);
        g.control = path(v.path, `${label}.path`);
        if (v.mode !== undefined) g.controlMode = mode(v.mode, `${label}.mode`);
      } else g.control = path(v, label);
      break;
    case 'control-mode':
      g.controlMode = mode(v, label);
      break;
    case 'log-format':
      g.logFormat = oneOf(v, label, LOG_FORMATS);
      break;
    case 'metrics':
      g.metrics = parseListenAddress(typeof v === 'number' ? String(v) : str(v, label), label);
      break;
    case 'guest-memory': {
      const m = str(v, label);
      // QEMU's -m: a number with an optional suffix K, M, G, T.
      if (!/^[1-9]\d*[KMGT]?$/i.test(m)) bad(label, v, 'must be a size like 512M or 2G');
      g.guestMemory = m.toUpperCase();
      break;
    }
    // The web keys are checked together, by finishWeb (src/web/config.ts).
    case 'web':
      g.web = { ...g.web, listen: typeof v === 'number' ? String(v) : str(v, label) };
      break;
    case 'web-cert':
      g.web = { ...g.web, cert: path(v, label) };
      break;
    case 'web-key':
      g.web = { ...g.web, key: path(v, label) };
      break;
    case 'web-insecure':
      g.web = { ...g.web, insecure: bool(v, label) };
      break;
    case 'web-token-file':
      g.web = { ...g.web, tokenFile: path(v, label) };
      break;
    case 'web-scrollback':
      g.web = { ...g.web, scrollback: uint(v, label) };
      break;
    case 'web-generic':
      g.web = { ...g.web, generic: bool(v, label) };
      break;
    default:
      throw new Error(`internal: unhandled global key ${key}`);
  }
}

// ---------------------------------------------------------------------------------------
// argv

interface Argv {
  vm: Fields;
  vmKeys: Set<string>;
  globals: Globals;
  config?: string;
  printQemuArgs: boolean;
  check: boolean;
  help: boolean;
  version: boolean;
}

function scanArgv(argv: readonly string[]): Argv {
  const out: Argv = {
    vm: { chardevs: [], devices: [] },
    vmKeys: new Set(),
    globals: {},
    printQemuArgs: false,
    check: false,
    help: false,
    version: false,
  };
  const seen = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    let name: string;
    let value: string | undefined;
    if (SHORT[arg] !== undefined) name = SHORT[arg]!;
    else if (arg.startsWith('--') && arg.length > 2) {
      const eq = arg.indexOf('=');
      name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      if (eq >= 0) value = arg.slice(eq + 1);
    } else if (arg.startsWith('-') && arg.length > 1) {
      // QEMU habits: `-chardev` -> suggest `--chardev`.
      throw new ConfigError(
        `unknown option '${arg}'${didYouMean(arg.replace(/^-+/, '').split('=')[0]!, FLAG.keys(), (s) => `'--${s}'`)}`,
        arg,
        arg,
      );
    } else {
      throw new ConfigError(`unexpected argument '${arg}' (options start with --; see --help)`, arg, arg);
    }
    const flag = FLAG.get(name);
    if (flag === undefined)
      throw new ConfigError(
        `unknown option '--${name}'${didYouMean(name, FLAG.keys(), (s) => `'--${s}'`)}`,
        `--${name}`,
        arg,
      );
    const label = `--${name}`;
    if (!flag.repeat && seen.has(name))
      throw new ConfigError(`${label} is given more than once`, label, value ?? argv[i + 1] ?? '');
    seen.add(name);
    if (flag.scope === 'action') {
      if (value !== undefined) throw new ConfigError(`${label} takes no value (got '${value}')`, label, value);
      if (name === 'help') out.help = true;
      else if (name === 'version') out.version = true;
      else if (name === 'check') out.check = true;
      else out.printQemuArgs = true;
      continue;
    }
    if (value === undefined) {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('--') && next.length > 2)) {
        throw new ConfigError(
          `${label} needs a value (${flag.metavar})${next === undefined ? '' : `, got the option '${next}'`}`,
          label,
          next ?? '',
        );
      }
      value = next;
      i++;
    }
    if (flag.scope === 'vm') {
      setVmKey(out.vm, name, value, label);
      out.vmKeys.add(name);
    } else if (name === 'config') out.config = value;
    else setGlobalKey(out.globals, name, value, label);
  }
  return out;
}

/** Parse argv (without node and the script: process.argv.slice(2)). Throws ConfigError naming the option and the value. */
export function parseArgs(argv: readonly string[]): ParsedCli {
  // --help and --version win over everything else, even other errors, as users expect; so scan
  // for them before the values are checked.
  for (const arg of argv) {
    if (arg === '--help' || arg === '-h') return { action: 'help' };
    if (arg === '--version' || arg === '-V') return { action: 'version' };
  }
  warnings = [];
  const a = scanArgv(argv);
  if (a.check && a.printQemuArgs)
    throw new ConfigError(
      '--check and --print-qemu-args exclude each other (--print-qemu-args checks too)',
      '--check',
      '',
    );
  const action = a.check ? 'check' : a.printQemuArgs ? 'print-qemu-args' : 'run';
  if (a.config === undefined && a.vmKeys.size === 0) {
    // Nothing configured: the embedded default, with the given globals on top.
    const d = scanArgv(DEFAULT_ARGV);
    const g = mergeGlobals(d.globals, a.globals);
    return {
      action,
      config: build([topDraft(d.vm, 'the default configuration')], g),
      usedDefault: true,
      warnings,
      guestMemory: g.guestMemory ?? DEFAULT_GUEST_MEMORY,
    };
  }
  const file = a.config === undefined ? undefined : readConfigFile(a.config);
  const top: Fields = { chardevs: [], devices: [] };
  if (file) Object.assign(top, file.top, { chardevs: [...file.top.chardevs], devices: [...file.top.devices] });
  for (const key of a.vmKeys) {
    if (key === 'chardev') top.chardevs.push(...a.vm.chardevs);
    else if (key === 'device') top.devices.push(...a.vm.devices);
    else (top as Record<string, unknown>)[camel(key)] = (a.vm as Record<string, unknown>)[camel(key)];
  }
  const drafts: VmDraft[] = [];
  if (a.vmKeys.size > 0 || file?.hasTop)
    drafts.push(topDraft(top, a.config === undefined ? 'the command line' : `the command line or ${a.config}`));
  drafts.push(...(file?.vms ?? []));
  if (drafts.length === 0)
    throw new ConfigError(
      `${a.config}: no VM is configured (give socket, chardev, device at the top level or a vm list)`,
      '--config',
      a.config,
    );
  const g = mergeGlobals(file?.globals, a.globals);
  return {
    action,
    config: build(drafts, g),
    usedDefault: false,
    warnings,
    guestMemory: g.guestMemory ?? DEFAULT_GUEST_MEMORY,
  };
}

/** The flags' globals over the file's (or the default's); the web keys one by one. */
function mergeGlobals(base: Globals | undefined, top: Globals): Globals {
  const web = base?.web === undefined && top.web === undefined ? {} : { web: { ...base?.web, ...top.web } };
  return { ...base, ...top, ...web };
}

function webConfig(g: Globals): Config['web'] {
  if (g.web === undefined) return undefined;
  if (g.web.listen === undefined)
    throw new ConfigError(
      '--web-cert, --web-key, --web-insecure, --web-token-file, --web-scrollback and --web-generic need --web',
      '--web',
    );
  return finishWeb(g.web as WebDraft);
}

function camel(key: string): string {
  return key.replace(/-(.)/g, (_, c: string) => c.toUpperCase());
}

function topDraft(f: Fields, where: string): VmDraft {
  if (f.socket === undefined) {
    const given = (['chardevs', 'devices'] as const).some((k) => f[k].length > 0)
      ? 'ports or chardevs are configured'
      : 'VM options are given';
    throw new ConfigError(`${given} but no --socket (in ${where})`, '--socket', '');
  }
  return { ...f, id: f.id ?? DEFAULT_VM_ID };
}

function build(drafts: VmDraft[], g: Globals): Config {
  const several = drafts.length > 1;
  const vms: VmConfig[] = drafts.map((d) => finishVm(d, several ? { prefix: `vm '${d.id}': ` } : {}));
  let control: ControlConfig | undefined;
  if (g.control !== undefined)
    control = g.controlMode === undefined ? { path: g.control } : { path: g.control, mode: g.controlMode };
  else if (g.controlMode !== undefined)
    throw new ConfigError('--control-mode is given without --control', '--control-mode', g.controlMode.toString(8));
  const config = finishConfig(g.logLevel ?? envLogLevel() ?? 'info', vms, control);
  return {
    ...config,
    ...(g.logFormat !== undefined && { logFormat: g.logFormat }),
    ...(g.metrics !== undefined && { metrics: g.metrics }),
    ...(g.web !== undefined && { web: webConfig(g) }),
  };
}

/** VHOST_CONSOLE_LOG: the log level when neither --log-level nor the file's log-level gives one. */
export function envLogLevel(env: NodeJS.ProcessEnv = process.env): LogLevel | undefined {
  const v = env.VHOST_CONSOLE_LOG;
  if (v === undefined || v === '') return undefined;
  if (!(LOG_LEVELS as readonly string[]).includes(v)) {
    throw new ConfigError(
      `VHOST_CONSOLE_LOG: '${v}' is not a log level (${LOG_LEVELS.join(', ')})${didYouMean(v, LOG_LEVELS)}; --log-level overrides it`,
      'VHOST_CONSOLE_LOG',
      v,
    );
  }
  return v as LogLevel;
}

// ---------------------------------------------------------------------------------------
// Config file

interface FileConfig {
  top: Fields;
  hasTop: boolean;
  vms: VmDraft[];
  globals: Globals;
}

/** Read a JSON or TOML file: by extension (.json, .toml), else by content ('{' first means JSON). */
export function readConfigFile(file: string): FileConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`--config: cannot read '${file}': ${(e as Error).message}`, '--config', file);
  }
  const ext = extname(file).toLowerCase();
  const json = ext === '.json' || (ext !== '.toml' && text.trimStart().startsWith('{'));
  let data: unknown;
  try {
    data = json ? JSON.parse(text) : parseToml(text);
  } catch (e) {
    throw new ConfigError(
      `--config '${file}': not valid ${json ? 'JSON' : 'TOML'}: ${(e as Error).message}`,
      '--config',
      file,
    );
  }
  return configFromObject(data, file);
}

/** The file's parsed content -> FileConfig. Exported for tests and for a config embedded elsewhere. */
export function configFromObject(data: unknown, file: string): FileConfig {
  if (!isObject(data)) throw new ConfigError(`${file}: the top level must be a table/object`, '--config', file);
  const top: Fields = { chardevs: [], devices: [] };
  const globals: Globals = {};
  let hasTop = false;
  const vms: VmDraft[] = [];
  const allowed = [...VM_KEYS, ...GLOBAL_KEYS, 'vm'];
  for (const [key, v] of Object.entries(data)) {
    const label = `${file}: ${key}`;
    if (VM_KEYS.includes(key)) {
      setVmKey(top, key, v, label);
      hasTop = true;
    } else if (GLOBAL_KEYS.includes(key)) setGlobalKey(globals, key, v, label);
    else if (key === 'vm') {
      listOf(v, label).forEach(([entry, l], i) => {
        const where = Array.isArray(v) ? l : `${label}[${i}]`;
        if (!isObject(entry)) bad(where, entry, 'is not a table/object of VM keys');
        const f: Fields = { chardevs: [], devices: [] };
        for (const [k, x] of Object.entries(entry as Record<string, unknown>)) {
          if (!VM_KEYS.includes(k))
            throw new ConfigError(`${where}: unknown key '${k}'${didYouMean(k, VM_KEYS)}`, k, k);
          setVmKey(f, k, x, `${where}.${k}`);
        }
        if (f.id === undefined) throw new ConfigError(`${where}: a vm entry needs an id`, 'id', '');
        if (f.socket === undefined) throw new ConfigError(`${where}: vm '${f.id}' has no socket`, 'socket', '');
        vms.push({ ...f, id: f.id });
      });
    } else throw new ConfigError(`${file}: unknown key '${key}'${didYouMean(key, allowed)}`, key, key);
  }
  return { top, hasTop, vms, globals };
}
