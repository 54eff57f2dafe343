// Socket activation with a real QEMU: the vhost-user socket exists before the daemon runs (as
// a systemd .socket unit makes it), QEMU starts and connects while no daemon is there yet, and
// the guest gets its console once the daemon starts on the passed socket: QEMU never races the
// daemon. (fake-systemd.py plays systemd; see test/ops/systemd.test.ts for the protocol.)
import { readFileSync } from 'node:fs';
import { expect, test } from 'vitest';
import { until, useE2E } from './harness.js';

/** A process's start time, in clock ticks since boot (/proc/PID/stat field 22). */
const startTime = (pid: number): number =>
  Number(
    readFileSync(`/proc/${pid}/stat`, 'utf8')
      .replace(/^.*\) /, '')
      .split(' ')[19],
  );

const e2e = useE2E();

test('activation: QEMU connects before the daemon runs and boots with its console once it does', async () => {
  const e = e2e();
  const d = await e.startDaemon({ activation: { delayMs: 4000 }, ports: [{ id: 'p1', name: 'org.e2e.port1' }] });
  const g = await e.boot({ daemon: d }); // QEMU's connect is queued on systemd's socket meanwhile
  // d is the stand-in for systemd; the daemon is its child, started after QEMU was.
  const daemonPid = await until(
    'the daemon process',
    10_000,
    () => Number(readFileSync(`/proc/${d.pid}/task/${d.pid}/children`, 'utf8').trim().split(' ')[0]) || false,
  );
  expect(startTime(g.pid)).toBeLessThan(startTime(daemonPid));
  const con = await e.peer(d, 'con');
  await g.ok('e2e_wait_port org.e2e.port1 10');
  await g.ok('e2e_hvc_write E2E-ACTIVATED');
  await con.waitText(/E2E-ACTIVATED/);
  expect(await g.dmesgBad()).toEqual([]);
  await g.powerOff();
});
