// Bytes both ways, byte-exact: random (non-text) data compared by md5 and length.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { digest, md5, until, useE2E } from './harness.js';

const e2e = useE2E();
const port1 = { id: 'p1', name: 'org.e2e.port1' };

test('guest -> host: 384 KiB and 16 KiB on two named ports and a marker on hvc0 arrive byte-exact', async () => {
  const e = e2e();
  const d = await e.startDaemon({ ports: [port1, { id: 'p2', name: 'org.e2e.port2' }] });
  const p1 = await e.peer(d, 'p1');
  const p2 = await e.peer(d, 'p2');
  const con = await e.peer(d, 'con');
  const g = await e.boot({ daemon: d });
  await g.ok('e2e_wait_ports 3 10');

  for (const [name, peer, kib] of [
    ['org.e2e.port1', p1, 384],
    ['org.e2e.port2', p2, 16],
  ] as const) {
    const sent = digest((await g.ok(`e2e_send ${name} ${kib} 60`, 90_000))[0]!);
    const got = await peer.waitBytes(sent.len, 60_000);
    expect({ md5: md5(got), len: got.length }).toEqual(sent);
  }

  await g.ok('e2e_hvc_write E2E-HVC-MARKER-1');
  await con.waitText(/E2E-HVC-MARKER-1\r?\n/);
  // The console's other hub member, the log file, got the same bytes.
  await until('the marker in console.log', 5_000, () =>
    readFileSync(join(d.dir, 'console.log'), 'latin1').includes('E2E-HVC-MARKER-1'),
  );
  expect(await g.dmesgBad()).toEqual([]);
});

test('host -> guest: 256 KiB from a host socket arrive byte-exact on a named port', async () => {
  const e = e2e();
  const d = await e.startDaemon({ ports: [port1] });
  const p1 = await e.peer(d, 'p1');
  const g = await e.boot({ daemon: d });
  await g.ok('e2e_wait_port org.e2e.port1 10');

  const data = randomBytes(256 * 1024);
  await g.ok(`e2e_recv_start org.e2e.port1 ${data.length} 60`);
  p1.write(data);
  const line = await g.waitLine(/^E2E: recv org\.e2e\.port1 /, 70_000);
  expect(digest(line)).toEqual({ md5: md5(data), len: data.length });
  expect(await g.dmesgBad()).toEqual([]);
});
