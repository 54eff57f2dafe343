// QEMU's chr_write contract on top of a hub, for tests that replay QEMU's own scenarios: a
// write takes all of `data`, or nothing (0) while a lossless member is behind, and
// `writable(hub)` resolves when it can take more. The daemon never needs it: a port gives the
// hub what the guest already sent (Hub.output) and watches 'output-blocked' instead.
import { listen } from '../../src/events.js';
import type { Hub } from '../../src/hub/hub.js';

export function chrWrite(hub: Hub, data: Uint8Array): number {
  if (hub.outputBlocked) return 0;
  hub.output(data);
  return data.length;
}

/** Resolves when the hub's output is unblocked (all lossless members caught up). */
export function writable(hub: Hub): Promise<void> {
  return new Promise((resolve) => {
    const off = listen(hub, 'output-blocked', (blocked) => {
      if (blocked) return;
      off();
      resolve();
    });
  });
}
