// The daemon's VMs as the web console sees them: for each port, its hub (to attach and
// detach members), its guest-open state, and the VM's console size and resize.
import type { Hub } from '../hub/hub.js';
import type { PortConfig, VmConfig } from '../config/schema.js';
import type { WebPort, WebSource } from './server.js';

/** What the web console needs of a VM (src/vm.ts's Vm has it). */
export interface WebVm {
  readonly id: string;
  readonly config: VmConfig;
  portHubs(): { config: PortConfig; hub: Hub; guestOpen: boolean }[];
  resize(cols: number, rows: number): void;
}

export function vmSource(vms: () => WebVm[]): WebSource {
  return {
    ports: () =>
      vms().flatMap((vm) =>
        vm.portHubs().map(({ config, hub, guestOpen }): WebPort => ({
          vm: vm.id,
          id: config.id,
          ...(config.name !== undefined && { name: config.name }),
          console: config.driver === 'virtconsole',
          guestOpen: () => vm.portHubs().find((p) => p.config.id === config.id)?.guestOpen ?? guestOpen,
          size: () => ({ ...vm.config.consoleSize }),
          resize: (cols, rows) => vm.resize(cols, rows),
          attach: (member) => {
            hub.attach(member);
          },
          detach: (memberId) => hub.detach(memberId),
        })),
      ),
  };
}
