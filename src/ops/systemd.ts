// The service manager's side of the process (systemd; any manager speaking the same
// protocols): readiness notification and socket activation.
//
// Notification (sd_notify(3)): datagrams of "KEY=VALUE\n" lines to $NOTIFY_SOCKET, a unix
// datagram socket (a path, or '@name' for an abstract one). The daemon sends READY=1 once every
// VM's vhost-user socket and the control socket listen (so with Type=notify, QEMU units ordered
// after us never race our bind), STATUS= lines a person reads in `systemctl status`,
// STOPPING=1 when shutdown starts, and WATCHDOG=1 every WATCHDOG_USEC/2 when the unit sets
// WatchdogSec= (the event loop is alive). Without NOTIFY_SOCKET every call is a no-op.
//
// Socket activation (sd_listen_fds(3)): LISTEN_PID (must be us), LISTEN_FDS (count, from fd 3)
// and LISTEN_FDNAMES (':'-separated). Each passed fd is matched to the configuration by the
// path it is bound to (getsockname), so a socket unit just lists the same paths as the config
// (ListenStream=/run/vhost-console/web1.sock); FileDescriptorName= is only used in messages.
// An activated socket is systemd's: we serve it and never create or remove its path.
import { closeFd, isListeningStream, sendDatagram, setCloexec, unixSocketPath } from '../sys/unix-socket.js';
import { logger } from '../log.js';

const SD_LISTEN_FDS_START = 3;

/** Send a notification (lines joined with '\n'); false if there is no manager to tell. */
export function sdNotify(...lines: string[]): boolean {
  const path = process.env.NOTIFY_SOCKET;
  if (!path) return false;
  if (!path.startsWith('/') && !path.startsWith('@')) {
    // e.g. vsock:CID:PORT (a VM's manager on the host): not supported, said once.
    warnOnce(`NOTIFY_SOCKET '${path}' is not a unix socket path; not notifying`);
    return false;
  }
  try {
    sendDatagram(path, Buffer.from(`${lines.join('\n')}\n`));
    return true;
  } catch (err) {
    warnOnce(`cannot notify the service manager: ${(err as Error).message}`);
    return false;
  }
}

let warned = false;
function warnOnce(msg: string): void {
  if (warned) return;
  warned = true;
  logger({ component: 'systemd' }).warn(msg);
}

let watchdog: NodeJS.Timeout | undefined;

/**
 * With WatchdogSec= (WATCHDOG_USEC, and WATCHDOG_PID absent or ours), send WATCHDOG=1 at half
 * the interval from a timer on the event loop: a loop that stops turning stops the pings.
 * Returns the interval in ms, or 0 when no watchdog is asked for.
 */
export function startWatchdog(): number {
  const usec = Number(process.env.WATCHDOG_USEC);
  const pid = process.env.WATCHDOG_PID;
  if (!Number.isFinite(usec) || usec <= 0 || (pid !== undefined && Number(pid) !== process.pid)) return 0;
  const ms = Math.max(1, Math.floor(usec / 2000));
  clearInterval(watchdog);
  watchdog = setInterval(() => sdNotify('WATCHDOG=1'), ms);
  watchdog.unref();
  return ms;
}

export function stopWatchdog(): void {
  clearInterval(watchdog);
  watchdog = undefined;
}

export interface ActivatedSocket {
  fd: number;
  /** LISTEN_FDNAMES entry ('unknown' when not given). */
  name: string;
  /** The path the socket is bound to ('' if none). */
  path: string;
}

/** Activated sockets by resolved path, not yet taken. */
const byPath = new Map<string, ActivatedSocket>();
let received: ActivatedSocket[] = [];

/**
 * Take the sockets the service manager passed (once per process; the LISTEN_* variables are
 * removed so nothing we spawn inherits them, as sd_listen_fds(1) does). Non-socket and
 * non-listening fds are reported and closed.
 */
export function receiveListenFds(env: NodeJS.ProcessEnv = process.env): ActivatedSocket[] {
  const pid = env.LISTEN_PID;
  const count = env.LISTEN_FDS;
  const names = env.LISTEN_FDNAMES?.split(':') ?? [];
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (pid === undefined || count === undefined || Number(pid) !== process.pid) return [];
  const n = Number(count);
  if (!Number.isInteger(n) || n <= 0) return [];
  const log = logger({ component: 'systemd' });
  const out: ActivatedSocket[] = [];
  for (let i = 0; i < n; i++) {
    const fd = SD_LISTEN_FDS_START + i;
    const name = names[i] ?? 'unknown';
    try {
      setCloexec(fd);
      if (!isListeningStream(fd)) {
        log.warn({ fd, name }, 'a passed fd is not a listening stream socket (Accept=no, ListenStream=); closed');
        closeFd(fd);
        continue;
      }
      out.push({ fd, name, path: unixSocketPath(fd) });
    } catch (err) {
      log.warn({ fd, name, err: (err as Error).message }, 'cannot use a passed fd');
    }
  }
  received = out;
  byPath.clear();
  for (const s of out) if (s.path) byPath.set(s.path, s);
  return out;
}

/** The activated socket bound to `path`, if the manager passed one (looks only). */
export function activatedSocket(path: string): ActivatedSocket | undefined {
  return byPath.get(resolvePath(path));
}

/** Take the activated socket for `path` (the caller now owns its fd). */
export function takeActivatedSocket(path: string): ActivatedSocket | undefined {
  const key = resolvePath(path);
  const s = byPath.get(key);
  byPath.delete(key);
  return s;
}

/** Passed sockets the configuration did not take: closed, with a warning naming them. */
export function closeUnusedActivated(): ActivatedSocket[] {
  const left = [...byPath.values()];
  for (const s of left) {
    logger({ component: 'systemd' }).warn(
      { fd: s.fd, name: s.name, path: s.path },
      'the service manager passed a socket no VM or control socket is configured at; closed',
    );
    closeFd(s.fd);
  }
  byPath.clear();
  return left;
}

/** Every socket received at start (for the banner). */
export function receivedSockets(): readonly ActivatedSocket[] {
  return received;
}

function resolvePath(p: string): string {
  // getsockname reports the path as bound (absolute for systemd's units); config paths may be relative.
  return p.startsWith('/') || p.startsWith('@') ? p : `${process.cwd()}/${p}`;
}
