// The web console's configuration: `--web [HOST:]PORT` and its companions, checked here so
// that the config layer only passes values through. Every error names the option and value.
import { isIP } from 'node:net';
import { ConfigError } from '../errors.js';
import { DEFAULT_SCROLLBACK } from './screen.js';

export const DEFAULT_WEB_HOST = '127.0.0.1';
export { DEFAULT_SCROLLBACK };
/** Lines of scrollback a server-side screen may keep: serialising 10000 lines of 120 columns
 *  for a new viewer takes about half a second of the daemon's event loop. */
export const MAX_SCROLLBACK = 10_000;

export interface WebConfig {
  host: string;
  /** 0: a free port, chosen at start. */
  port: number;
  /** TLS: PEM certificate (chain) and key files. */
  cert?: string;
  key?: string;
  /** Plain HTTP on a non-loopback address, explicitly accepted. */
  insecure: boolean;
  /** `read-write=TOKEN` / `read-only=TOKEN` lines; without it tokens are generated at start. */
  tokenFile?: string;
  /** Lines of scrollback a late viewer gets (and the server-side screen keeps). */
  scrollback: number;
  /** Serve generic (virtserialport) ports too: a viewer holds the port open on the host side. */
  generic: boolean;
}

/** The values as given (strings from flags; the file may give numbers and booleans). */
export interface WebDraft {
  listen: string;
  cert?: string;
  key?: string;
  insecure?: boolean;
  tokenFile?: string;
  scrollback?: number;
  generic?: boolean;
}

/** `PORT`, `HOST:PORT`, `[IPV6]:PORT`. */
export function parseListen(text: string, option = '--web'): { host: string; port: number } {
  const fail = (why: string): never => {
    throw new ConfigError(
      `${option}: '${text}' ${why} (expected [HOST:]PORT, e.g. 8080 or 127.0.0.1:8080)`,
      option,
      text,
    );
  };
  let host = DEFAULT_WEB_HOST;
  let portText = text;
  const v6 = /^\[([^\]]+)\]:(.*)$/.exec(text);
  if (v6) {
    host = v6[1]!;
    portText = v6[2]!;
    if (isIP(host) !== 6) fail(`has '${host}' in brackets, which is not an IPv6 address`);
  } else if (text.includes(':')) {
    const i = text.lastIndexOf(':');
    host = text.slice(0, i);
    portText = text.slice(i + 1);
    if (host.includes(':')) fail('has an IPv6 address without brackets');
    if (host === '') fail('has an empty host');
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) fail(`has port '${portText}', which is not 0..65535`);
  if (!/^[A-Za-z0-9.:_-]+$/.test(host)) fail(`has host '${host}', which is not a host name or address`);
  return { host, port: Number(portText) };
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** Check a draft and fill in the defaults. `label` prefixes option names ('--web', 'cfg.toml: web'). */
export function finishWeb(d: WebDraft, option = (name: string) => `--${name}`): WebConfig {
  const { host, port } = parseListen(d.listen, option('web'));
  if ((d.cert === undefined) !== (d.key === undefined)) {
    const missing = d.cert === undefined ? 'web-cert' : 'web-key';
    throw new ConfigError(
      `${option(missing)} is missing: TLS needs both ${option('web-cert')} and ${option('web-key')}`,
      option(missing),
    );
  }
  const tls = d.cert !== undefined;
  if (tls && d.insecure)
    throw new ConfigError(
      `${option('web-insecure')} contradicts ${option('web-cert')}: with TLS the console is not insecure`,
      option('web-insecure'),
    );
  if (!isLoopback(host) && !tls && !d.insecure) {
    throw new ConfigError(
      `${option('web')}: '${host}' is not a loopback address, so the web console needs TLS (${option('web-cert')} and ${option('web-key')}), or ${option('web-insecure')} to serve plain HTTP there knowingly`,
      option('web'),
      d.listen,
    );
  }
  const scrollback = d.scrollback ?? DEFAULT_SCROLLBACK;
  if (!Number.isSafeInteger(scrollback) || scrollback < 0 || scrollback > MAX_SCROLLBACK) {
    throw new ConfigError(
      `${option('web-scrollback')}: ${scrollback} is out of range (0..${MAX_SCROLLBACK})`,
      option('web-scrollback'),
      String(scrollback),
    );
  }
  return {
    host,
    port,
    ...(tls && { cert: d.cert!, key: d.key! }),
    insecure: d.insecure ?? false,
    ...(d.tokenFile !== undefined && { tokenFile: d.tokenFile }),
    scrollback,
    generic: d.generic ?? false,
  };
}
