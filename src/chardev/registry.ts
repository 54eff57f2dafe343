// Which backends exist, what options each takes, and how to build one.
//
// parseChardevOptions is pure (no file system, no sockets): the config layer calls it to
// validate a whole configuration before anything starts. Values arrive as strings, as
// QEMU's `-chardev backend,id=x,key=value` syntax gives them.
import { ConfigError } from '../errors.js';
import { didYouMean } from '../config/suggest.js';
import { DEFAULT_HUB_MAX_MEMBERS, parseBool } from '../limits.js';
import { Chardev, type CommonOptions, type MemberOptions } from './chardev.js';
import { FileChardev } from './file.js';
import { DEFAULT_JOURNAL_SOCKET, JournalChardev } from './journal.js';
import { DEFAULT_BACKUPS, MAX_BACKUPS, type Rotation } from './rotating.js';
import { NullChardev } from './null.js';
import type { BackendOptions, ChardevConfig, HubOptions, SocketAddress } from './options.js';
import { PipeChardev } from './pipe.js';
import { PtyChardev } from './pty.js';
import { RingbufChardev } from './ringbuf.js';
import { SocketChardev } from './socket.js';
import { StdioChardev } from './stdio.js';

export type { ChardevConfig, BackendOptions } from './options.js';

/** Every backend type the configuration may name. `hub` is built by src/hub/, not here. */
export const KNOWN_BACKENDS = ['null', 'ringbuf', 'file', 'pipe', 'pty', 'stdio', 'socket', 'hub', 'journal'] as const;
export type BackendName = (typeof KNOWN_BACKENDS)[number];

export const DEFAULT_RINGBUF_SIZE = 65536;

/** Options every backend takes, and each backend's own (for suggestions and the config layer's checks). */
export const COMMON_KEYS = [
  'logfile',
  'logappend',
  'timestamp',
  'max-size',
  'backups',
  'policy',
  'buffer',
  'input',
  'replay',
];
export const BACKEND_KEYS: Record<BackendName, string[]> = {
  null: [],
  ringbuf: ['size'],
  file: ['path', 'append', 'input-path'],
  pipe: ['path'],
  pty: ['path'],
  stdio: ['signal'],
  socket: ['path', 'host', 'port', 'server', 'wait', 'reconnect', 'reconnect-ms', 'nodelay', 'telnet', 'mode'],
  hub: ['max-members'], // plus chardevs.N
  journal: ['path', 'identifier', 'priority'],
};

/** Reads one chardev's options, each read naming the chardev, the option and the value on error. */
class OptionReader {
  readonly used = new Set<string>(['id', 'backend']);
  constructor(
    readonly id: string,
    readonly opts: Record<string, string>,
    readonly what = 'chardev',
  ) {}

  fail(message: string, option: string, value?: string): never {
    throw new ConfigError(`${this.what} '${this.id}': ${message}`, option, value);
  }

  str(key: string): string | undefined {
    this.used.add(key);
    const v = this.opts[key];
    if (v === '') this.fail(`option '${key}' is empty`, key, v);
    return v;
  }

  required(key: string, why = ''): string {
    return this.str(key) ?? this.fail(`option '${key}' is required${why}`, key);
  }

  bool(key: string, dflt: boolean): boolean {
    const v = this.str(key);
    if (v === undefined) return dflt;
    const b = parseBool(v); // QEMU's spellings: on/off, yes/no, true/false, y/n
    if (b !== undefined) return b;
    return this.fail(`option '${key}' must be on or off, not '${v}'`, key, v);
  }

  /** A non-negative integer, with K/M/G (binary) suffixes for sizes. */
  num(key: string, opts: { size?: boolean; max?: number } = {}): number | undefined {
    const v = this.str(key);
    if (v === undefined) return undefined;
    const m = (opts.size ? /^(\d+)([kKmMgG]?)[bB]?$/ : /^(\d+)()$/).exec(v);
    const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(m?.[2] ?? '').toLowerCase() as '' | 'k' | 'm' | 'g'];
    const n = m ? Number(m[1]) * mult : NaN;
    if (!Number.isSafeInteger(n))
      this.fail(`option '${key}' must be a ${opts.size ? 'size in bytes' : 'number'}, not '${v}'`, key, v);
    if (opts.max !== undefined && n > opts.max)
      this.fail(`option '${key}' must be at most ${opts.max}, not '${v}'`, key, v);
    return n;
  }

  /** Reject what nobody read: a typo must not be silently ignored. `known`: this backend's options, for a suggestion. */
  finish(known: readonly string[] = []): void {
    for (const key of Object.keys(this.opts)) {
      if (!this.used.has(key)) this.fail(`unknown option '${key}'${didYouMean(key, known)}`, key, this.opts[key]);
    }
  }
}

