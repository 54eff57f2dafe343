// What the integration tests ask of a daemon after a bad front-end or ring: it is alive and a
// fresh front-end gets the whole service.
import { randomBytes } from 'node:crypto';
import { expect } from 'vitest';
import type { ConsolePort } from '../frontend/index.js';
import type { Vm } from '../helpers/vm.js';

/** The driver knows a port fully: the console flag on port 0, a name on the others. */
export const settled = (p: ConsolePort) => (p.id === 0 ? p.console : p.name !== undefined);

/**
 * A fresh front-end gets the whole service: its ports, and bytes both ways on port `nr`
 * through the host socket chardev `c<nr>`. The front-end and the client are closed after.
 */
export async function expectServed(v: Vm, nr = 1): Promise<void> {
  expect(v.daemon.alive).toBe(true);
  const h = await v.host(`c${nr}`);
  const d = await v.driver();
  await d.waitPorts(3, settled);
  const p = d.port(nr);
  await p.open();
  await d.waitFor(() => p.hostOpen, `port ${nr} host-open`);
  const out = randomBytes(100_000);
  const [, got] = await Promise.all([p.write(out), h.read(out.length)]);
  expect(got.equals(out)).toBe(true);
  await h.write(Buffer.from('pong'));
  expect((await p.read(4)).toString()).toBe('pong');
  expect(d.problems()).toEqual([]);
  await d.close();
  h.close();
}
