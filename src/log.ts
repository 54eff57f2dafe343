// Structured logging (pino on stderr: JSON lines, or readable lines at a terminal). Components take a child logger with
// bindings such as { component: 'hub', vm: 'vm1', port: 'console' } so an operator can grep
// one VM's story. The default level is 'info', which logs only life-cycle events.
import { pino, type DestinationStream, type Logger } from 'pino';
import { createRequire } from 'node:module';
import type { PrettyOptions } from 'pino-pretty';

export type { Logger };
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export type LogFormat = 'pretty' | 'json';
export const LOG_FORMATS: readonly LogFormat[] = ['pretty', 'json'];

let root: Logger | undefined;
let format: LogFormat | undefined;

/**
 * --log-format: 'pretty' (one readable, coloured line per event; pino-pretty) or 'json' (pino's
 * JSON lines, for journald/log shippers). Default: pretty when stderr is a terminal. Call before
 * the first log line (the CLI does, right after parsing); both write synchronously to fd 2.
 */
export function setLogFormat(f: LogFormat | undefined): void {
  const want = f ?? defaultFormat();
  if (want === format && root) return;
  format = want;
  const level = root?.level;
  root = undefined;
  if (level !== undefined) rootLogger().level = level;
}

function defaultFormat(): LogFormat {
  return process.stderr.isTTY ? 'pretty' : 'json';
}

function destination(f: LogFormat): DestinationStream {
  if (f === 'json') return pino.destination({ fd: 2, sync: true });
  // Loaded only for a terminal (or --log-format pretty): a service's start-up skips it.
  const pretty = createRequire(import.meta.url)('pino-pretty') as (o: PrettyOptions) => DestinationStream;
  return pretty({
    destination: 2,
    sync: true,
    colorize: process.stderr.isTTY,
    translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l',
    ignore: 'pid,hostname,component,vm',
    // "web1 vm: listening on ..." : the VM and component first, then the message.
    messageFormat: '{if vm}{vm} {end}{component}: {msg}',
    singleLine: true,
  });
}

/**
 * The process-wide root logger; created on first use at 'info' (VHOST_CONSOLE_LOG when it names
 * a level). The daemon sets the configured level at start (setLogLevel): --log-level, else the
 * file's log-level, else VHOST_CONSOLE_LOG, whose bad value the CLI reports as an error.
 */
export function rootLogger(): Logger {
  const env = process.env.VHOST_CONSOLE_LOG;
  const level = env !== undefined && (LOG_LEVELS as readonly string[]).includes(env) ? env : 'info';
  if (!root) root = pino({ level, base: { pid: process.pid } }, destination((format ??= defaultFormat())));
  return root;
}

export function setLogLevel(level: LogLevel): void {
  rootLogger().level = level;
}

export function logger(bindings: Record<string, unknown>): Logger {
  return rootLogger().child(bindings);
}