function parseCommon(r: OptionReader, isFile: boolean): CommonOptions {
  const member: MemberOptions = {};
  const policy = r.str('policy');
  if (policy !== undefined) {
    if (policy !== 'lossless' && policy !== 'drop')
      r.fail(`option 'policy' must be lossless or drop, not '${policy}'`, 'policy', policy);
    member.policy = policy;
  }
  const buffer = r.num('buffer', { size: true });
  if (buffer !== undefined) {
    if (buffer === 0) r.fail(`option 'buffer' must be at least 1 byte`, 'buffer', r.opts.buffer);
    if (policy === 'lossless') r.fail(`option 'buffer' applies to policy=drop only`, 'buffer', r.opts.buffer);
    member.buffer = buffer;
  }
  if (r.opts.input !== undefined) member.input = r.bool('input', true);
  const replay = r.num('replay', { size: true, max: 64 * 1024 * 1024 });
  if (replay !== undefined) member.replay = replay;
  const logfile = r.str('logfile');
  const rotate = parseRotation(r, isFile);
  return {
    ...(logfile !== undefined && { logfile }),
    logappend: r.bool('logappend', false),
    timestamp: r.bool('timestamp', false),
    ...(rotate && { rotate }),
    member,
  };
}

/** max-size=SIZE[,backups=N]: rotation like virtlogd's (backups default 3; no max-size, no rotation). */
function parseRotation(r: OptionReader, isFile: boolean): Rotation | undefined {
  const maxSize = r.num('max-size', { size: true });
  const backups = r.num('backups', { max: MAX_BACKUPS });
  if (maxSize === undefined) {
    if (backups !== undefined)
      r.fail(`option 'backups' needs max-size= (the size at which the file rotates)`, 'backups', r.opts.backups);
    return undefined;
  }
  if (maxSize < 1) r.fail(`option 'max-size' must be at least 1 byte`, 'max-size', r.opts['max-size']);
  if (r.opts.logfile === undefined && !isFile) {
    r.fail(
      `option 'max-size' applies to a file backend's output and to logfile=; give logfile= or use backend file`,
      'max-size',
      r.opts['max-size'],
    );
  }
  return { maxSize, backups: backups ?? DEFAULT_BACKUPS };
}

function parseSocket(r: OptionReader): Extract<BackendOptions, { backend: 'socket' }> {
  const path = r.str('path');
  const host = r.str('host');
  const portStr = r.opts.port;
  let address: SocketAddress;
  if (path !== undefined) {
    if (host !== undefined || portStr !== undefined)
      r.fail(`options 'path' and 'host'/'port' exclude each other`, 'path', path);
    address = { type: 'unix', path };
  } else {
    const port = r.num('port', { max: 65535 });
    if (port === undefined) r.fail(`needs 'path' (unix) or 'port' (tcp)`, 'path');
    // Safer than QEMU's all-interfaces default: a console is a root shell more often than not.
    address = { type: 'tcp', host: host ?? 'localhost', port };
  }
  const server = r.bool('server', false);
  if (!server && r.opts.wait !== undefined) r.fail(`option 'wait' applies to server=on only`, 'wait', r.opts.wait);
  for (const key of ['reconnect', 'reconnect-ms']) {
    if (server && r.opts[key] !== undefined)
      r.fail(`option '${key}' applies to client sockets (server=off) only`, key, r.opts[key]);
  }
  if (r.opts.reconnect !== undefined && r.opts['reconnect-ms'] !== undefined)
    r.fail(`options 'reconnect' and 'reconnect-ms' exclude each other`, 'reconnect-ms', r.opts['reconnect-ms']);
  if (address.type === 'tcp' && r.opts.mode !== undefined)
    r.fail(`option 'mode' applies to unix sockets only`, 'mode', r.opts.mode);
  const modeStr = r.str('mode');
  if (modeStr !== undefined && !/^0?[0-7]{3}$/.test(modeStr))
    r.fail(`option 'mode' must be octal permission bits like 0600, not '${modeStr}'`, 'mode', modeStr);
  return {
    backend: 'socket',
    address,
    server,
    wait: r.bool('wait', true),
    reconnectMs: r.num('reconnect-ms') ?? (r.num('reconnect') ?? 0) * 1000, // QEMU 9.2 added reconnect-ms
    nodelay: r.bool('nodelay', false),
    telnet: r.bool('telnet', false),
    mode: modeStr !== undefined ? parseInt(modeStr, 8) : 0o600,
  };
}

