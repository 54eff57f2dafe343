// `--metrics [HOST:]PORT`: where an HTTP endpoint listens. Loopback unless a host is given
// (the endpoint is unauthenticated); an IPv6 host is written in brackets, e.g. [::1]:9101.
import { ConfigError } from '../errors.js';

export interface ListenAddress {
  host: string;
  port: number;
}

export function parseListenAddress(text: string, label: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]:|([^:[\]]+):)?(\d+)$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError(
      `${label}: '${text}' is not [HOST:]PORT (e.g. 9101, 127.0.0.1:9101, [::1]:9101; port 1..65535, or 0 for any free port)`,
      label,
      text,
    );
  }
  return { host: m[1] ?? m[2] ?? '127.0.0.1', port };
}

/** host:port as a URL authority. */
export function formatAddress(a: ListenAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
