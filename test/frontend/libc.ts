// Raw libc calls the test front-end needs and Node cannot make: memfd/mmap guest memory,
// eventfds, a unix socket that can pass fds (SCM_RIGHTS) and poll(). All koffi use of the
// test front-end lives here, apart from `koffi.view` in memory.ts.
import koffi from 'koffi';

const lib = koffi.load('libc.so.6');

const c = {
  memfd_create: lib.func('int memfd_create(const char *name, unsigned int flags)'),
  ftruncate: lib.func('int ftruncate(int fd, int64_t length)'),
  mmap: lib.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)'),
  eventfd: lib.func('int eventfd(unsigned int initval, int flags)'),
  read: lib.func('intptr_t read(int fd, _Out_ void *buf, size_t count)'),
  write: lib.func('intptr_t write(int fd, const void *buf, size_t count)'),
  close: lib.func('int close(int fd)'),
  poll: lib.func('int poll(_Inout_ void *fds, uint64_t nfds, int timeout)'),
  socket: lib.func('int socket(int domain, int type, int protocol)'),
  connect: lib.func('int connect(int fd, const void *addr, uint32_t addrlen)'),
  socketpair: lib.func('int socketpair(int domain, int type, int protocol, _Out_ int *sv)'),
  sendmsg: lib.func('intptr_t sendmsg(int fd, void *msg, int flags)'),
  shutdown: lib.func('int shutdown(int fd, int how)'),
  malloc: lib.func('void *malloc(size_t size)'),
  free: lib.func('void free(void *ptr)'),
  errno_location: lib.func('int *__errno_location(void)'),
};

export const O_CLOEXEC = 0x80000;
export const EFD_NONBLOCK = 0x800;
export const EFD_CLOEXEC = 0x80000;
export const MFD_CLOEXEC = 1;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 1;
export const AF_UNIX = 1;
export const SOCK_STREAM = 1;
export const SOCK_CLOEXEC = 0x80000;
export const POLLIN = 1;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const EINTR = 4;
const EAGAIN = 11;

export function errno(): number {
  return koffi.decode(c.errno_location(), 'int') as number;
}

export class SysError extends Error {
  constructor(
    readonly call: string,
    readonly errno: number,
  ) {
    super(`${call} failed: errno ${errno}`);
  }
}

function check(call: string, r: number | bigint): number {
  const n = Number(r);
  if (n < 0) throw new SysError(call, errno());
  return n;
}

export function memfdCreate(name: string): number {
  return check('memfd_create', c.memfd_create(name, MFD_CLOEXEC));
}

export function ftruncate(fd: number, length: number): void {
  check('ftruncate', c.ftruncate(fd, length));
}

/** Maps `length` bytes of `fd` shared read/write; returns the address (a BigInt). */
export function mmapShared(fd: number, length: number, offset = 0): bigint {
  const p = c.mmap(null, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, offset) as bigint;
  if (p === -1n || p === 0xffffffffffffffffn) throw new SysError('mmap', errno());
  return p;
}

/**
 * Replaces the pages at [addr, addr+length) with fresh anonymous zero pages (MAP_FIXED): the
 * old mapping (and its hold on a memfd) goes away, but the addresses stay valid.
 */
export function remapAnonymous(addr: bigint, length: number): void {
  const MAP_PRIVATE = 2,
    MAP_FIXED = 0x10,
    MAP_ANONYMOUS = 0x20,
    MAP_NORESERVE = 0x4000;
  const p = c.mmap(
    addr,
    length,
    PROT_READ | PROT_WRITE,
    MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS | MAP_NORESERVE,
    -1,
    0,
  ) as bigint;
  if (p !== addr) throw new SysError('mmap(MAP_FIXED)', errno());
}

export function eventfd(flags = EFD_NONBLOCK | EFD_CLOEXEC): number {
  return check('eventfd', c.eventfd(0, flags));
}

const one = new BigUint64Array([1n]);
const counter = new BigUint64Array(1);

/** Adds 1 to an eventfd's counter (a kick or a call). */
export function eventfdSignal(fd: number): void {
  check('write(eventfd)', c.write(fd, one, 8));
}

/** Reads and clears a non-blocking eventfd's counter; 0 if it was not signalled. */
export function eventfdDrain(fd: number): number {
  const r = Number(c.read(fd, counter, 8));
  if (r < 0) {
    const e = errno();
    if (e === EAGAIN) return 0;
    throw new SysError('read(eventfd)', e);
  }
  return Number(counter[0]);
}

export function close(fd: number): void {
  c.close(fd);
}

/** One poll() over `fds`; returns the revents per fd. `timeoutMs` 0 = just look. */
export function pollSync(fds: readonly number[], timeoutMs: number): number[] {
  const pfd = pollfds(fds);
  const r = Number(c.poll(pfd, fds.length, timeoutMs));
  if (r < 0 && errno() !== EINTR) throw new SysError('poll', errno());
  return fds.map((_, i) => pfd[i * 2 + 1]! >>> 16);
}

