// Issue 3's "done when", through the real daemon: a console port on a hub of a pty, a unix
// socket and a file, with the test front-end as the guest. Output reaches all three
// identically; input from the pty and the socket both reach the guest; a stalled socket
// client neither stalls the guest nor costs the pty and the file a byte, and its drops are
// reported by query-ports.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { ConsoleDriver } from '../frontend/index.js';
import type { QmpClient } from '../helpers/qmp.js';
import { Rig, settled, until, type PtyPeer } from './util.js';

const NUM_QUEUES = 2 * (1 + 1);
let rig: Rig | undefined;
afterEach(async () => {
  await rig?.dispose();
  rig = undefined;
});

type Member = { chardev: string; open: boolean; 'bytes-out': number; 'bytes-in': number; drops: number };
async function members(q: QmpClient): Promise<Record<string, Member>> {
  const ports = (await q.execute('query-ports')) as { id: string; members: Member[] }[];
  return Object.fromEntries(ports.find((p) => p.id === 'console')!.members.map((m) => [m.chardev, m]));
}

/**
 * The console on hub0 = {pty0, sock, log}; `sockOpts` are extra options of the socket member.
 * Returns with the pty's slave open, a socket client connected (both seen open by the hub),
 * and the guest driver up.
 */
async function start(sockOpts = '', o: { pausedClient?: boolean } = {}) {
  rig = await Rig.start((dir) => ({
    args: [
      '--socket',
      `${dir}/vm.sock`,
      '--max-ports',
      '1',
      '--control',
      `${dir}/ctl.sock`,
      // The pty and the file may lag more than all the test writes (16 MiB), so whether they
      // lose a byte depends only on the hub, never on how fast this process reads the pty.
      '--chardev',
      `pty,id=pty0,path=${dir}/con.pty,buffer=16777216`,
      '--chardev',
      `socket,id=sock,path=${dir}/con.sock,server=on,wait=off${sockOpts}`,
      '--chardev',
      `file,id=log,path=${dir}/con.log,buffer=16777216`,
      '--chardev',
      'hub,id=hub0,chardevs.0=pty0,chardevs.1=sock,chardevs.2=log',
      '--device',
      'virtconsole,id=console,chardev=hub0',
    ],
    wait: [`${dir}/vm.sock`, `${dir}/ctl.sock`, `${dir}/con.sock`, `${dir}/con.pty`],
  }));
  const r = rig;
  const q = await r.qmp();
  const pty: PtyPeer = r.pty(r.path('con.pty'));
  const sock = await r.host('con.sock', { paused: o.pausedClient ?? false });
  for (let i = 0; ; i++) {
    const m = await members(q);
    if (m.pty0!.open && m.sock!.open) break;
    if (i > 2000) throw new Error(`the hub does not see its pty and socket members open: ${JSON.stringify(m)}`);
    await new Promise((res) => setTimeout(res, 5));
  }
  const d: ConsoleDriver = await r.driver({ numQueues: NUM_QUEUES });
  await d.waitPorts(1, settled);
  const logSize = () => fs.statSync(r.path('con.log')).size;
  return { r, q, pty, sock, d, console: d.port(0), logSize };
}

describe('console hub of pty + unix socket + file', () => {
  it("the guest's output appears identically on all three; input from the pty and the socket reaches the guest", async () => {
    const { r, q, pty, sock, d, console: c, logSize } = await start();
    const out = Buffer.concat([
      Buffer.from('boot: hello\r\n'),
      randomBytes(64 * 1024),
      Buffer.from([0, 0x0a, 0x0d, 0x03, 0x1b, 0xff]),
    ]);
    await c.write(out, { chunkSize: 1000 });
    const [viaPty, viaSock] = await Promise.all([pty.read(out.length), sock.read(out.length)]);
    await until(() => logSize() >= out.length, 'the log file to have everything');
    expect(viaPty.equals(out)).toBe(true);
    expect(viaSock.equals(out)).toBe(true);
    expect(fs.readFileSync(r.path('con.log')).equals(out)).toBe(true);

    pty.write('typed on the pty\r');
    expect((await c.read(17)).toString()).toBe('typed on the pty\r');
    await sock.write(Buffer.from('typed on the socket\n'));
    expect((await c.read(20)).toString()).toBe('typed on the socket\n');

    const m = await members(q);
    for (const id of ['pty0', 'sock', 'log']) expect(m[id]).toMatchObject({ 'bytes-out': out.length, drops: 0 });
    expect(m.pty0!['bytes-in']).toBe(17);
    expect(m.sock!['bytes-in']).toBe(20);
    expect(d.problems()).toEqual([]);
  });

  it('a stalled socket client neither stalls the guest nor costs the pty and the file a byte; its drops are reported', async () => {
    // The stalled member may lag 64 KiB (beyond what the kernel's socket buffer holds).
    const BUFFER = 64 * 1024;
    const { q, pty, sock, d, console: c, logSize, r } = await start(`,buffer=${BUFFER}`, { pausedClient: true });
    const total = 4 * 1024 * 1024;
    const out = randomBytes(total);
    // The guest spins on every console buffer (like put_chars): this completes only if the
    // device keeps returning them while the socket client reads nothing.
    const [viaPty] = await Promise.all([pty.read(total, 60_000), c.write(out, { chunkSize: 4096 })]);
    expect(d.fe.queues[c.txQueue]!.inFlight).toBe(0);
    expect(viaPty.equals(out)).toBe(true);
    await until(() => logSize() >= total, 'the log file to have everything');
    expect(fs.readFileSync(r.path('con.log')).equals(out)).toBe(true);

    const m = await members(q);
    expect(m.pty0).toMatchObject({ 'bytes-out': total, drops: 0 });
    expect(m.log).toMatchObject({ 'bytes-out': total, drops: 0 });
    expect(m.sock!.drops).toBeGreaterThan(0);
    expect(m.sock!['bytes-out'] + m.sock!.drops).toBeLessThanOrEqual(total);

    // Once it reads again the client gets what it was not dropped: the start of the stream
    // (in its socket buffer before it stalled) and the newest bytes (its hub buffer).
    sock.sock.resume();
    const kept = total - m.sock!.drops;
    const got = await sock.read(kept);
    expect(got.subarray(0, 1024).equals(out.subarray(0, 1024))).toBe(true);
    expect(got.subarray(kept - BUFFER).equals(out.subarray(total - BUFFER))).toBe(true);
    expect((await members(q)).sock).toMatchObject({ 'bytes-out': kept, drops: total - kept });
    expect(d.problems()).toEqual([]);
  });
});
