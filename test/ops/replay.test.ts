// History on attach (replay=SIZE), through the real daemon: a client that connects while the
// guest prints gets the last SIZE bytes (from a line start) and then the live stream, with no
// gap and no duplicate at the seam; a console's socket and pty members replay 16 KiB by
// default; a generic port replays nothing unless asked.
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { ConsolePort } from '../frontend/index.js';
import { until } from '../helpers/daemon.js';
import { Vm } from '../helpers/vm.js';

let vm: Vm | undefined;
afterEach(async () => {
  await vm?.dispose();
  vm = undefined;
});

const settled = (p: ConsolePort) => (p.id === 0 ? p.console : p.name !== undefined);

function lines(from: number, to: number): Buffer {
  let s = '';
  for (let i = from; i < to; i++) s += `line ${i} ${'='.repeat(i % 53)}\n`;
  return Buffer.from(s);
}

/** Prints line after line until stop() (a steady guest), keeping everything it printed. */
function steadyGuest(p: ConsolePort): { stop: () => Promise<Buffer> } {
  const printed: Buffer[] = [];
  let running = true;
  let i = 100_000;
  const done = (async () => {
    while (running) {
      const b = lines(i, i + 7);
      i += 7;
      await p.write(b, { ignoreHostOpen: true });
      printed.push(b);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await done;
      return Buffer.concat(printed);
    },
  };
}

/** `got` must be exactly the end of `all`, starting at a line start. */
function expectSuffix(got: Buffer, all: Buffer): void {
  expect(got.length).toBeGreaterThan(0);
  expect(got.length).toBeLessThanOrEqual(all.length);
  const start = all.length - got.length;
  expect(got.equals(all.subarray(start))).toBe(true);
  expect(start === 0 || all[start - 1] === 0x0a).toBe(true);
}

describe('replay= (history on attach)', () => {
  it('console socket member (default 16 KiB): the last lines, then live, no gap or duplicate at the seam, under a steady stream', async () => {
    vm = await Vm.start();
    const d = await vm.driver();
    await d.waitPorts(3, settled);
    const con = d.port(0);
    const history = lines(0, 2000); // ~60 KB: more than the replay window
    await con.write(history, { ignoreHostOpen: true });
    const guest = steadyGuest(con);
    await new Promise((r) => setTimeout(r, 50));
    const h = await vm.host('c0'); // connects while the guest prints
    await new Promise((r) => setTimeout(r, 100));
    const live = await guest.stop();
    const all = Buffer.concat([history, live]);
    // Everything up to the guest's last byte arrives (the console port never waits for it).
    let last = -1;
    await until(
      () => {
        const same = h.received === last && h.received > 0;
        last = h.received;
        return same;
      },
      'the client to settle',
      10_000,
      300,
    );
    const got = await h.read(h.received);
    expectSuffix(got, all);
    // The replay part is at most 16 KiB: what came before the connection starts within the window.
    const printedBeforeConnect = history.length; // at least this much was there when it connected
    expect(all.length - got.length).toBeGreaterThanOrEqual(printedBeforeConnect - 16 * 1024);
    expect(got.length).toBeGreaterThan(16 * 1024 - 200); // a real replay happened (most of 16 KiB)
  });

  it('replay=4K on a generic port; the default there is none', async () => {
    vm = await Vm.start({
      chardevs: {
        c0: 'socket,path=@DIR@/c0.sock,server=on,wait=off',
        c1: 'socket,path=@DIR@/c1.sock,server=on,wait=off,replay=4K',
        c2: 'socket,path=@DIR@/c2.sock,server=on,wait=off',
      },
    });
    const d = await vm.driver();
    await d.waitPorts(3, settled);
    const [p1, p2] = [d.port(1), d.port(2)];
    await p1.open();
    await p2.open();
    // A first client takes the output (a generic port waits for a reader), then leaves.
    const first1 = await vm.host('c1');
    const first2 = await vm.host('c2');
    await d.waitFor(() => p1.hostOpen && p2.hostOpen, 'host-open');
    const before = lines(0, 500);
    await Promise.all([p1.write(before), first1.read(before.length), p2.write(before), first2.read(before.length)]);
    first1.close();
    first2.close();
    await d.waitFor(() => !p1.hostOpen && !p2.hostOpen, 'host-closed');
    // The next clients: c1 replays its last 4 KiB (from a line start), c2 nothing.
    const h1 = await vm.host('c1');
    const h2 = await vm.host('c2');
    await d.waitFor(() => p1.hostOpen && p2.hostOpen, 'host-open again');
    const after = lines(500, 520);
    await Promise.all([p1.write(after), p2.write(after)]);
    const all = Buffer.concat([before, after]);
    const got2 = await h2.read(after.length);
    expect(got2.equals(after)).toBe(true);
    await until(() => h1.received > after.length, 'replay on c1');
    await new Promise((r) => setTimeout(r, 200));
    const got1 = await h1.read(h1.received);
    expectSuffix(got1, all);
    expect(got1.length - after.length).toBeLessThanOrEqual(4096);
    expect(got1.length - after.length).toBeGreaterThan(4096 - 80); // a line is at most ~66 bytes
    expect(h2.received).toBe(0);
  });

  it('a pty member of the console replays by default when a terminal opens it', async () => {
    vm = await Vm.start({
      ports: [{ driver: 'virtconsole', chardev: 'hub0' }],
      chardevs: { pty0: 'pty', hub0: 'hub,chardevs.0=pty0' },
    });
    const d = await vm.driver();
    await d.waitPorts(1, settled);
    const history = lines(0, 100);
    await d.port(0).write(history, { ignoreHostOpen: true });
    await until(() => /pty (\/dev\/pts\/\d+)/.test(vm!.daemon.stdout), 'the pty in the banner');
    const slave = /pty (\/dev\/pts\/\d+)/.exec(vm.daemon.stdout)![1]!;
    const fd = fs.openSync(slave, fs.constants.O_RDWR | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK);
    try {
      // Raw enough for a byte-exact read: the replay comes through the line discipline, which
      // turns \n into \r\n on output unless the daemon set the pty raw (it does).
      const got: Buffer[] = [];
      await until(
        () => {
          const b = Buffer.alloc(65536);
          try {
            const n = fs.readSync(fd, b);
            if (n > 0) got.push(b.subarray(0, n));
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
          }
          return Buffer.concat(got).length >= history.length;
        },
        'the replay on the pty',
        10_000,
        20,
      );
      expect(Buffer.concat(got).equals(history)).toBe(true);
    } finally {
      fs.closeSync(fd);
    }
  });
});
