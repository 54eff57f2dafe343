// The rig checked on its own, with QEMU's built-in virtio-serial-pci instead of the daemon: if
// this fails, the guest side (kernel, initramfs, guest-init, the harness) is broken, not the daemon.
import { expect, test } from 'vitest';
import { HostPeer, digest, md5, useE2E } from './harness.js';
import { join } from 'node:path';

const e2e = useE2E();

test('reference: the guest boots on QEMU\'s own virtio-serial and moves data both ways', async () => {
  const e = e2e();
  const g = await e.boot({ daemon: 'builtin' });
  const con = await HostPeer.connect(join(e.dir, 'builtin0.sock'), 'builtin0', e.log);
  const port = await HostPeer.connect(join(e.dir, 'builtin1.sock'), 'builtin1', e.log);

  expect(await g.ok('e2e_wait_ports 2 10')).toEqual(['port vport0p0 name=', 'port vport0p1 name=org.e2e.port1', '/dev/hvc0']);
  expect(await g.dmesgBad()).toEqual([]);

  const sent = digest((await g.ok('e2e_send org.e2e.port1 64'))[0]!);
  expect(md5(await port.waitBytes(sent.len))).toBe(sent.md5);

  await g.ok('e2e_hvc_shell');
  con.write('echo REF-$((6*7))-OK\n');
  await con.waitText(/REF-42-OK/);
});
