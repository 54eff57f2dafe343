// QEMU dies (SIGKILL, mid-transfer) and starts again: the same daemon serves the new VM and
// keeps nothing of the dead connection.
import { expect, test } from 'vitest';
import { digest, md5, until, useE2E, type Daemon, type E2E } from './harness.js';

const e2e = useE2E();

/**
 * The daemon's fds and memfd maps once a connection has been taken up or dropped: `memfd` holds
 * and the fd count has not changed for half a second (fds of a dead connection close in steps).
 */
async function settled(
  e: E2E,
  d: Daemon,
  stage: string,
  memfd: (n: number) => boolean,
): Promise<{ fds: number; memfdMaps: number }> {
  let last = -1;
  let stable = 0;
  await until(`the daemon's fds and memfd maps to settle (${stage})`, 15_000, () => {
    const r = d.resources();
    stable = memfd(r.memfdMaps) && r.fds === last ? stable + 1 : 0;
    last = r.fds;
    return stable >= 10;
  });
  const r = d.resources();
  e.log.write('test', `${stage}: ${JSON.stringify(r)} fds -> ${d.fdTargets().join(' ')}`);
  return r;
}

test('restart: after QEMU is SIGKILLed mid-transfer, a new QEMU boots against the same daemon and works', async () => {
  const e = e2e();
  const d = await e.startDaemon({ ports: [{ id: 'p1', name: 'org.e2e.port1' }] });
  const p1 = await e.peer(d, 'p1');
  const con = await e.peer(d, 'con');
  const idle0 = await settled(e, d, 'idle before any VM', (n) => n === 0);

  const g1 = await e.boot({ daemon: d });
  await g1.ok('e2e_wait_port org.e2e.port1 10');
  const run1 = await settled(e, d, 'VM 1 running', (n) => n > 0);
  await g1.ok('e2e_stream_start org.e2e.port1');
  await p1.waitBytes(p1.length + 256 * 1024, 30_000); // the transfer is under way
  await g1.kill('SIGKILL');
  const idle1 = await settled(e, d, 'VM 1 killed', (n) => n === 0);
  expect(d.alive).toBe(true);

  const before = p1.length;
  const g2 = await e.boot({ daemon: d });
  await g2.ok('e2e_wait_port org.e2e.port1 10');
  const run2 = await settled(e, d, 'VM 2 running', (n) => n > 0);
  const sent = digest((await g2.ok('e2e_send org.e2e.port1 64'))[0]!);
  const got = (await p1.waitBytes(before + sent.len)).subarray(before);
  expect({ md5: md5(got), len: got.length }).toEqual(sent);
  await g2.ok('e2e_hvc_write E2E-AFTER-RESTART');
  await con.waitText(/E2E-AFTER-RESTART/);
  expect(await g2.dmesgBad()).toEqual([]);
  await g2.powerOff();
  const idle2 = await settled(e, d, 'VM 2 powered off', (n) => n === 0);

  const pid = d.pid;
  console.warn(
    `E2E restart: daemon pid ${pid} fds/memfd maps: idle ${idle0.fds}/${idle0.memfdMaps}, ` +
      `QEMU#1 ${run1.fds}/${run1.memfdMaps}, after SIGKILL ${idle1.fds}/${idle1.memfdMaps}, ` +
      `QEMU#2 ${run2.fds}/${run2.memfdMaps}, after power-off ${idle2.fds}/${idle2.memfdMaps}`,
  );
  expect(d.alive && d.pid).toBe(pid); // never restarted
  expect(idle1).toEqual(idle0); // nothing left of the killed connection
  expect(run2).toEqual(run1); // the second VM costs what the first did
  expect(idle2).toEqual(idle0);
});
