import { expect, test } from 'vitest';
import { useE2E } from './harness.js';

const e2e = useE2E();

test('discovery: the guest sees the named ports, /dev/hvc0, and a clean dmesg', async () => {
  const e = e2e();
  const d = await e.startDaemon({ ports: [{ id: 'p1', name: 'org.e2e.port1' }, { id: 'p2', name: 'org.e2e.port2' }] });
  const g = await e.boot({ daemon: d });
  const out = await g.ok('e2e_wait_ports 3 10');
  e.log.write('test', `ports: ${out.join(' | ')}`);
  const names = out.filter((l) => l.startsWith('port ')).map((l) => l.replace(/^port \S+ name=/, '')).sort();
  expect(names).toEqual(['', 'org.e2e.port1', 'org.e2e.port2']);   // the console port has no name
  expect(out).toContain('/dev/hvc0');
  expect(await g.dmesgBad()).toEqual([]);
});
