// A hostile guest and a hostile front-end against the real daemon (issue 9): each ends only its
// own connection with a line naming what it did; the daemon stays up and serves a fresh
// front-end fully. (The same and more, with a second VM on the same loop and a racing vCPU, in
// test/device/hostile.test.ts through the native core.)
import { afterEach, describe, expect, it } from 'vitest';
import { Vm } from '../helpers/vm.js';
import { expectServed, settled } from './served.js';

let vm: Vm | undefined;
afterEach(async () => {
  await vm?.dispose();
  vm = undefined;
});

const WARN = 40;

// A fresh front-end is served on port 2: bytes sent to port 1 of the failed session are still
// that port's to deliver.
describe('hostile guest and front-end, through the daemon', () => {
  it('a front-end that truncates its guest memory after handing it over ends its own connection; the daemon lives', async () => {
    vm = await Vm.start();
    const h = await vm.host('c1');
    const d = await vm.driver();
    await d.waitPorts(3, settled);
    const p = d.port(1);
    await p.open();
    await d.waitFor(() => p.hostOpen, 'port 1 host-open');
    d.fe.mem.truncate();
    await h.write(Buffer.from('into truncated memory')); // the daemon copies it into the guest's rx buffers
    const line = await vm.daemon.waitForLog(/truncated/, { minLevel: WARN, timeoutMs: 10_000 });
    expect(line.msg).toMatch(/front-end connection ended: queue \d+: guest memory was truncated by the front-end/);
    await d.close();
    h.close();
    await expectServed(vm, 2);
  });

  it('a guest posting receive buffers without device-writable bytes faults that queue instead of pinning host writes', async () => {
    vm = await Vm.start();
    const h = await vm.host('c1');
    const d = await vm.driver({ rxFill: 0 }); // the driver posts no rx buffers of its own
    await d.waitPorts(3, settled);
    const p = d.port(1);
    await p.open();
    await d.waitFor(() => p.hostOpen, 'port 1 host-open');
    const q = d.fe.queues[p.rxQueue]!;
    const buf = d.fe.mem.alloc(64);
    for (let i = 0; i < 8; i++) {
      q.writeDesc(i, d.fe.mem.gpa(buf), 64, 0, 0); // device-readable only: nothing to write into
      q.publish(i);
    }
    d.fe.forceKick(p.rxQueue);
    await h.write(Buffer.from('x'.repeat(64)));
    const line = await vm.daemon.waitForLog(/no device-writable bytes/, { minLevel: WARN, timeoutMs: 10_000 });
    expect(line.msg).toMatch(new RegExp(`queue ${p.rxQueue}: receive chain \\d+ has no device-writable bytes`));
    await d.close();
    h.close();
    await expectServed(vm, 2);
  });
});
