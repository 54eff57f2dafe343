// A front-end with two queues (no MULTIPORT): only the console port, and it must still work.
import { expect, test } from 'vitest';
import { useE2E } from './harness.js';

const e2e = useE2E();

test('single port (--multiport off, num_vqs=2): hvc0 carries output and an interactive shell', async () => {
  const e = e2e();
  const d = await e.startDaemon({ multiport: false, maxPorts: 1 });
  const con = await e.peer(d, 'con');
  const g = await e.boot({ daemon: d, numVqs: 2 });
  const out = await g.ok('e2e_wait_ports 1 10');
  expect(out).toEqual(['port vport0p0 name=', '/dev/hvc0']);

  await g.ok('e2e_hvc_write E2E-SINGLE-PORT');
  await con.waitText(/E2E-SINGLE-PORT\r?\n/);
  await g.ok('e2e_hvc_shell');
  con.write('echo E2E-$((6*7))-SINGLE\n');
  await con.waitText(/E2E-42-SINGLE\r?\n/);
  expect(await g.dmesgBad()).toEqual([]);
});
