// Issue 8, "never deliver stale input": input for a port the guest has not opened follows
// QEMU's virtio-serial (virtio_serial_guest_ready() is 0 for a port the guest has not opened,
// so the backend is not read): it waits in the OS object, query-ports shows it, and a client
// that leaves before the guest opens the port takes its input with it. The real daemon, its
// control socket and the test front-end playing QEMU and the Linux driver.
import { afterEach, describe, expect, it } from 'vitest';
import type { QmpClient } from '../helpers/qmp.js';
import { PtyPeer, Rig, settled, until } from './util.js';

const MAX_PORTS = 4;
const NUM_QUEUES = 2 * (MAX_PORTS + 1);
const PING = '{"execute":"guest-ping"}\n';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.dispose();
  rig = undefined;
});

async function start(): Promise<Rig> {
  rig = await Rig.start((dir) => ({
    args: [
      '--socket',
      `${dir}/vm.sock`,
      '--max-ports',
      String(MAX_PORTS),
      '--control',
      `${dir}/ctl.sock`,
      '--chardev',
      `socket,id=con,path=${dir}/con.sock,server=on,wait=off`,
      '--device',
      'virtconsole,id=console,chardev=con',
      '--chardev',
      `socket,id=qga,path=${dir}/qga.sock,server=on,wait=off`,
      '--device',
      'virtserialport,id=qga0,chardev=qga,name=org.qemu.guest_agent.0',
      '--chardev',
      `pty,id=tty,path=${dir}/tty.pty`,
      '--device',
      'virtserialport,id=tty0,chardev=tty,name=org.example.tty',
    ],
    wait: [`${dir}/vm.sock`, `${dir}/ctl.sock`, `${dir}/qga.sock`, `${dir}/tty.pty`],
  }));
  return rig;
}

type PortInfo = {
  id: string;
  'guest-open': boolean;
  'input-held': number;
  'input-waiting': number;
  members: { chardev: string; open: boolean }[];
};

async function portInfo(q: QmpClient, id: string): Promise<PortInfo> {
  const ports = (await q.execute('query-ports')) as PortInfo[];
  return ports.find((p) => p.id === id)!;
}

async function waitPort(q: QmpClient, id: string, pred: (p: PortInfo) => boolean, what: string): Promise<PortInfo> {
  let last: PortInfo | undefined;
  const end = Date.now() + 5000;
  while (Date.now() < end) {
    last = await portInfo(q, id);
    if (pred(last)) return last;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`port '${id}': ${what}; last query-ports entry: ${JSON.stringify(last)}`);
}

describe('input for a generic port the guest has not opened', () => {
  it('the qemu-ga scenario: a guest-ping sent with no guest running, client gone, is not delivered when the guest opens the port 1 s later', async () => {
    const r = await start();
    const q = await r.qmp();
    // No guest: a client sends a request and leaves, as `printf ... | socat - UNIX-CONNECT:qga.sock` does.
    const c = await r.host('qga.sock');
    await c.write(Buffer.from(PING));
    // It waits unread in the socket: query-ports shows it.
    await waitPort(
      q,
      'qga0',
      (p) => p['input-waiting'] === PING.length && p['input-held'] === 0,
      `${PING.length} bytes waiting`,
    );
    c.close();
    await waitPort(
      q,
      'qga0',
      (p) => !p.members[0]!.open && p['input-waiting'] === 0 && p['input-held'] === 0,
      'the client gone and its input with it',
    );

    await new Promise((res) => setTimeout(res, 1000));
    const d = await r.driver({ numQueues: NUM_QUEUES });
    await d.waitPorts(2, settled);
    const p = d.port(1);
    await p.open(); // qemu-ga opens /dev/virtio-ports/org.qemu.guest_agent.0
    await waitPort(q, 'qga0', (i) => i['guest-open'], 'guest-open');
    await new Promise((res) => setTimeout(res, 500));
    expect(p.receivedBytes).toBe(0);
    expect(p.bufferedBytes).toBe(0);

    // A client that is there when the guest opens the port is served as before.
    const c2 = await r.host('qga.sock');
    await c2.write(Buffer.from(PING));
    expect((await p.read(PING.length)).toString()).toBe(PING);
  });

  it("with the guest up but the port closed: nothing is read; a departed client's input is dropped, a present client's is delivered on open", async () => {
    const r = await start();
    const q = await r.qmp();
    const d = await r.driver({ numQueues: NUM_QUEUES });
    await d.waitPorts(2, settled);
    const p = d.port(1);

    const gone = await r.host('qga.sock');
    await gone.write(Buffer.from('stale\n'));
    await waitPort(
      q,
      'qga0',
      (i) => i['input-waiting'] === 6 && i['input-held'] === 0,
      'the bytes waiting in the socket, unread',
    );
    gone.close();
    await waitPort(
      q,
      'qga0',
      (i) => !i.members[0]!.open && i['input-waiting'] === 0,
      "the departed client's input gone",
    );

    const stays = await r.host('qga.sock');
    await stays.write(Buffer.from('fresh\n'));
    await waitPort(
      q,
      'qga0',
      (i) => i.members[0]!.open && i['input-waiting'] === 6,
      "the present client's bytes waiting",
    );
    await p.open();
    expect((await p.read(6)).toString()).toBe('fresh\n');
    await new Promise((res) => setTimeout(res, 300));
    expect(p.receivedBytes).toBe(6);
    const after = await portInfo(q, 'qga0');
    expect(after).toMatchObject({ 'guest-open': true, 'input-held': 0, 'input-waiting': 0 });

    // The guest closes the port again: reading stops, input waits in the socket once more.
    await p.close();
    await waitPort(q, 'qga0', (i) => !i['guest-open'], 'guest-open false');
    await stays.write(Buffer.from('later\n'));
    await waitPort(q, 'qga0', (i) => i['input-waiting'] === 6, 'input waiting while the port is closed');
    await p.open();
    expect((await p.read(6)).toString()).toBe('later\n');
    await until(() => p.receivedBytes === 12, 'all 12 bytes');
  });

  it('a pty: what a terminal typed before it closed is flushed, not sent when the guest opens the port', async () => {
    const r = await start();
    const q = await r.qmp();
    const d = await r.driver({ numQueues: NUM_QUEUES });
    await d.waitPorts(3, settled);
    const p = d.port(2);
    const term = new PtyPeer(r.path('tty.pty'));
    term.write('stale\n');
    await waitPort(
      q,
      'tty0',
      (i) => i.members[0]!.open && i['input-waiting'] === 6,
      'the typed bytes waiting in the pty',
    );
    term.close();
    await waitPort(
      q,
      'tty0',
      (i) => !i.members[0]!.open && i['input-waiting'] === 0,
      'the terminal gone and its input flushed',
    );
    await p.open();
    await new Promise((res) => setTimeout(res, 500));
    expect(p.receivedBytes).toBe(0);
    const next = r.pty(r.path('tty.pty'));
    await waitPort(q, 'tty0', (i) => i.members[0]!.open, 'the next terminal');
    next.write('fresh\n');
    expect((await p.read(6)).toString()).toBe('fresh\n');
  });
});
