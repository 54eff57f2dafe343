// The socket calls the systemd protocols need and Node does not offer: a datagram to a unix
// socket (sd_notify's NOTIFY_SOCKET; Node has no unix datagram sockets), getsockname() of an
// inherited fd (which path a socket-activated fd is bound to), and close-on-exec. Kept apart
// from libc.ts so the two can change independently; same koffi conventions (Linux, x86_64 and
// aarch64, which share these layouts).
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');

const c = {
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  sendto: libc.func(
    'long sendto(int fd, const uint8_t *buf, unsigned long len, int flags, const uint8_t *addr, uint32_t addrlen)',
  ),
  getsockname: libc.func('int getsockname(int fd, _Out_ uint8_t *addr, _Inout_ uint32_t *addrlen)'),
  getsockopt: libc.func('int getsockopt(int fd, int level, int name, _Out_ int *value, _Inout_ uint32_t *len)'),
  fcntl: libc.func('int fcntl(int fd, int cmd, ...)'),
  close: libc.func('int close(int fd)'),
  strerror: libc.func('const char *strerror(int errnum)'),
};

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_NOSIGNAL = 0x4000;
const SOL_SOCKET = 1;
const SO_TYPE = 3;
const SO_ACCEPTCONN = 30;
const F_GETFD = 1;
const F_SETFD = 2;
const FD_CLOEXEC = 1;
/** offsetof(struct sockaddr_un, sun_path) */
const SUN_PATH = 2;
const SUN_PATH_LEN = 108;

function fail(call: string, detail: string): never {
  const errno = koffi.errno();
  throw new Error(`${call} ${detail}: ${c.strerror(errno) as string} (errno ${errno})`);
}

/**
 * A sockaddr_un for `path`; a leading '@' names an abstract socket (as systemd writes them in
 * NOTIFY_SOCKET), which has no terminating NUL in its length.
 */
function sockaddrUn(path: string): Buffer {
  const abstract = path.startsWith('@');
  const name = Buffer.from(abstract ? `\0${path.slice(1)}` : path);
  if (name.length === 0 || name.length >= SUN_PATH_LEN)
    throw new Error(`unix socket address '${path}': length ${name.length} is not in 1..${SUN_PATH_LEN - 1}`);
  const addr = Buffer.alloc(SUN_PATH + name.length + (abstract ? 0 : 1));
  addr.writeUInt16LE(AF_UNIX, 0);
  name.copy(addr, SUN_PATH);
  return addr;
}

/** Send one datagram to the unix datagram socket at `path` (a fresh socket each time, as sd_notify does). */
export function sendDatagram(path: string, data: Buffer): void {
  const addr = sockaddrUn(path);
  const fd = c.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0) as number;
  if (fd < 0) fail('socket', '(AF_UNIX, SOCK_DGRAM)');
  try {
    const n = Number(c.sendto(fd, data, data.length, MSG_NOSIGNAL, addr, addr.length));
    if (n < 0) fail('sendto', `'${path}'`);
  } finally {
    c.close(fd);
  }
}

const SOCK_NONBLOCK = 0o4000;
const MSG_DONTWAIT = 0x40;

/** An unbound, non-blocking unix datagram socket for sendDatagramTo (close it with closeFd). */
export function openDatagramSocket(): number {
  const fd = c.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0) as number;
  if (fd < 0) fail('socket', '(AF_UNIX, SOCK_DGRAM)');
  return fd;
}

/**
 * One datagram from `fd` to the socket at `path`, never blocking. Returns 0 when sent, or the
 * errno (EAGAIN: the receiver's queue is full; ENOENT/ECONNREFUSED: nobody listens).
 */
export function sendDatagramTo(fd: number, path: string, data: Buffer): number {
  const addr = sockaddrUn(path);
  const n = Number(c.sendto(fd, data, data.length, MSG_NOSIGNAL | MSG_DONTWAIT, addr, addr.length));
  return n < 0 ? koffi.errno() : 0;
}

export function errnoText(errno: number): string {
  return `${c.strerror(errno) as string} (errno ${errno})`;
}

/** The path a unix socket fd is bound to ('' if unnamed or not AF_UNIX; '@name' if abstract). */
export function unixSocketPath(fd: number): string {
  const addr = Buffer.alloc(SUN_PATH + SUN_PATH_LEN);
  const len = [addr.length];
  if ((c.getsockname(fd, addr, len) as number) < 0) fail('getsockname', `fd ${fd}`);
  const n = Math.min(len[0]!, addr.length);
  if (n <= SUN_PATH || addr.readUInt16LE(0) !== AF_UNIX) return '';
  const name = addr.subarray(SUN_PATH, n);
  if (name[0] === 0) return `@${name.subarray(1).toString()}`;
  const nul = name.indexOf(0);
  return name.subarray(0, nul < 0 ? name.length : nul).toString();
}

/** A listening stream socket (what socket activation must hand us for a server socket)? */
export function isListeningStream(fd: number): boolean {
  const v = [0];
  const len = [4];
  if ((c.getsockopt(fd, SOL_SOCKET, SO_TYPE, v, len) as number) < 0 || v[0] !== SOCK_STREAM) return false;
  const acc = [0];
  if ((c.getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, acc, [4]) as number) < 0) return false;
  return acc[0] !== 0;
}

/** Set FD_CLOEXEC (inherited fds come without it). */
export function setCloexec(fd: number): void {
  const flags = c.fcntl(fd, F_GETFD, 'int', 0) as number;
  if (flags < 0 || (c.fcntl(fd, F_SETFD, 'int', flags | FD_CLOEXEC) as number) < 0) fail('fcntl(F_SETFD)', `fd ${fd}`);
}

export function closeFd(fd: number): void {
  c.close(fd);
}
