// The rig checked on its own, with QEMU's built-in virtio-serial-pci instead of the daemon: if
// these fail, the guest side (kernel, initramfs, guest-init) or the harness is broken, not the
// daemon. They also record what the real QEMU does where the daemon imitates it (QMP events).
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { HostPeer, digest, md5, useE2E } from './harness.js';

const e2e = useE2E();

test("reference: the guest boots on QEMU's own virtio-serial and moves data both ways", async () => {
  const e = e2e();
  const g = await e.boot({ daemon: 'builtin' });
  const con = await HostPeer.connect(join(e.dir, 'builtin0.sock'), 'builtin0', e.log);
  const port = await HostPeer.connect(join(e.dir, 'builtin1.sock'), 'builtin1', e.log);

  expect(await g.ok('e2e_wait_ports 2 10')).toEqual([
    'port vport0p0 name=',
    'port vport0p1 name=org.e2e.port1',
    '/dev/hvc0',
  ]);
  expect(await g.dmesgBad()).toEqual([]);

  const sent = digest((await g.ok('e2e_send org.e2e.port1 64'))[0]!);
  expect(md5(await port.waitBytes(sent.len))).toBe(sent.md5);

  await g.ok('e2e_hvc_shell');
  con.write('echo REF-$((6*7))-OK\n');
  await con.waitText(/REF-42-OK/);
  con.close();
  port.close();
});

test("reference: QEMU's QMP reports guest open/close and hot-plugs a named port", async () => {
  const e = e2e();
  const g = await e.boot({ daemon: 'builtin' });
  const c = await e.control('builtin');
  await g.ok('e2e_wait_ports 2 10');

  await g.ok('e2e_open org.e2e.port1');
  expect((await c.waitEvent('VSERPORT_CHANGE', (d) => d.open === true)).data).toEqual({ id: 'port1', open: true });
  await g.ok('e2e_close org.e2e.port1');
  expect((await c.waitEvent('VSERPORT_CHANGE', (d) => d.open === false)).data).toEqual({ id: 'port1', open: false });

  const add = await c.execute('device_add', {
    driver: 'virtserialport',
    bus: 'vser0.0',
    id: 'hot2',
    chardev: 'ref2',
    name: 'org.e2e.hot2',
  });
  expect(add.error).toBeUndefined();
  expect(await g.ok('e2e_wait_port org.e2e.hot2 10')).toEqual(['present']);
  expect((await c.execute('device_del', { id: 'hot2' })).error).toBeUndefined();
  expect(await g.ok('e2e_wait_gone org.e2e.hot2 10')).toEqual(['gone']);
  expect((await c.execute('no-such-command')).error?.class).toBe('CommandNotFound');
  expect(await g.dmesgBad()).toEqual([]);
});
