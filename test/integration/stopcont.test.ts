// QMP `stop` + `cont` with the guest's driver untouched (issue 9, finding 8): QEMU stops the
// vhost-user device and starts it again on the same rings, and Linux never announces its ports
// again. The test front-end sends exactly what QEMU 10.0/10.2 send for vhost-user-(test-)device
// (SET_VRING_ENABLE 0 and GET_VRING_BASE per ring; then SET_FEATURES, GET/SET_STATUS, memory,
// the rings from their bases, SET_VRING_ENABLE 1), and also the SET_STATUS 0 other QEMU
// vhost-user devices end vhost_dev_stop with. The daemon keeps every port's state across both:
// DEVICE_READY done, PORT_READY, PORT_OPEN both ways, names.
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { ConsolePort } from '../frontend/index.js';
import { Vm } from '../helpers/vm.js';

let vm: Vm | undefined;
afterEach(async () => {
  await vm?.dispose();
  vm = undefined;
});

const settled = (p: ConsolePort) => (p.id === 0 ? p.console : p.name !== undefined);

describe('QMP stop + cont', () => {
  it.each([
    ['as QEMU sends it for vhost-user-device (no SET_STATUS 0)', false],
    ['with SET_STATUS 0 at the end of the stop (other vhost-user devices)', true],
  ] as const)('%s: ports keep their state and carry data both ways after the cont', async (_, statusReset) => {
    vm = await Vm.start();
    const h0 = await vm.host('c0');
    const h1 = await vm.host('c1');
    const d = await vm.driver();
    await d.waitPorts(3, settled);
    const con = d.port(0);
    const p = d.port(1);
    await p.open();
    await d.waitFor(() => p.hostOpen && con.hostOpen, 'ports 0 and 1 host-open');
    const first = randomBytes(50_000);
    await p.write(first);
    expect((await h1.read(first.length)).equals(first)).toBe(true);
    const logsBefore = vm.daemon.stderrLines.length;

    const txAvail = d.fe.queues[p.txQueue]!.availIndex;
    // stopCont(), with a host client of port 2 arriving while the VM is stopped: its PORT_OPEN
    // waits for the cont.
    const bases = await d.fe.stop({ statusReset });
    const since = vm.daemon.stderrLines.length;
    await vm.host('c2');
    await vm.daemon.waitForLog(/"chardev":"c2".*peer connected/, { since, timeoutMs: 5000 });
    await d.fe.resume(bases);
    expect(bases[p.txQueue]).toBe(txAvail);
    await d.waitFor(() => d.port(2).hostOpen, 'port 2 host-open (opened while stopped)');
    d.port(2).hostOpen = false; // compare the rest as it was before the stop
    const log = vm.daemon.stderrLines.slice(logsBefore).join('\n');
    if (statusReset) expect(log).toMatch(/SET_STATUS flags 0x1 \{0, 0\}/);
    expect(log).not.toMatch(/ports start over|guest-open|closed by the guest/i);

    // Nothing announced again (the driver would not answer), and the state is as it was.
    expect([...d.ports.values()].map((x) => [x.id, x.name ?? null, x.console, x.hostOpen, x.guestOpen])).toEqual([
      [0, null, true, true, true],
      [1, 'org.example.port1', false, true, true],
      [2, 'org.example.port2', false, false, false],
    ]);
    const out = randomBytes(200_000);
    const back = randomBytes(200_000);
    const [, gotOut, , gotBack] = await Promise.all([
      p.write(out),
      h1.read(out.length),
      h1.write(back),
      p.read(back.length),
    ]);
    expect(gotOut.equals(out)).toBe(true);
    expect(gotBack.equals(back)).toBe(true);
    // The console too, both ways.
    const typed = Buffer.from('echo after-cont\n');
    const printed = Buffer.from('after-cont\r\n');
    const [, gotTyped, , gotPrinted] = await Promise.all([
      h0.write(typed),
      con.read(typed.length),
      con.write(printed),
      h0.read(printed.length),
    ]);
    expect(gotTyped.equals(typed)).toBe(true);
    expect(gotPrinted.equals(printed)).toBe(true);
    expect(d.problems()).toEqual([]);
  });
});
