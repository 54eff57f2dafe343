// QMP `stop` + `cont` on the real QEMU during a session (issue 9, finding 8): QEMU stops the
// vhost-user device (vhost_dev_stop) and starts it again (vhost_dev_start) while the guest's
// driver stays as it was, so the daemon must keep the ports' state across it. Afterwards the
// console and a named port carry data both ways. The daemon runs at --log-level debug, which
// traces every vhost-user request: the test records what QEMU sent for the stop and the cont
// (docs/testing.md has the sequence).
import { randomBytes } from 'node:crypto';
import { expect, test } from 'vitest';
import { digest, md5, until, useE2E } from './harness.js';

const e2e = useE2E();
const port1 = { id: 'p1', name: 'org.e2e.port1' };

test('QMP stop + cont: the console and a named port still carry data both ways, the ports keep their state', async () => {
  const e = e2e();
  const d = await e.startDaemon({ ports: [port1], logLevel: 'debug' });
  const con = await e.peer(d, 'con');
  const p1 = await e.peer(d, 'p1');
  const g = await e.boot({ daemon: d, qmp: true });
  await g.ok('e2e_wait_port org.e2e.port1 10');
  await g.ok('e2e_hvc_shell');
  con.write('echo BEFORE-$((6*7))\n');
  await con.waitText(/BEFORE-42\r?\n/);

  const trace = (): string[] =>
    e.log
      .tail(100_000)
      .split('\n')
      .filter((l) => l.includes('vhost-user <- '));
  const beforeStop = trace().length;
  const qmp = await e.control('builtin');
  expect((await qmp.execute('stop')).error).toBeUndefined();
  await until('QEMU STOP event', 10_000, () => qmp.events.some((ev) => ev.event === 'STOP'));
  // The device is stopped: every ring asked for its base (GET_VRING_BASE).
  await until(
    'the stop sequence in the daemon log',
    10_000,
    () =>
      trace()
        .slice(beforeStop)
        .filter((l) => l.includes('GET_VRING_BASE')).length > 0,
  );
  await new Promise((r) => setTimeout(r, 500));
  const stopMsgs = trace().slice(beforeStop);
  expect((await qmp.execute('cont')).error).toBeUndefined();
  await until('QEMU RESUME event', 10_000, () => qmp.events.some((ev) => ev.event === 'RESUME'));
  await until('the start sequence in the daemon log', 10_000, () =>
    trace()
      .slice(beforeStop + stopMsgs.length)
      .some((l) => l.includes('SET_VRING_ENABLE')),
  );
  await new Promise((r) => setTimeout(r, 500));
  const contMsgs = trace().slice(beforeStop + stopMsgs.length);
  const names = (ls: string[]): string => [...new Set(ls.map((l) => /vhost-user <- (\S+)/.exec(l)![1]))].join(' ');
  e.log.write('test', `QMP stop sent: ${names(stopMsgs)}; cont sent: ${names(contMsgs)}`);
  console.warn(
    `E2E QEMU ${e.rig.qemuVersion} QMP stop -> ${stopMsgs.length} requests (${names(stopMsgs)}); ` +
      `cont -> ${contMsgs.length} requests (${names(contMsgs)})`,
  );
  // The daemon did not lose the guest driver's view of the ports (it would say so at info).
  expect(e.log.tail(100_000)).not.toMatch(/ports start over|front-end disconnected|connection ended/);

  // Console, both ways: the shell started before the stop answers.
  con.write('echo AFTER-$((7*6))\n');
  await con.waitText(/AFTER-42\r?\n/);
  // Named port, guest -> host and host -> guest.
  const sent = digest((await g.ok(`e2e_send ${port1.name} 16 60`, 90_000))[0]!);
  const got = await p1.waitBytes(sent.len, 60_000);
  expect({ md5: md5(got), len: got.length }).toEqual(sent);
  const data = randomBytes(32 * 1024);
  await g.ok(`e2e_recv_start ${port1.name} ${data.length} 60`);
  p1.write(data);
  const line = await g.waitLine(/^E2E: recv org\.e2e\.port1 /, 70_000);
  expect(digest(line)).toEqual({ md5: md5(data), len: data.length });
  expect(await g.dmesgBad()).toEqual([]);
}, 240_000);
