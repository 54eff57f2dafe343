// Several VMs in one daemon process (a config file with two VMs): a broken front-end on one
// never affects the other's data, and the broken one serves a fresh front-end afterwards.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Rig, settled } from './util.js';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.dispose();
  rig = undefined;
});

const MAX_PORTS = 2;
const NUM_QUEUES = 2 * (MAX_PORTS + 1);

async function start(): Promise<Rig> {
  rig = await Rig.start((dir) => {
    const vm = (id: string) => ({
      id,
      socket: `${dir}/${id}.sock`,
      'max-ports': MAX_PORTS,
      chardev: [`null,id=con`, `socket,id=p1,path=${dir}/${id}-p1.sock,server=on,wait=off`],
      device: ['virtconsole,chardev=con', 'virtserialport,chardev=p1,name=org.example.p1'],
    });
    const file = `${dir}/vms.json`;
    fs.writeFileSync(file, JSON.stringify({ control: `${dir}/ctl.sock`, vm: [vm('a'), vm('b')] }));
    return {
      args: ['--config', file],
      wait: [`${dir}/a.sock`, `${dir}/b.sock`, `${dir}/ctl.sock`, `${dir}/a-p1.sock`, `${dir}/b-p1.sock`],
    };
  });
  return rig;
}

/** VM `id`'s guest with port 1 open and its host client connected. */
async function openPort(r: Rig, id: string) {
  const h = await r.host(`${id}-p1.sock`);
  const d = await r.driver({ socket: r.path(`${id}.sock`), numQueues: NUM_QUEUES });
  await d.waitPorts(2, settled);
  const p = d.port(1);
  await p.open();
  await d.waitFor(() => p.hostOpen, `vm ${id}: port 1 host-open`);
  return { d, p, h };
}

