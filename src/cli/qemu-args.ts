// QEMU's side of the connection, for --print-qemu-args and the start-up banner: the
// arguments that give a guest this daemon's device.
import { resolve } from 'node:path';
import { escapeValue } from '../config/keyval.js';
import type { VmConfig } from '../config/schema.js';

export type QemuDeviceName =
  'vhost-user-test-device-pci' | 'vhost-user-device-pci' | 'vhost-user-test-device' | 'vhost-user-device';

export interface QemuArgsOptions {
  /** `vhost-user-test-device-pci` (QEMU >= 10.2, default) or `vhost-user-device-pci` (older QEMU, patched to be user-creatable). */
  device?: QemuDeviceName;
  /** Guest memory size for -m and the memfd backend (default '1G'); vhost-user needs shared guest memory. */
  memory?: string;
  /** Id of QEMU's -chardev for the vhost-user socket (default `vhc-<vm id>`). */
  chardevId?: string;
}

/** Number of virtqueues the front-end must create: rx/tx for port 0, control rx/tx, then rx/tx per further port. */
export function numQueues(vm: VmConfig): number {
  return vm.multiport ? 2 * (vm.maxPorts + 1) : 2;
}

/** QEMU arguments that connect a VM to this daemon's socket for `vm`. */
export function qemuArgs(vm: VmConfig, opts: QemuArgsOptions = {}): string[] {
  const memory = opts.memory ?? '1G';
  const chardevId = opts.chardevId ?? `vhc-${vm.id}`;
  return [
    '-m',
    memory,
    '-object',
    `memory-backend-memfd,id=mem,size=${memory},share=on`,
    '-machine',
    'memory-backend=mem',
    // QEMU runs in its own working directory: give it an absolute path.
    '-chardev',
    `socket,id=${chardevId},path=${escapeValue(resolve(vm.socket))}`,
    '-device',
    `${opts.device ?? 'vhost-user-test-device-pci'},chardev=${chardevId},virtio-id=3,num_vqs=${numQueues(vm)},config_size=12`,
  ];
}

/** qemuArgs as a copy-pasteable shell fragment, one option per line. */
export function formatQemuArgs(args: readonly string[]): string {
  const lines: string[] = [];
  for (let i = 0; i < args.length; i += 2) lines.push(`  ${args[i]} ${shellQuote(args[i + 1] ?? '')}`);
  return lines.join(' \\\n');
}

export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_.,:=/@%+-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}
