// The start-up banner's endpoint lines: everything a person may want to reach, per VM (its
// chardev sockets, output files and logfile=s; the ptys are listed by the CLI from the live
// chardevs) and for the daemon (control socket, metrics URL).
import type { ChardevSpec, Config, VmConfig } from '../config/schema.js';

/** `where(id)`: a live socket chardev's address ('tcp:localhost:35959'), so that a server on port=0 shows the port it got. */
export function chardevEndpointLines(vm: VmConfig, where?: (id: string) => string | undefined): string[] {
  const out: string[] = [];
  for (const c of vm.chardevs) {
    const t = c.config;
    const who = `vhost-console: chardev '${c.id}'`;
    if (t.backend === 'socket' && t.address.type === 'unix') {
      out.push(`${who}: unix socket ${t.address.path}${t.server ? '' : ' (client)'}`);
    } else if (t.backend === 'socket' && t.address.type === 'tcp') {
      // host defaults to localhost (chardev/registry.ts), not QEMU's all interfaces.
      const live = t.server ? where?.(c.id) : undefined;
      const address = live?.startsWith('tcp:')
        ? live.slice(4)
        : `${t.address.host}:${written(c, 'port', t.address.port)}`;
      out.push(`${who}: tcp ${address}${t.server ? '' : ' (client)'}${t.telnet ? ' (telnet)' : ''}`);
    } else if (t.backend === 'file') {
      out.push(`${who}: file ${t.path}${rotation(c)}`);
    }
    if (t.common.logfile !== undefined) out.push(`${who}: logfile ${t.common.logfile}${rotation(c)}`);
  }
  return out;
}

export function daemonEndpointLines(config: Config, metricsUrl: string | undefined): string[] {
  const out: string[] = [];
  if (config.control) out.push(`vhost-console: control socket ${config.control.path}`);
  if (metricsUrl !== undefined) out.push(`vhost-console: metrics ${metricsUrl}`);
  return out;
}

/** A number as the person wrote it (max-size=1M, not 1048576), else the typed value. */
function written(c: ChardevSpec, key: string, value: number): string {
  return c.options[key] ?? String(value);
}

function rotation(c: ChardevSpec): string {
  const r = c.config.common.rotate;
  return r !== undefined
    ? ` (rotated at ${written(c, 'max-size', r.maxSize)}, ${written(c, 'backups', r.backups)} backups)`
    : '';
}
