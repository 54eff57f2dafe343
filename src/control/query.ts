// The QMP shapes of the VM's state: query-chardev's ChardevInfo and query-ports' PortInfo,
// built here from the domain states the VM returns (src/vm.ts knows nothing of QMP).
import type { Chardev } from '../chardev/chardev.js';
import { PtyChardev } from '../chardev/pty.js';
import { SocketChardev } from '../chardev/socket.js';
import type { ChardevSpec } from '../config/schema.js';
import { parseBool } from '../limits.js';
import type { VmChardevState, VmPortState } from '../vm.js';
import type { ChardevInfo, PortInfo } from './target.js';

export function chardevInfo(s: VmChardevState): ChardevInfo {
  // QEMU's "frontend-open": a device uses the chardev; for us, it feeds a port.
  return { label: s.id, filename: s.chardev ? qemuFilename(s.config, s.chardev) : 'hub', 'frontend-open': s.feedsPort };
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
function qemuFilename(cfg: ChardevSpec | undefined, c: Chardev): string {
  const o = cfg?.options ?? {};
  const server = o.server !== undefined && parseBool(o.server) === true ? ',server=on' : '';
  switch (c.backend) {
    case 'pty':
      return `pty:${c instanceof PtyChardev ? c.slavePath : ''}`;
    case 'socket':
      // QEMU's 'disconnected:' prefix while no peer is connected; the bound port of a port=0 server.
      return c instanceof SocketChardev
        ? c.qemuFilename()
        : o.path !== undefined
          ? `unix:${o.path}${server}`
          : `tcp:${o.host ?? ''}:${o.port ?? ''}${server}`;
    case 'file':
      return `file:${o.path ?? ''}`;
    case 'pipe':
      return `pipe:${o.path ?? ''}`;
    default:
      return c.backend;
  }
}
