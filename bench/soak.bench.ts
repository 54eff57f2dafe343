// Soak: SOAK_CYCLES (default 1000) front-end sessions against ONE daemon, each a connect,
// QEMU's negotiation and start, Linux's console handshake, data both ways on a named port,
// then an abrupt disconnect (the socket closed with no vhost_dev_stop, as when QEMU is
// killed); every third session disconnects in the middle of a guest write. Before and after,
// the daemon's open fds (/proc/PID/fd, by kind) and its guest-memory mappings (memfd entries
// of /proc/PID/maps) are counted: they must be equal. RSS growth is reported, not asserted.
// Run: npm run bench:soak   (SOAK_CYCLES=200 for a shorter run; skipped by `npm run bench`)
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { ConsoleDriver } from '../test/frontend/index.js';
import { until } from '../test/helpers/daemon.js';
import { Vm } from '../test/helpers/vm.js';

const CYCLES = Number(process.env.SOAK_CYCLES ?? 1000);
const QUEUE_SIZES = [64, 256, 1024]; // QEMU 10.2's default, the test front-end's, QEMU 10.0's

function rssKiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

/** The daemon's fds by kind (unix:bound path / unix:peer, anon_inode:[eventfd], /dev/ptmx, ...). */
function fdKinds(vm: Vm): Map<string, number> {
  const m = new Map<string, number>();
  for (const t of vm.daemon.fdTargets()) {
    const k = t.replace(/\[\d+\]$/, '');
    m.set(k, (m.get(k) ?? 0) + 1);
  }
  return m;
}

const show = (m: Map<string, number>) => [...m].map(([k, n]) => `${k} x${n}`).join(', ');

// Skipped unless VHC_SOAK=1 (npm run bench:soak sets it): too long for `npm run bench`.
it.runIf(process.env.VHC_SOAK === '1')(
  `soak (npm run bench:soak): ${CYCLES} connect/negotiate/transfer/abrupt-disconnect cycles, no fd or mapping left behind`,
  async () => {
    const vm = await Vm.start({ maxPorts: 4 });
    // The host side of port 1: a plain client of its socket chardev, counting what arrives.
    const host = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.createConnection(vm.chardevPath('c1'), () => resolve(s)).once('error', reject);
    });
    let hostBytes = 0;
    host.on('data', (d: Buffer) => {
      hostBytes += d.length;
    });
    const pid = vm.daemon.pid;
    try {
      await until(() => vm.daemon.logs().some((l) => /listening/.test(String(l.msg))), 'daemon listening');
      // Baseline once the daemon holds the host client's connection (listening socket + accepted one).
      await until(() => fdKinds(vm).get(`unix:${vm.chardevPath('c1')}`) === 2, 'host client accepted');
      const fdsBefore = fdKinds(vm);
      const mapsBefore = vm.daemon.memfdMaps();
      const rssBefore = rssKiB(pid);
      let rssAfter100 = 0;
      const guestData = randomBytes(16 * 1024);
      const hostData = randomBytes(2048);
      const t0 = Date.now();
      for (let i = 0; i < CYCLES; i++) {
        const d = await ConsoleDriver.start({
          socketPath: vm.socket,
          numQueues: vm.numQueues,
          queueSize: QUEUE_SIZES[i % 3]!,
          replyAck: i % 4 !== 3,
          memSlots: i % 5 !== 4,
        });
        await d.waitPorts(3, (p) => (p.id === 0 ? p.console : p.name !== undefined));
        const p = d.port(1);
        await p.open();
        await d.waitFor(() => p.hostOpen, 'host side open');
        if (i % 3 === 2) {
          // Mid-transfer: the guest is writing when the front-end vanishes.
          void p.write(guestData, { chunkSize: 1024 }).catch(() => {});
          await new Promise((r) => setImmediate(r));
        } else {
          const target = hostBytes + guestData.length;
          await p.write(guestData);
          await until(() => hostBytes >= target, `cycle ${i}: guest output at the host`);
          host.write(hostData);
          expect((await p.read(hostData.length)).equals(hostData)).toBe(true);
        }
        expect(d.problems()).toEqual([]);
        await d.close(); // abrupt: no GET_VRING_BASE, the socket just closes
        if (i === Math.min(99, CYCLES - 1)) rssAfter100 = rssKiB(pid);
        if ((i + 1) % 100 === 0)
          console.log(
            `soak: ${i + 1} cycles, ${((Date.now() - t0) / 1000).toFixed(0)} s, RSS ${(rssKiB(pid) / 1024).toFixed(1)} MiB`,
          );
      }
      // The daemon lets go of the last connection when it reads its end: give it a moment.
      await until(
        () =>
          vm.daemon.memfdMaps() === mapsBefore &&
          vm.daemon.fdCount() === [...fdsBefore.values()].reduce((a, b) => a + b, 0),
        'fds and maps back to the baseline',
        10_000,
      ).catch(() => {});
      const fdsAfter = fdKinds(vm);
      const mapsAfter = vm.daemon.memfdMaps();
      const rssAfter = rssKiB(pid);
      const mib = (k: number) => (k / 1024).toFixed(1);
      console.log(
        [
          '',
          `| soak (${CYCLES} cycles, ${((Date.now() - t0) / 1000).toFixed(0)} s) | before | after |`,
          '| --- | --- | --- |',
          `| daemon fds | ${[...fdsBefore.values()].reduce((a, b) => a + b, 0)} (${show(fdsBefore)}) | ${[...fdsAfter.values()].reduce((a, b) => a + b, 0)} (${show(fdsAfter)}) |`,
          `| guest memory mappings (memfd in /proc/PID/maps) | ${mapsBefore} | ${mapsAfter} |`,
          `| RSS | ${mib(rssBefore)} MiB | ${mib(rssAfter)} MiB (after 100 cycles: ${mib(rssAfter100)} MiB; growth over the last ${CYCLES - 100}: ${mib(rssAfter - rssAfter100)} MiB) |`,
          `| guest bytes at the host | | ${hostBytes} |`,
          '',
        ].join('\n'),
      );
      expect(show(fdsAfter)).toBe(show(fdsBefore));
      expect(mapsAfter).toBe(mapsBefore);
      expect(vm.daemon.alive).toBe(true);
    } finally {
      host.destroy();
      await vm.dispose();
    }
  },
);
