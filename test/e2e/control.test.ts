// What the control socket (QMP-shaped) sees of the guest, and what it changes in the guest.
import { expect, test } from 'vitest';
import { digest, md5, requireCommand, useE2E } from './harness.js';

const e2e = useE2E();

test('guest open/close of a named port is reported as VSERPORT_CHANGE', async () => {
  const e = e2e();
  const d = await e.startDaemon({ control: true, ports: [{ id: 'p1', name: 'org.e2e.port1' }] });
  const c = await e.control(d);
  const g = await e.boot({ daemon: d });
  await g.ok('e2e_wait_port org.e2e.port1 10');
  // Nothing in the guest has opened the port yet, so no event may have claimed it open.
  // (The console port is opened by the kernel's hvc layer during boot: its event may be there.)
  expect(c.events.filter((ev) => ev.event === 'VSERPORT_CHANGE' && ev.data?.id === 'dev-p1')).toEqual([]);

  await g.ok('e2e_open org.e2e.port1');
  // QEMU's shape (checked in rig.test.ts): the port's device id and the state; the daemon may
  // add fields (it adds the VM's id).
  const isP1 = (x: Record<string, unknown>): boolean => x.id === 'dev-p1';
  expect((await c.waitEvent('VSERPORT_CHANGE', (x) => isP1(x) && x.open === true)).data).toMatchObject({
    id: 'dev-p1',
    open: true,
  });
  await g.ok('e2e_close org.e2e.port1');
  expect((await c.waitEvent('VSERPORT_CHANGE', (x) => isP1(x) && x.open === false)).data).toMatchObject({
    id: 'dev-p1',
    open: false,
  });
});

test('hot-plug: device_add makes a named port appear in the guest, device_del removes it', async () => {
  const e = e2e();
  const d = await e.startDaemon({ control: true, ports: [{ id: 'p1', name: 'org.e2e.port1' }], spareChardevs: ['p2'] });
  const c = await e.control(d);
  const p2 = await e.peer(d, 'p2');
  const g = await e.boot({ daemon: d });
  await g.ok('e2e_wait_ports 2 10');
  expect((await g.run('e2e_wait_port org.e2e.hot2 0')).out).toEqual(['absent']);

  const add = await requireCommand(e, c, 'device_add', {
    driver: 'virtserialport',
    id: 'hot2',
    chardev: 'p2',
    name: 'org.e2e.hot2',
  });
  expect(add.error).toBeUndefined();
  expect(await g.ok('e2e_wait_port org.e2e.hot2 10')).toEqual(['present']);
  // The new port carries data like any other.
  const sent = digest((await g.ok('e2e_send org.e2e.hot2 16'))[0]!);
  expect(md5(await p2.waitBytes(sent.len))).toBe(sent.md5);

  const del = await requireCommand(e, c, 'device_del', { id: 'hot2' });
  expect(del.error).toBeUndefined();
  expect(await g.ok('e2e_wait_gone org.e2e.hot2 10')).toEqual(['gone']);
  expect(await g.ok('e2e_wait_port org.e2e.port1 0')).toEqual(['present']);
  expect(await g.dmesgBad()).toEqual([]);
});
