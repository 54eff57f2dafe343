import { expect, test } from 'vitest';
import { spawnSync } from 'node:child_process';
import { CLI, daemonArgs, requireFlags, useE2E } from './harness.js';

const e2e = useE2E();

test('discovery: the guest sees the named ports, /dev/hvc0, and a clean dmesg', async () => {
  const e = e2e();
  const d = await e.startDaemon({
    ports: [
      { id: 'p1', name: 'org.e2e.port1' },
      { id: 'p2', name: 'org.e2e.port2' },
    ],
  });
  const g = await e.boot({ daemon: d });
  const out = await g.ok('e2e_wait_ports 3 10');
  e.log.write('test', `ports: ${out.join(' | ')}`);
  const names = out
    .filter((l) => l.startsWith('port '))
    .map((l) => l.replace(/^port \S+ name=/, ''))
    .sort();
  expect(names).toEqual(['', 'org.e2e.port1', 'org.e2e.port2']); // the console port has no name
  expect(out).toContain('/dev/hvc0');
  expect(await g.dmesgBad()).toEqual([]);
});

test('the QEMU arguments the daemon prints are the ones the rig boots with', async () => {
  const e = e2e();
  requireFlags(e, '--print-qemu-args');
  const args = daemonArgs(e.dir, { ports: [{ id: 'p1', name: 'org.e2e.port1' }] });
  const r = spawnSync(process.execPath, [CLI, ...args, '--print-qemu-args'], { encoding: 'utf8' });
  const device = /-device (\S+)/.exec(r.stdout)?.[1];
  e.log.write('test', `printed: ${r.stdout}`);
  // --max-ports 4: 2*(4+1) queues; 12 bytes of config space (cols, rows, max_nr_ports, emerg_wr).
  expect(device).toMatch(/^vhost-user-test-device-pci,chardev=[^,]+,virtio-id=3,num_vqs=10,config_size=12$/);
});
