// Structured logging (pino, JSON lines on stderr). Components take a child logger with
// bindings such as { component: 'hub', vm: 'vm1', port: 'console' } so an operator can grep
// one VM's story. The default level is 'info', which logs only life-cycle events.
import { pino, type Logger } from 'pino';

export type { Logger };
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

let root: Logger | undefined;

/**
 * The process-wide root logger; created on first use at 'info' (VHOST_CONSOLE_LOG when it names
 * a level). The daemon sets the configured level at start (setLogLevel): --log-level, else the
 * file's log-level, else VHOST_CONSOLE_LOG, whose bad value the CLI reports as an error.
 */
export function rootLogger(): Logger {
  const env = process.env.VHOST_CONSOLE_LOG;
  const level = env !== undefined && (LOG_LEVELS as readonly string[]).includes(env) ? env : 'info';
  if (!root) root = pino({ level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
  return root;
}

export function setLogLevel(level: LogLevel): void {
  rootLogger().level = level;
}

export function logger(bindings: Record<string, unknown>): Logger {
  return rootLogger().child(bindings);
}
