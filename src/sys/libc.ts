// The few libc calls the host side needs and Node does not offer (openpty, termios raw mode,
// window size ioctls, poll for a pty's hang-up, mkfifo, dup). Every koffi call lives here so
// the rest of the code stays plain TypeScript. Linux only (struct layouts and ioctl numbers
// are those of Linux on x86_64 and aarch64, which share them).
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');

const c = {
  openpty: libc.func('int openpty(_Out_ int *amaster, _Out_ int *aslave, uint8_t *name, void *termp, void *winp)'),
  tcgetattr: libc.func('int tcgetattr(int fd, uint8_t *termios)'),
  tcsetattr: libc.func('int tcsetattr(int fd, int action, uint8_t *termios)'),
  cfmakeraw: libc.func('void cfmakeraw(uint8_t *termios)'),
  ioctl: libc.func('int ioctl(int fd, unsigned long request, ...)'),
  poll: libc.func('int poll(uint8_t *fds, unsigned long nfds, int timeout)'),
  mkfifo: libc.func('int mkfifo(const char *path, uint32_t mode)'),
  dup: libc.func('int dup(int fd)'),
  close: libc.func('int close(int fd)'),
  strerror: libc.func('const char *strerror(int errnum)'),
  flock: libc.func('int flock(int fd, int operation)'),
  tcflush: libc.func('int tcflush(int fd, int queue)'),
};

const TIOCGWINSZ = 0x5413;
const TIOCSWINSZ = 0x5414;
const FIONREAD = 0x541b;
const LOCK_SH = 1;
const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;
const EWOULDBLOCK = 11;
const TCSANOW = 0;
const POLLHUP = 0x10;
/** sizeof(struct termios) in glibc: 4 flag words, c_line, c_cc[32], 2 speeds (+ padding). */
const TERMIOS_SIZE = 60;
const LFLAG_OFFSET = 12;
const ISIG = 0x1;

/** An OS error carrying errno and the failed call, like Node's own errors. */
export class SysError extends Error {
  constructor(
    readonly syscall: string,
    readonly errno: number,
    detail?: string,
  ) {
    super(`${syscall}${detail ? ` ${detail}` : ''}: ${c.strerror(errno) as string} (errno ${errno})`);
    this.name = 'SysError';
  }
}

function check(ret: number, syscall: string, detail?: string): number {
  if (ret < 0) throw new SysError(syscall, koffi.errno(), detail);
  return ret;
}

export interface Pty {
  master: number;
  slave: number;
  /** /dev/pts/N */
  slavePath: string;
}

/** openpty(3). The caller owns both fds. */
export function openpty(): Pty {
  const master = [0];
  const slave = [0];
  const name = Buffer.alloc(4096);
  check(c.openpty(master, slave, name, null, null) as number, 'openpty');
  const slavePath = name.subarray(0, name.indexOf(0)).toString();
  return { master: master[0]!, slave: slave[0]!, slavePath };
}

/** Terminal attributes as an opaque blob: save one and hand it back to restore the terminal. */
export type Termios = Buffer;

export function tcgetattr(fd: number): Termios {
  const t = Buffer.alloc(TERMIOS_SIZE);
  check(c.tcgetattr(fd, t) as number, 'tcgetattr', `fd ${fd}`);
  return t;
}

export function tcsetattr(fd: number, t: Termios): void {
  check(c.tcsetattr(fd, TCSANOW, t) as number, 'tcsetattr', `fd ${fd}`);
}

/** cfmakeraw(3) applied to the terminal; `keepSignals` leaves ISIG on so ^C still signals. */
export function makeRaw(fd: number, keepSignals = false): void {
  const t = tcgetattr(fd);
  c.cfmakeraw(t);
  if (keepSignals) t.writeUInt32LE(t.readUInt32LE(LFLAG_OFFSET) | ISIG, LFLAG_OFFSET);
  tcsetattr(fd, t);
}

/** Whether the terminal is in canonical (line) mode; lets tests see raw vs cooked. */
export function isCanonical(t: Termios): boolean {
  const ICANON = 0x2;
  return (t.readUInt32LE(LFLAG_OFFSET) & ICANON) !== 0;
}

