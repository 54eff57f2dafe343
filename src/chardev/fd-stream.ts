// A Node stream over a pty master fd with non-blocking writes.
//
// Node offers tty.ReadStream for terminals, but libuv opens a pty *master* in blocking-write
// mode (it can only reopen slaves non-blocking), so a write to a peer that does not read
// either blocks the whole event loop or spins in libuv. A libuv pipe handle on the same fd
// behaves like any socket: writes queue and 'drain' follows, reads stop when paused, and
// the peer's last close shows up as an EIO error. Node exposes that handle only through its
// internal binding, which is allow-listed for process.binding(); hence this one module.
import net from 'node:net';

interface PipeHandle {
  open(fd: number): number;
}

const binding = (
  process as unknown as {
    binding(name: string): { Pipe: new (type: number) => PipeHandle; constants: { SOCKET: number } };
  }
).binding('pipe_wrap');

/** Wrap `fd` (which the stream then owns and closes) as a duplex net.Socket. */
export function streamFromFd(fd: number): net.Socket {
  const handle = new binding.Pipe(binding.constants.SOCKET);
  const err = handle.open(fd);
  if (err !== 0) throw new Error(`cannot open fd ${fd} as a stream (libuv error ${err})`);
  return new net.Socket({ handle, readable: true, writable: true } as net.SocketConstructorOpts);
}
