// Paths the daemon creates in the file system (unix sockets, pty links, lock files, output
// files), and the rules that keep it from destroying anything it does not own:
//
//  - It removes only files it created itself, in this process: every creation is recorded
//    (device and inode), and removal checks that the file at the path is still that one.
//  - A path that exists and is not a socket (or, for a pty link, not a link left by an earlier
//    run) is refused and left untouched.
//  - A socket another live process serves is refused and left untouched, detected without
//    connecting to it (a connection would show up at the other process as a client, an event,
//    a log line): another vhost-console holds an flock(2) on `PATH.lock` beside each socket
//    and pty link it serves; any other program's listening socket shows in /proc/net/unix.
//  - Only a stale socket (nobody holds its lock, nobody listens on it) is replaced.
//
// check*() functions only look (no file is created, opened for writing, locked or removed):
// they back `vhost-console --check`, `--print-qemu-args`, and the checks the daemon runs
// before it opens anything. claim*() take the path for good and return a Claim whose
// release() gives back exactly what was taken.
import fs from 'node:fs';
import { dirname, resolve } from 'node:path';
import * as libc from './libc.js';

/** A refusal naming who wanted the path and why; nothing was touched. */
export class PathError extends Error {
  constructor(
    message: string,
    readonly path: string,
  ) {
    super(message);
    this.name = 'PathError';
  }
}

/** sizeof(sockaddr_un.sun_path) - 1: the longest unix socket path bind() takes. */
const MAX_SOCKET_PATH = 107;

// --- what this process created ------------------------------------------------------------

const created = new Map<string, { dev: number; ino: number }>();

/** Record that this process just created `path` (call right after creating it). */
export function recordCreated(path: string): void {
  const st = fs.lstatSync(path, { throwIfNoEntry: false });
  if (st) created.set(resolve(path), { dev: st.dev, ino: st.ino });
}

/** Whether the file now at `path` is one this process created (and has not removed). */
export function createdByUs(path: string): boolean {
  const rec = created.get(resolve(path));
  if (rec === undefined) return false;
  const st = fs.lstatSync(path, { throwIfNoEntry: false });
  return st !== undefined && st.dev === rec.dev && st.ino === rec.ino;
}

/**
 * Remove `path` if the file there is the one this process created; anything else (someone
 * replaced it, or it was never ours) is left alone. Returns whether it removed it.
 */
export function removeIfOurs(path: string): boolean {
  const ours = createdByUs(path);
  created.delete(resolve(path));
  if (!ours) return false;
  try {
    fs.unlinkSync(path);
    return true;
  } catch {
    return false;
  }
}

// --- lock files ---------------------------------------------------------------------------

export function lockPathOf(path: string): string {
  return `${path}.lock`;
}