export interface WinSize {
  cols: number;
  rows: number;
}

export function getWinSize(fd: number): WinSize {
  const ws = Buffer.alloc(8); // struct winsize { rows, cols, xpixel, ypixel } (u16 each)
  check(c.ioctl(fd, TIOCGWINSZ, 'uint8_t *', ws) as number, 'ioctl(TIOCGWINSZ)', `fd ${fd}`);
  return { rows: ws.readUInt16LE(0), cols: ws.readUInt16LE(2) };
}

export function setWinSize(fd: number, size: WinSize): void {
  const ws = Buffer.alloc(8);
  ws.writeUInt16LE(size.rows, 0);
  ws.writeUInt16LE(size.cols, 2);
  check(c.ioctl(fd, TIOCSWINSZ, 'uint8_t *', ws) as number, 'ioctl(TIOCSWINSZ)', `fd ${fd}`);
}

/**
 * Non-blocking check for POLLHUP on one fd. A pty master reports POLLHUP while no process
 * holds the slave open, which is how a pty backend learns that a peer came or went.
 */
export function pollHangup(fd: number): boolean {
  const pfd = Buffer.alloc(8); // struct pollfd { int fd; short events; short revents; }
  pfd.writeInt32LE(fd, 0);
  pfd.writeInt16LE(0, 4); // POLLHUP is always reported, no need to ask for it
  check(c.poll(pfd, 1, 0) as number, 'poll', `fd ${fd}`);
  return (pfd.readInt16LE(6) & POLLHUP) !== 0;
}

/**
 * Bytes waiting to be read in a socket, pipe or pty master (FIONREAD): input the daemon has
 * not read yet. -1 when the fd cannot tell.
 */
export function bytesReadable(fd: number): number {
  const n = Buffer.alloc(4);
  if ((c.ioctl(fd, FIONREAD, 'uint8_t *', n) as number) < 0) return -1;
  return n.readInt32LE(0);
}

/**
 * flock(2) without waiting: true if taken, false if another open file description holds a
 * conflicting lock. `shared` takes LOCK_SH (enough to test for an exclusive holder).
 */
export function tryFlock(fd: number, shared = false): boolean {
  if ((c.flock(fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB) as number) === 0) return true;
  const errno = koffi.errno();
  if (errno === EWOULDBLOCK) return false;
  throw new SysError('flock', errno, `fd ${fd}`);
}

export function unflock(fd: number): void {
  check(c.flock(fd, LOCK_UN) as number, 'flock(LOCK_UN)', `fd ${fd}`);
}

/** tcflush(fd, TCIFLUSH): discard input received but not read (a pty master: what the peer typed). */
export function flushInput(fd: number): void {
  const TCIFLUSH = 0;
  check(c.tcflush(fd, TCIFLUSH) as number, 'tcflush', `fd ${fd}`);
}

export function mkfifo(path: string, mode = 0o600): void {
  check(c.mkfifo(path, mode) as number, 'mkfifo', path);
}

export function dup(fd: number): number {
  return check(c.dup(fd) as number, 'dup', `fd ${fd}`);
}

export function close(fd: number): void {
  check(c.close(fd) as number, 'close', `fd ${fd}`);
}

const getsockopt = libc.func(
  'int getsockopt(int fd, int level, int optname, _Out_ uint8_t *optval, _Inout_ uint32_t *optlen)',
);
const SOL_SOCKET = 1;
const SO_PEERCRED = 17;

/**
 * The peer of a connected unix socket, as the kernel recorded it at connect (SO_PEERCRED:
 * struct ucred { pid_t pid; uid_t uid; gid_t gid; }). Undefined if the fd cannot tell.
 */
export function peerCred(fd: number): { pid: number; uid: number; gid: number } | undefined {
  const buf = Buffer.alloc(12);
  const len = [12];
  if ((getsockopt(fd, SOL_SOCKET, SO_PEERCRED, buf, len) as number) !== 0) return undefined;
  return { pid: buf.readInt32LE(0), uid: buf.readUInt32LE(4), gid: buf.readUInt32LE(8) };
}