/** `members`: the list as the config layer read it (ChardevSpec.members); else `chardevs.N` keys. */
function parseHub(r: OptionReader, members: readonly string[] | undefined): HubOptions {
  const chardevs: string[] = [];
  if (members !== undefined) {
    members.forEach((m, i) => {
      if (m === '') r.fail(`option 'chardevs.${i}' is empty`, `chardevs.${i}`, m);
      chardevs.push(m);
    });
  }
  const keys = Object.keys(r.opts).filter((k) => k.startsWith('chardevs'));
  for (const key of keys) {
    const m = /^chardevs\.(0|[1-9]\d*)$/.exec(key);
    if (!m || members !== undefined) r.fail(`bad list element '${key}' (expected chardevs.N)`, key, r.opts[key]);
    chardevs[Number(m[1])] = r.required(key);
  }
  // A list given as `members` may be empty (a run-time hub; the config layer judges a configured one).
  if (chardevs.length === 0 && members === undefined)
    r.fail(`'chardevs' list is empty (give chardevs.0=ID, chardevs.1=ID, ...)`, 'chardevs.0');
  const gap = chardevs.findIndex((v) => v === undefined);
  if (gap >= 0) r.fail(`'chardevs' list has a gap: chardevs.${gap} is missing`, `chardevs.${gap}`);
  const maxMembers = r.num('max-members') ?? DEFAULT_HUB_MAX_MEMBERS;
  if (maxMembers < 1) r.fail(`option 'max-members' must be at least 1`, 'max-members', r.opts['max-members']);
  if (chardevs.length > maxMembers)
    r.fail(
      `too many members: ${chardevs.length} (maximum is ${maxMembers})`,
      `chardevs.${maxMembers}`,
      chardevs[maxMembers],
    );
  return { backend: 'hub', chardevs, maxMembers };
}

/**
 * Validate one `--chardev BACKEND,id=ID,...` and return its typed options. Pure: touches
 * nothing outside its arguments. Throws ConfigError naming the chardev, option and value.
 * A hub's members come as `members` (a list already read) or as `chardevs.N` options.
 */
export function parseChardevOptions(
  backend: string,
  id: string,
  opts: Record<string, string>,
  members?: readonly string[],
): ChardevConfig {
  if (!id) throw new ConfigError(`chardev of type '${backend}' has no id`, 'id');
  if (!(KNOWN_BACKENDS as readonly string[]).includes(backend)) {
    throw new ConfigError(
      `chardev '${id}': unknown backend '${backend}' (known: ${KNOWN_BACKENDS.join(', ')})`,
      'backend',
      backend,
    );
  }
  const name = backend as BackendName;
  const r = new OptionReader(id, opts, name === 'hub' ? 'hub' : 'chardev');
  if (opts.id !== undefined && opts.id !== id) r.fail(`option 'id' says '${opts.id}'`, 'id', opts.id);
  if (name === 'hub') {
    // A hub records guest output like any chardev, but member options belong to its members.
    for (const k of ['policy', 'buffer', 'input', 'replay']) {
      if (opts[k] !== undefined) r.fail(`option '${k}' belongs on the member chardevs, not on the hub`, k, opts[k]);
    }
  }
  const common = parseCommon(r, name === 'file');
  let b: BackendOptions;
  switch (name) {
    case 'null':
      b = { backend: 'null' };
      break;
    case 'ringbuf': {
      const size = r.num('size', { size: true }) ?? DEFAULT_RINGBUF_SIZE;
      if (size < 1 || (size & (size - 1)) !== 0 || size > 2 ** 30)
        r.fail(`option 'size' must be a power of two, not '${opts.size}'`, 'size', opts.size);
      b = { backend: 'ringbuf', size };
      break;
    }
    case 'file': {
      const inputPath = r.str('input-path');
      b = {
        backend: 'file',
        path: r.required('path'),
        append: r.bool('append', false),
        ...(inputPath !== undefined && { inputPath }),
      };
      break;
    }
    case 'pipe':
      b = { backend: 'pipe', path: r.required('path') };
      break;
    case 'pty': {
      const path = r.str('path');
      b = { backend: 'pty', ...(path !== undefined && { path }) };
      break;
    }
    case 'stdio':
      b = { backend: 'stdio', signal: r.bool('signal', true) };
      break;
    case 'socket':
      b = parseSocket(r);
      break;
    case 'hub':
      b = parseHub(r, members);
      break;
    case 'journal': {
      const priority = r.num('priority', { max: 7 }) ?? 6;
      b = {
        backend: 'journal',
        path: r.str('path') ?? DEFAULT_JOURNAL_SOCKET,
        identifier: r.str('identifier') ?? 'vhost-console',
        priority,
      };
      break;
    }
  }
  r.finish(
    name === 'hub'
      ? ['logfile', 'logappend', 'timestamp', 'max-size', 'backups', ...BACKEND_KEYS.hub]
      : [...COMMON_KEYS, ...BACKEND_KEYS[name]],
  );
  return { ...b, id, common };
}

/** Build a chardev (not started: call start()). A hub is built by src/hub/hub.ts instead. */
export function chardevFromConfig(cfg: ChardevConfig): Chardev {
  switch (cfg.backend) {
    case 'null':
      return new NullChardev(cfg);
    case 'ringbuf':
      return new RingbufChardev(cfg);
    case 'file':
      return new FileChardev(cfg);
    case 'pipe':
      return new PipeChardev(cfg);
    case 'pty':
      return new PtyChardev(cfg);
    case 'stdio':
      return new StdioChardev(cfg);
    case 'socket':
      return new SocketChardev(cfg);
    case 'journal':
      return new JournalChardev(cfg);
    case 'hub':
      throw new ConfigError(
        `hub '${cfg.id}' is built by the hub layer (Hub.fromConfig), not as a chardev`,
        'backend',
        'hub',
      );
  }
}
