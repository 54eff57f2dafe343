// A front-end that vanishes mid-transfer (QEMU killed) and a new one that connects after it:
// the daemon stays up, serves the new one fully, and keeps no fds or memory maps of the old.
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { ConsoleDriver, ConsolePort } from '../frontend/index.js';
import { until } from '../helpers/daemon.js';
import { Vm } from '../helpers/vm.js';

let vm: Vm | undefined;
afterEach(async () => { await vm?.dispose(); vm = undefined; });

const MiB = 1024 * 1024;
const settled = (p: ConsolePort) => p.id === 0 ? p.console : p.name !== undefined;
const GUEST_RAM = 'vhc-test-guest-ram';

/** A guest with port `id` open, its host client connected. */
async function bringUp(v: Vm, id: number): Promise<{ d: ConsoleDriver; p: ConsolePort }> {
  const d = await v.driver();
  await d.waitPorts(3, settled);
  const p = d.port(id);
  await p.open();
  await d.waitFor(() => p.hostOpen, `port ${id} host-open`);
  return { d, p };
}

describe('front-end reconnect', () => {
  it('survives a disconnect mid-transfer, serves a new front-end fully, and frees the old one', async () => {
    vm = await Vm.start();
    const daemon = vm.daemon;
    const fdsIdle = daemon.fdCount();
    const idleTargets = daemon.fdTargets();
    expect(daemon.memfdMaps(GUEST_RAM)).toBe(0);
    const h = await vm.host('c1');

    // First front-end: traffic both ways, then it drops dead in the middle.
    const a = await bringUp(vm, 1);
    expect(daemon.memfdMaps(GUEST_RAM)).toBeGreaterThan(0);
    const big = randomBytes(16 * MiB);
    void a.p.write(big).catch(() => {});
    void h.write(randomBytes(4 * MiB)).catch(() => {});
    await until(() => h.received >= 256 * 1024, 'some guest->host bytes to flow', 10_000);
    await a.d.close(); // no GET_VRING_BASE, no goodbye: the socket just closes

    expect(daemon.alive).toBe(true);
    await until(() => daemon.memfdMaps(GUEST_RAM) === 0, 'the daemon to unmap the old guest memory', 10_000);

    // Second front-end: must be served completely (on port 2, so no bytes of the first
    // session can be in flight on it).
    h.close();
    const h2 = await vm.host('c2');
    const b = await bringUp(vm, 2);
    const p2 = b.p;
    const out = randomBytes(MiB);
    const inb = randomBytes(MiB);
    const [, gotOut, , gotIn] = await Promise.all([p2.write(out), h2.read(out.length), h2.write(inb), p2.read(inb.length)]);
    expect(gotOut.equals(out)).toBe(true);
    expect(gotIn.equals(inb)).toBe(true);
    expect(b.d.problems()).toEqual([]);

    await b.d.close();
    h2.close();
    await until(() => daemon.memfdMaps(GUEST_RAM) === 0, 'the daemon to unmap the second guest memory', 10_000);
    await until(() => daemon.fdCount() === fdsIdle, `daemon fds back to the idle count ${fdsIdle}`, 10_000)
      .catch((e) => { throw new Error(`${(e as Error).message}; now ${daemon.fdCount()}: ${JSON.stringify(kinds(daemon.fdTargets()))} vs idle ${JSON.stringify(kinds(idleTargets))}`); });
    expect(daemon.alive).toBe(true);
  }, 60_000);
});

/** fd kinds and how many of each ('socket', 'anon_inode:[eventfd]', a path). */
function kinds(targets: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of targets) { const k = t.replace(/:\[\d+\]$/, ''); out[k] = (out[k] ?? 0) + 1; }
  return out;
}
