// The QMP shapes of the VM's state: query-chardev's ChardevInfo and query-ports' PortInfo,
// built here from the domain states the VM returns (src/vm.ts knows nothing of QMP).
import type { Chardev } from '../chardev/chardev.js';
import { FileChardev } from '../chardev/file.js';
import { PipeChardev } from '../chardev/pipe.js';
import { PtyChardev } from '../chardev/pty.js';
import { SocketChardev } from '../chardev/socket.js';
import type { VmChardevState, VmPortState } from '../vm.js';
import type { ChardevInfo, PortInfo } from './target.js';

export function chardevInfo(s: VmChardevState): ChardevInfo {
  // QEMU's "frontend-open": a device uses the chardev; for us, it feeds a port.
  return { label: s.id, filename: s.chardev ? qemuFilename(s.chardev) : 'hub', 'frontend-open': s.feedsPort };
}

export function portInfo({ config, stats: s }: VmPortState): PortInfo {
  return {
    id: config.id,
    ...(config.name !== undefined && { name: config.name }),
    nr: config.nr,
    console: s.console,
    'guest-open': s.guestOpen,
    'host-open': s.hostOpen,
    ...(config.chardev !== undefined && { chardev: config.chardev }),
    'bytes-out': s.bytesFromGuest,
    'bytes-in': s.bytesToGuest,
    'input-held': s.pendingToGuest,
    'input-waiting': s.waitingInOs,
    members: s.hub.members.map((m) => ({
      chardev: m.id,
      open: m.connected,
      'bytes-out': m.bytesOut,
      'bytes-in': m.bytesIn,
      drops: m.drops,
    })),
  };
}

/** QEMU's query-chardev `filename`: the backend and its address, e.g. 'unix:/run/c.sock,server=on'. */
function qemuFilename(c: Chardev): string {
  if (c instanceof PtyChardev) return `pty:${c.slavePath}`;
  // QEMU's 'disconnected:' prefix while no peer is connected; the bound port of a port=0 server.
  if (c instanceof SocketChardev) return c.qemuFilename();
  if (c instanceof FileChardev) return `file:${c.config.path}`;
  if (c instanceof PipeChardev) return `pipe:${c.config.path}`;
  return c.backend;
}