/** Whether another process holds the lock beside `path`. Looks only: creates nothing. */
function lockHeld(path: string, who: string): boolean {
  const lockPath = lockPathOf(path);
  const st = fs.lstatSync(lockPath, { throwIfNoEntry: false });
  if (st === undefined) return false;
  if (!st.isFile()) throw new PathError(`${who}: lock file '${lockPath}' exists and is not a regular file`, lockPath);
  let fd: number;
  try {
    fd = fs.openSync(lockPath, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (err) {
    throw new PathError(`${who}: cannot read lock file '${lockPath}': ${(err as Error).message}`, lockPath);
  }
  try {
    // A shared lock is refused exactly while another process holds the exclusive one.
    if (!libc.tryFlock(fd, true)) return true;
    libc.unflock(fd);
    return false;
  } finally {
    fs.closeSync(fd);
  }
}

interface Lock {
  fd: number;
  path: string;
}

function takeLock(path: string, who: string): Lock {
  const lockPath = lockPathOf(path);
  const { O_RDWR, O_RDONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
  let fd: number;
  try {
    fd = fs.openSync(lockPath, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    recordCreated(lockPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new PathError(`${who}: cannot create lock file '${lockPath}': ${(err as Error).message}`, lockPath);
    }
    // Left by an earlier run (or held by a live daemon): use it as it is, read-only.
    if (!fs.lstatSync(lockPath).isFile())
      throw new PathError(`${who}: lock file '${lockPath}' exists and is not a regular file`, lockPath);
    try {
      fd = fs.openSync(lockPath, O_RDONLY | O_NOFOLLOW);
    } catch (err2) {
      throw new PathError(`${who}: cannot open lock file '${lockPath}': ${(err2 as Error).message}`, lockPath);
    }
  }
  if (!libc.tryFlock(fd)) {
    fs.closeSync(fd);
    throw new PathError(`${who}: '${path}' is in use by another vhost-console (it holds '${lockPath}')`, path);
  }
  return { fd, path: lockPath };
}

function dropLock(lock: Lock): void {
  // Removed while still locked, and only if this process created it.
  removeIfOurs(lock.path);
  fs.closeSync(lock.fd);
}

// --- live sockets -------------------------------------------------------------------------

const SO_ACCEPTCON = 0x10000;

/** Paths of listening unix sockets in this network namespace, as bound (relative or absolute). */
function listeningSocketPaths(): string[] {
  let text: string;
  try {
    text = fs.readFileSync('/proc/net/unix', 'utf8');
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const line of text.split('\n').slice(1)) {
    // Num RefCount Protocol Flags Type St Inode Path
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const path = f.slice(7).join(' ');
    if (path.startsWith('@')) continue; // abstract
    if ((parseInt(f[3]!, 16) & SO_ACCEPTCON) !== 0) out.push(path);
  }
  return out;
}

/**
 * Whether a live process listens on a socket bound to `path`. A relative path in
 * /proc/net/unix is relative to its binder's working directory, unknown here: any absolute
 * path ending in it counts (refusing a stale socket is safer than taking a live one).
 */
function servedByAnother(path: string): boolean {
  const abs = resolve(path);
  return listeningSocketPaths().some((p) =>
    p.startsWith('/') ? resolve(p) === abs : abs.endsWith(`/${p.replace(/^(\.\/)+/, '')}`),
  );
}

// --- the checks ---------------------------------------------------------------------------

function checkDirectory(path: string, who: string): void {
  const dir = dirname(resolve(path));
  const st = fs.statSync(dir, { throwIfNoEntry: false });
  if (st === undefined) throw new PathError(`${who}: directory '${dirname(path)}' of '${path}' does not exist`, path);
  if (!st.isDirectory()) throw new PathError(`${who}: '${dirname(path)}' (of '${path}') is not a directory`, path);
  try {
    fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
  } catch {
    throw new PathError(`${who}: cannot create files in '${dirname(path)}' (permission denied)`, path);
  }
}

/**
 * Can a unix server socket be made at `path`? Throws PathError if not; returns whether a
 * stale socket is there (to be replaced). Looks only.
 */
export function checkSocketPath(path: string, who: string, opts: { lockedByUs?: boolean } = {}): { stale: boolean } {
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    throw new PathError(
      `${who}: socket path '${path}' is ${Buffer.byteLength(path)} bytes long; unix sockets take at most ${MAX_SOCKET_PATH}`,
      path,
    );
  }
  checkDirectory(path, who);
  const st = fs.lstatSync(path, { throwIfNoEntry: false });
  if (st !== undefined && !st.isSocket())
    throw new PathError(`${who}: path '${path}' exists and is not a socket; it is left untouched`, path);
  if (!opts.lockedByUs && lockHeld(path, who))
    throw new PathError(`${who}: '${path}' is in use by another vhost-console (it holds '${lockPathOf(path)}')`, path);
  if (st !== undefined && servedByAnother(path)) {
    throw new PathError(
      `${who}: socket '${path}' is in use by another process (a listening socket is bound to it; see 'ss -xlp'); it is left untouched`,
      path,
    );
  }
  return { stale: st !== undefined };
}

/** A pty link's target as an earlier run left it: /dev/pts/N. */
const PTY_TARGET = /^\/dev\/pts\/\d+$/;

/** Can a pty link be made at `path`? Throws PathError if not. Looks only. */
export function checkLinkPath(path: string, who: string, opts: { lockedByUs?: boolean } = {}): { stale: boolean } {
  checkDirectory(path, who);
  const st = fs.lstatSync(path, { throwIfNoEntry: false });
  if (!opts.lockedByUs && lockHeld(path, who))
    throw new PathError(`${who}: '${path}' is in use by another vhost-console (it holds '${lockPathOf(path)}')`, path);
  if (st === undefined) return { stale: false };
  if (!st.isSymbolicLink())
    throw new PathError(`${who}: path '${path}' exists and is not a symlink; it is left untouched`, path);
  const target = fs.readlinkSync(path);
  if (!PTY_TARGET.test(target))
    throw new PathError(
      `${who}: path '${path}' is a symlink to '${target}', not a pty link left by an earlier run; it is left untouched`,
      path,
    );
  if (fs.existsSync(target)) {
    throw new PathError(
      `${who}: path '${path}' links to '${target}', a terminal that exists (another program's pty?); it is left untouched`,
      path,
    );
  }
  return { stale: true };
}

/** A FIFO the pipe backend will open (it never creates one). Looks only. */
export function checkFifo(path: string, who: string): void {
  const st = fs.statSync(path, { throwIfNoEntry: false });
  if (st === undefined) throw new PathError(`${who}: FIFO '${path}' does not exist (create it with mkfifo)`, path);
  if (!st.isFIFO()) throw new PathError(`${who}: path '${path}' is not a FIFO`, path);
  try {
    fs.accessSync(path, fs.constants.R_OK | fs.constants.W_OK);
  } catch {
    throw new PathError(`${who}: FIFO '${path}': permission denied`, path);
  }
}

/** A file to write (a `file` backend's output, a `logfile=`). Looks only. */
export function checkOutputFile(path: string, who: string): void {
  const st = fs.statSync(path, { throwIfNoEntry: false });
  if (st === undefined) {
    checkDirectory(path, who);
    return;
  }
  if (st.isDirectory()) throw new PathError(`${who}: '${path}' is a directory`, path);
  try {
    fs.accessSync(path, fs.constants.W_OK);
  } catch {
    throw new PathError(`${who}: cannot write '${path}' (permission denied)`, path);
  }
}

/** A file to read (`input-path=`). Looks only. */
export function checkInputFile(path: string, who: string): void {
  const st = fs.statSync(path, { throwIfNoEntry: false });
  if (st === undefined) throw new PathError(`${who}: '${path}' does not exist`, path);
  if (st.isDirectory()) throw new PathError(`${who}: '${path}' is a directory`, path);
  try {
    fs.accessSync(path, fs.constants.R_OK);
  } catch {
    throw new PathError(`${who}: cannot read '${path}' (permission denied)`, path);
  }
}

/** A unix socket a client chardev connects to: something must listen there. Looks only. */
export function checkClientSocket(path: string, who: string): void {
  const st = fs.lstatSync(path, { throwIfNoEntry: false });
  if (st === undefined) throw new PathError(`${who}: socket '${path}' does not exist (nothing to connect to)`, path);
  if (!st.isSocket()) throw new PathError(`${who}: path '${path}' is not a socket`, path);
}

// --- claims -------------------------------------------------------------------------------

/** A path taken for this process: the lock beside it held, a stale predecessor removed. */
export class Claim {
  #lock: Lock | undefined;

  constructor(
    readonly path: string,
    lock: Lock,
  ) {
    this.#lock = lock;
  }

  /** The file the claim was for now exists, made by us: record it so release() removes it. */
  created(): void {
    recordCreated(this.path);
  }

  /** Remove the file if it is still the one we made, then the lock (if we created it). */
  release(): void {
    removeIfOurs(this.path);
    if (this.#lock) dropLock(this.#lock);
    this.#lock = undefined;
  }
}

type PathCheck = (path: string, who: string, opts?: { lockedByUs?: boolean }) => { stale: boolean };

function claim(path: string, who: string, check: PathCheck): Claim {
  check(path, who);
  const lock = takeLock(path, who);
  try {
    // Checked again under our lock: another process may have come meanwhile.
    const { stale } = check(path, who, { lockedByUs: true });
    if (stale) fs.unlinkSync(path);
  } catch (err) {
    dropLock(lock);
    throw err;
  }
  return new Claim(path, lock);
}

/** Take `path` for a unix server socket (see checkSocketPath); bind after this, then created(). */
export function claimSocketPath(path: string, who: string): Claim {
  return claim(path, who, checkSocketPath);
}

/** Take `path` for a pty link (see checkLinkPath); make the link after this, then created(). */
export function claimLinkPath(path: string, who: string): Claim {
  return claim(path, who, checkLinkPath);
}

// --- output files -------------------------------------------------------------------------

/**
 * Open a file for writing (created if absent, recorded as ours then; truncated unless
 * `append`, as QEMU's file backend and logfile= do). `created` says whether this call made
 * it, so that a start-up that fails later can remove exactly that file.
 */
export function openOutput(path: string, append: boolean, mode = 0o640): { fd: number; created: boolean } {
  const { O_WRONLY, O_CREAT, O_EXCL, O_APPEND, O_TRUNC } = fs.constants;
  const base = O_WRONLY | (append ? O_APPEND : 0);
  try {
    const fd = fs.openSync(path, base | O_CREAT | O_EXCL, mode);
    recordCreated(path);
    return { fd, created: true };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return { fd: fs.openSync(path, base | (append ? 0 : O_TRUNC)), created: false };
}
