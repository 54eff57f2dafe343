// The start-up banner's endpoint lines: everything a person may want to reach, per VM (its
// chardev sockets, output files and logfile=s; the ptys are listed by the CLI from the live
// chardevs) and for the daemon (control socket, metrics URL).
import { parseBool } from '../config/keyval.js';
import type { Config, VmConfig } from '../config/schema.js';

/** `where(id)`: a live socket chardev's address ('tcp:localhost:35959'), so that a server on port=0 shows the port it got. */
export function chardevEndpointLines(vm: VmConfig, where?: (id: string) => string | undefined): string[] {
  const out: string[] = [];
  for (const c of vm.chardevs) {
    const o = c.options;
    const who = `vhost-console: chardev '${c.id}'`;
    if (c.backend === 'socket' && o.path !== undefined) {
      out.push(`${who}: unix socket ${o.path}${server(o) ? '' : ' (client)'}`);
    } else if (c.backend === 'socket' && o.port !== undefined) {
      // host defaults to localhost (chardev/registry.ts), not QEMU's all interfaces.
      const live = server(o) ? where?.(c.id) : undefined;
      const address = live?.startsWith('tcp:') ? live.slice(4) : `${o.host ?? 'localhost'}:${o.port}`;
      out.push(
        `${who}: tcp ${address}${server(o) ? '' : ' (client)'}${o.telnet !== undefined && parseBool(o.telnet) === true ? ' (telnet)' : ''}`,
      );
    } else if (c.backend === 'file' && o.path !== undefined) {
      out.push(`${who}: file ${o.path}${rotation(o)}`);
    }
    if (o.logfile !== undefined) out.push(`${who}: logfile ${o.logfile}${rotation(o)}`);
  }
  return out;
}

export function daemonEndpointLines(config: Config, metricsUrl: string | undefined): string[] {
  const out: string[] = [];
  if (config.control) out.push(`vhost-console: control socket ${config.control.path}`);
  if (metricsUrl !== undefined) out.push(`vhost-console: metrics ${metricsUrl}`);
  return out;
}

function server(o: Record<string, string>): boolean {
  return o.server !== undefined && parseBool(o.server) === true;
}

function rotation(o: Record<string, string>): string {
  return o['max-size'] !== undefined ? ` (rotated at ${o['max-size']}, ${o.backups ?? '3'} backups)` : '';
}