describe('several VMs in one daemon', () => {
  it("garbage from one VM's front-end ends that connection only; the other VM's data keeps flowing", async () => {
    const r = await start();
    const q = await r.qmp();
    expect(((await q.execute('query-vms')) as { id: string }[]).map((v) => v.id)).toEqual(['a', 'b']);
    const a = await openPort(r, 'a');
    const b = await openPort(r, 'b');

    // A transfer on b in both directions, while a's front-end sends garbage mid-session
    // and a second, raw connection to a's socket sends garbage from the start.
    const out = randomBytes(4 * 1024 * 1024);
    const inb = randomBytes(1024 * 1024);
    const transfer = Promise.all([b.p.write(out), b.h.write(inb), b.h.read(out.length), b.p.read(inb.length)]);
    const mark = q.events.length;
    a.d.fe.sendRaw(randomBytes(4096));
    await q.waitEvent(
      (e) => e.event === 'FRONTEND_DISCONNECTED' && e.data.vm === 'a',
      'FRONTEND_DISCONNECTED for a',
      mark,
    );
    await a.d.fe.closed;
    const raw = net.connect(r.path('a.sock'));
    raw.on('error', () => {});
    raw.write(randomBytes(8192));
    await new Promise<void>((resolve) => raw.once('close', () => resolve()));

    const [, , gotOut, gotIn] = await transfer;
    expect(gotOut.equals(out)).toBe(true);
    expect(gotIn.equals(inb)).toBe(true);
    expect(b.d.fe.connected).toBe(true);
    expect(b.d.problems()).toEqual([]);
    expect(q.events.slice(mark).filter((e) => e.event === 'FRONTEND_DISCONNECTED' && e.data.vm === 'b')).toEqual([]);
    expect(r.daemon.alive).toBe(true);

    // b's ports were untouched; a serves a fresh front-end.
    const ports = (await q.execute('query-ports', { vm: 'b' })) as {
      id: string;
      'guest-open': boolean;
      'bytes-out': number;
      'bytes-in': number;
    }[];
    expect(ports.find((p) => p.id === 'org.example.p1')).toMatchObject({
      'guest-open': true,
      'bytes-out': out.length,
      'bytes-in': inb.length,
    });
    a.h.close();
    const again = await openPort(r, 'a');
    await again.p.write(Buffer.from('a is back'));
    expect((await again.h.read(9)).toString()).toBe('a is back');
    expect(again.d.problems()).toEqual([]);
  });

  it("a backend error and a broken ring on one VM leave the other's data flowing", async () => {
    const r = await start();
    const q = await r.qmp();
    const a = await openPort(r, 'a');
    const b = await openPort(r, 'b');
    // a's port 1 gets a second member: a client socket to a server of ours that closes the
    // connection as soon as it is made, so the daemon's writes to it fail (EPIPE/ECONNRESET).
    const server = net.createServer((s) => s.destroy());
    await new Promise<void>((resolve) => server.listen(r.path('ext.sock'), resolve));
    try {
      await q.execute('chardev-add', {
        vm: 'a',
        id: 'ext',
        backend: {
          type: 'socket',
          data: { addr: { type: 'unix', data: { path: r.path('ext.sock') } }, server: false },
        },
      });
      await q.execute('hub-attach', { vm: 'a', port: 'org.example.p1', chardev: 'ext' });
      const outA = randomBytes(2 * 1024 * 1024);
      const out = randomBytes(2 * 1024 * 1024);
      const [, gotA, , gotB] = await Promise.all([
        a.p.write(outA),
        a.h.read(outA.length),
        b.p.write(out),
        b.h.read(out.length),
      ]);
      // The failing member neither stalls nor corrupts a's other member, nor touches b.
      expect(gotA.equals(outA)).toBe(true);
      expect(gotB.equals(out)).toBe(true);
      const members = (
        (await q.execute('query-ports', { vm: 'a' })) as { id: string; members: { chardev: string; open: boolean }[] }[]
      )[1]!.members;
      expect(members.find((m) => m.chardev === 'ext')!.open).toBe(false);
    } finally {
      server.close();
    }

    // Now a's guest publishes a descriptor outside its memory on port 1's tx queue.
    const mark = q.events.length;
    const qa = a.d.fe.queues[a.p.txQueue]!;
    qa.writeDesc(0, a.d.fe.mem.gpa(a.d.fe.mem.size) + 0x10000n, 64, 0, 0);
    qa.publish(0);
    a.d.fe.forceKick(a.p.txQueue);
    await r.daemon.waitForLog(/outside|not in|unmapped/i, { minLevel: 40 });
    const out2 = randomBytes(1024 * 1024);
    const [, got2] = await Promise.all([b.p.write(out2), b.h.read(out2.length)]);
    expect(got2.equals(out2)).toBe(true);
    await b.h.write(Buffer.from('still here'));
    expect((await b.p.read(10)).toString()).toBe('still here');
    expect(b.d.problems()).toEqual([]);
    expect(q.events.slice(mark).filter((e) => e.event === 'FRONTEND_DISCONNECTED' && e.data.vm === 'b')).toEqual([]);
    expect(r.daemon.alive).toBe(true);
  });

  it('control commands address one VM: vm is required to create, ids are found in their VM', async () => {
    const r = await start();
    const q = await r.qmp();
    const err = await q.execute('console-resize', { cols: 100, rows: 30 }).catch((e: Error) => e.message);
    expect(err).toMatch(/Parameter 'vm' is missing: the daemon runs several VMs \(a, b\)/);
    const dup = await q.execute('chardev-remove', { id: 'p1' }).catch((e: Error) => e.message);
    expect(dup).toMatch(/exists in several VMs \(a, b\): give 'vm'/);
    // A chardev added to b is found in b without naming it; a's socket path stays a's.
    await q.execute('chardev-add', { vm: 'b', id: 'extra', backend: { type: 'null', data: {} } });
    expect(await q.execute('chardev-remove', { id: 'extra' })).toEqual({});
    const taken = await q
      .execute('chardev-add', {
        vm: 'b',
        id: 'steal',
        backend: { type: 'socket', data: { addr: { type: 'unix', data: { path: r.path('a-p1.sock') } } } },
      })
      .catch((e: Error) => e.message);
    expect(taken).toMatch(/already used by vm 'a': chardev 'p1'/);
    expect(((await q.execute('query-chardev', { vm: 'a' })) as { label: string }[]).map((c) => c.label).sort()).toEqual(
      ['con', 'p1'],
    );
  });
});
