// The guest console (/dev/hvc0) as a user meets it: a shell driven through a socket member of
// the console hub, and the terminal size the daemon tells the guest.
import { afterAll, expect, test } from 'vitest';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { digest, requireCommand, until, useE2E, type E2E, type Guest } from './harness.js';

const e2e = useE2E();

test("interactive console: a shell on hvc0 answers a command sent through the hub's socket member", async () => {
  const e = e2e();
  const d = await e.startDaemon({});
  const con = await e.peer(d, 'con');
  const g = await e.boot({ daemon: d });
  await g.ok('e2e_hvc_shell');
  con.write('echo E2E-$((6*7))-OK; uname -r\n');
  await con.waitText(/E2E-42-OK\r?\n/);
  await con.waitText(new RegExp(e.rig.kernelVersion.split('-')[0]!.replace(/\./g, '\\.')));
});

test('a console member that stops reading stalls neither the guest nor the other members', async () => {
  const e = e2e();
  const d = await e.startDaemon({});
  const con = await e.peer(d, 'con');
  con.sock.pause(); // reads nothing from now on
  const g = await e.boot({ daemon: d });
  // More than the socket buffers and the member's 1 MiB buffer hold. Linux busy-waits on every
  // console buffer: if the daemon waited for this member, the guest would freeze here.
  const sent = digest((await g.ok('e2e_send /dev/hvc0 3072 120', 150_000))[0]!);
  expect(sent.len).toBe(3 * 1024 * 1024);
  await g.ok('e2e_hvc_write E2E-STILL-ALIVE');
  // The other member, the log file, was never held back: it has everything, then the marker.
  await until('the marker in console.log', 10_000, () =>
    readFileSync(join(d.dir, 'console.log'), 'latin1').includes('E2E-STILL-ALIVE'),
  );
  expect(statSync(join(d.dir, 'console.log')).size).toBeGreaterThanOrEqual(sent.len);
  expect(await g.dmesgBad()).toEqual([]);
});

// --console-size is COLSxROWS; `stty size` prints `rows cols`.
const initial = { cols: 100, rows: 40 };
const resized = { cols: 120, rows: 50 };
const expectLine = (s: { cols: number; rows: number }): string => `size ${s.rows} ${s.cols}`;
const swapped = (s: { cols: number; rows: number }): string => `size ${s.cols} ${s.rows}`;

/** Ask `stty size` on hvc0 until it shows one of `accept` (the size arrives asynchronously). */
async function sttySize(g: Guest, accept: string[]): Promise<string> {
  let last = '';
  for (let i = 0; i < 20 && !accept.includes(last); i++) {
    if (i) await new Promise((r) => setTimeout(r, 250));
    last = (await g.ok('e2e_size'))[0] ?? '';
  }
  return last;
}

/** Boots with `order` (undefined: the daemon's default), resizes, returns what stty showed. */
async function sizeRun(e: E2E, order?: 'rows-cols' | 'cols-rows'): Promise<{ initial: string; resized: string }> {
  const d = await e.startDaemon({ consoleSize: `${initial.cols}x${initial.rows}`, resizeOrder: order, control: true });
  const c = await e.control(d);
  const g = await e.boot({ daemon: d });
  const seenInitial = await sttySize(g, [expectLine(initial), swapped(initial)]);
  const r = await requireCommand(e, c, 'console-resize', resized);
  expect(r.error).toBeUndefined();
  const seenResized = await sttySize(g, [expectLine(resized), swapped(resized)]);
  const seen = { initial: seenInitial, resized: seenResized };
  e.log.write('test', `resize order ${order ?? 'default'}: ${JSON.stringify(seen)}`);
  console.warn(
    `E2E size, resize-order ${order ?? '(default)'}, kernel ${e.rig.kernelVersion}: ` +
      `daemon ${initial.cols}x${initial.rows} -> guest '${seen.initial}'; ` +
      `resize ${resized.cols}x${resized.rows} -> guest '${seen.resized}'`,
  );
  return seen;
}

const right = new Map<string, boolean>();
for (const order of ['rows-cols', 'cols-rows'] as const) {
  test(`size probe with --resize-order ${order}: the guest sees the size, either right or swapped`, async () => {
    const seen = await sizeRun(e2e(), order);
    expect([expectLine(initial), swapped(initial)]).toContain(seen.initial);
    expect([expectLine(resized), swapped(resized)]).toContain(seen.resized);
    right.set(order, seen.initial === expectLine(initial) && seen.resized === expectLine(resized));
  });
}

test("size: with the default order, stty size on hvc0 is the daemon's console size, before and after a resize", async () => {
  const seen = await sizeRun(e2e());
  expect(seen).toEqual({ initial: expectLine(initial), resized: expectLine(resized) });
});

afterAll(() => {
  // The two probes must disagree: exactly one order is right for this kernel.
  if (right.size === 2) expect([...right.values()].filter(Boolean)).toHaveLength(1);
});
