// A front-end that vanishes mid-transfer (QEMU killed) and a new one that connects after it:
// the daemon stays up, serves the new one fully, and keeps no fds or memory maps of the old.
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { Req, VhostUserFrontend, type ConsoleDriver, type ConsolePort } from '../frontend/index.js';
import { until } from '../helpers/daemon.js';
import { Vm } from '../helpers/vm.js';

let vm: Vm | undefined;
afterEach(async () => {
  await vm?.dispose();
  vm = undefined;
});

const MiB = 1024 * 1024;
const settled = (p: ConsolePort) => (p.id === 0 ? p.console : p.name !== undefined);
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
    const idle = frontendFds(daemon.fdTargets());
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
    const [, gotOut, , gotIn] = await Promise.all([
      p2.write(out),
      h2.read(out.length),
      h2.write(inb),
      p2.read(inb.length),
    ]);
    expect(gotOut.equals(out)).toBe(true);
    expect(gotIn.equals(inb)).toBe(true);
    expect(b.d.problems()).toEqual([]);

    await b.d.close();
    h2.close();
    await until(() => daemon.memfdMaps(GUEST_RAM) === 0, 'the daemon to unmap the second guest memory', 10_000);
    // The front-end's share of the daemon's fds (everything but the host clients of the
    // socket chardevs, which follow their own peers) is back to what it was before.
    await until(
      () => JSON.stringify(frontendFds(daemon.fdTargets())) === JSON.stringify(idle),
      "the daemon to close the front-ends' fds",
      10_000,
    ).catch((e) => {
      throw new Error(
        `${(e as Error).message}: now ${JSON.stringify(frontendFds(daemon.fdTargets()))}, before ${JSON.stringify(idle)}`,
      );
    });
    expect(daemon.alive).toBe(true);
  }, 60_000);
});

describe('guest reboot on the same connection', () => {
  it.each([
    ['ADD_MEM_REG (memory kept across the reboot)', {}],
    ['SET_MEM_TABLE (sent again at the second start)', { memSlots: false }],
  ] as const)('%s: rings restart fresh, ports come back, no fds pile up', async (_, o) => {
    vm = await Vm.start();
    const daemon = vm.daemon;
    const h = await vm.host('c1');
    const d = await vm.driver(o);
    await d.waitPorts(3, settled);
    let p = d.port(1);
    await p.open();
    await d.waitFor(() => p.hostOpen, 'port 1 host-open');
    const first = randomBytes(200_000);
    await p.write(first);
    expect((await h.read(first.length)).equals(first)).toBe(true);
    const fdsUp = daemon.fdCount();
    const txAvail = d.fe.queues[p.txQueue]!.availIndex;

    const bases = await d.reboot();
    expect(bases[p.txQueue]).toBe(txAvail);
    await d.waitPorts(3, settled);
    expect([...d.ports.values()].map((x) => [x.id, x.name ?? null, x.console])).toEqual([
      [0, null, true],
      [1, 'org.example.port1', false],
      [2, 'org.example.port2', false],
    ]);
    p = d.port(1);
    expect(p.guestOpen).toBe(false);
    await p.open();
    await d.waitFor(() => p.hostOpen, 'port 1 host-open after the reboot');
    const out = randomBytes(300_000);
    const back = randomBytes(300_000);
    const [, gotOut, , gotBack] = await Promise.all([
      p.write(out),
      h.read(out.length),
      h.write(back),
      p.read(back.length),
    ]);
    expect(gotOut.equals(out)).toBe(true);
    expect(gotBack.equals(back)).toBe(true);
    expect(daemon.fdCount()).toBe(fdsUp);
    expect(daemon.memfdMaps(GUEST_RAM)).toBe(1);
    expect(d.problems()).toEqual([]);
  });
});

describe('one front-end at a time', () => {
  it('a second front-end is not served while the first is connected; the first carries on', async () => {
    vm = await Vm.start();
    const h = await vm.host('c1');
    const { d, p } = await bringUp(vm, 1);
    const intruder = VhostUserFrontend.connect({
      socketPath: vm.socket,
      numQueues: vm.numQueues,
      replyTimeoutMs: 1000,
    });
    // Refused at once (closed before or as we send) or left unanswered: either way not served.
    await expect(intruder.request(Req.GET_FEATURES)).rejects.toThrow(/closed|no reply|send failed/);
    await intruder.close();
    const out = randomBytes(100_000);
    const [, got] = await Promise.all([p.write(out), h.read(out.length)]);
    expect(got.equals(out)).toBe(true);
    expect(d.problems()).toEqual([]);
  });
});

/** The daemon's fds by kind ('anon_inode:[eventfd]', 'unix:vm.sock', 'unix:peer', ...), without chardev sockets. */
function frontendFds(targets: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of targets) {
    const k = t.replace(/:\[\d+\]$/, '').replace(/\/tmp\/vhc-it-[^/]+\//, '');
    if (/^unix:c\d+\.sock$/.test(k)) continue;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}