/** poll() on a libuv worker thread; resolves with the revents per fd. */
export function pollAsync(fds: readonly number[], timeoutMs: number): Promise<number[]> {
  const pfd = pollfds(fds);
  return new Promise((resolve, reject) => {
    // koffi hands the async call's failure as an Error.
    c.poll.async(pfd, fds.length, timeoutMs, (err: Error | null, r: number) => {
      if (err) reject(err);
      else if (r < 0)
        resolve(fds.map(() => 0)); // EINTR: the caller just polls again
      else resolve(fds.map((_, i) => pfd[i * 2 + 1]! >>> 16));
    });
  });
}

// struct pollfd { int fd; short events; short revents; } as two int32s (little endian).
function pollfds(fds: readonly number[]): Int32Array {
  const pfd = new Int32Array(fds.length * 2);
  fds.forEach((fd, i) => {
    pfd[i * 2] = fd;
    pfd[i * 2 + 1] = POLLIN;
  });
  return pfd;
}

/** A connected AF_UNIX stream socket (blocking connect; a local socket answers at once). */
export function connectUnix(path: string): number {
  const fd = check('socket', c.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const addr = Buffer.alloc(110);
  addr.writeUInt16LE(AF_UNIX, 0);
  const p = Buffer.from(path);
  if (p.length > 107) throw new Error(`socket path too long: ${path}`);
  p.copy(addr, 2);
  if (Number(c.connect(fd, addr, 2 + p.length + 1)) < 0) {
    const e = errno();
    c.close(fd);
    throw new SysError(`connect(${path})`, e);
  }
  return fd;
}

/** Half-closes a socket for writing: the peer reads EOF, we can still read its answer. */
export function shutdownWrite(fd: number): void {
  check('shutdown', c.shutdown(fd, 1 /* SHUT_WR */));
}

export function socketpair(): [number, number] {
  const sv = [0, 0];
  check('socketpair', c.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
  return [sv[0]!, sv[1]!];
}

// sendmsg needs a struct msghdr whose pointers point at native memory, so messages are laid
// out in one malloc'd scratch area: msghdr @0 (56 bytes), iovec @64, cmsg @96, data @256.
let scratch: { ptr: bigint; size: number; bytes: Uint8Array; dv: DataView } | undefined;

function scratchFor(len: number) {
  const need = 256 + len;
  if (!scratch || scratch.size < need) {
    if (scratch) c.free(scratch.ptr);
    const size = Math.max(need, 64 * 1024);
    const ptr = c.malloc(size) as bigint;
    const bytes = new Uint8Array(koffi.view(ptr, size));
    scratch = { ptr, size, bytes, dv: new DataView(bytes.buffer) };
  }
  return scratch;
}

const MAX_FDS = 32;

/**
 * Sends `data` in one sendmsg(), with `fds` as SCM_RIGHTS ancillary data. The socket may be
 * non-blocking (Node reads it too): a full socket buffer is waited out with poll().
 */
export function sendWithFds(sock: number, data: Uint8Array, fds: readonly number[] = []): void {
  if (fds.length > MAX_FDS) throw new Error(`too many fds: ${fds.length}`);
  const s = scratchFor(data.length);
  const { dv, ptr } = s;
  s.bytes.fill(0, 0, 256);
  s.bytes.set(data, 256);
  const cmsgLen = 16 + 4 * fds.length;
  const cmsgSpace = 16 + ((4 * fds.length + 7) & ~7);
  dv.setBigUint64(16, ptr + 64n, true); // msg_iov
  dv.setBigUint64(24, 1n, true); // msg_iovlen
  if (fds.length > 0) {
    dv.setBigUint64(32, ptr + 96n, true); // msg_control
    dv.setBigUint64(40, BigInt(cmsgSpace), true); // msg_controllen
    dv.setBigUint64(96, BigInt(cmsgLen), true);
    dv.setInt32(104, SOL_SOCKET, true);
    dv.setInt32(108, SCM_RIGHTS, true);
    fds.forEach((fd, i) => dv.setInt32(112 + 4 * i, fd, true));
  }
  let sent = 0;
  while (sent < data.length || (sent === 0 && data.length === 0)) {
    dv.setBigUint64(64, ptr + 256n + BigInt(sent), true); // iov_base
    dv.setBigUint64(72, BigInt(data.length - sent), true); // iov_len
    const r = Number(c.sendmsg(sock, ptr, 0x4000 /* MSG_NOSIGNAL */));
    if (r < 0) {
      const e = errno();
      if (e === EAGAIN) {
        pollOut(sock);
        continue;
      }
      if (e === EINTR) continue;
      throw new SysError('sendmsg', e);
    }
    sent += r;
    // Ancillary data goes with the first byte only.
    dv.setBigUint64(32, 0n, true);
    dv.setBigUint64(40, 0n, true);
    if (data.length === 0) break;
  }
}

function pollOut(fd: number): void {
  const pfd = new Int32Array([fd, 4 /* POLLOUT */]);
  c.poll(pfd, 1, 1000);
}
