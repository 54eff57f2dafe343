// Malformed front-end messages and malformed rings: the daemon logs a clear line naming the
// problem (warn or worse), stays up, and serves a fresh front-end afterwards.
import { afterEach, describe, expect, it } from 'vitest';
import {
  ConsoleDriver,
  DESC_F_INDIRECT,
  DESC_F_NEXT,
  F,
  FLAG_NEED_REPLY,
  FLAG_VERSION,
  Req,
  VhostUserFrontend,
  encodeMessage,
  has,
  memTable,
  u64,
} from '../frontend/index.js';
import { Vm } from '../helpers/vm.js';
import { expectServed, settled } from './served.js';

let vm: Vm | undefined;
afterEach(async () => {
  await vm?.dispose();
  vm = undefined;
});

const WARN = 40;

/** The daemon must say what was wrong (warn or worse); the line is printed for the record. */
async function expectLog(v: Vm, re: RegExp): Promise<void> {
  const line = await v.daemon.waitForLog(re, { minLevel: WARN });
  console.log(`[daemon says] ${line.msg ?? JSON.stringify(line)}`);
}

/** Settles to 'closed' or 'open' once the daemon has reacted (closing, or failing the request). */
async function outcome(fe: VhostUserFrontend, req?: Promise<unknown>): Promise<'closed' | 'failed' | 'open'> {
  if (req) {
    try {
      await req;
    } catch {
      return fe.connected ? 'failed' : 'closed';
    }
    return 'open';
  }
  await Promise.race([fe.closed, new Promise((r) => setTimeout(r, 1000))]);
  return fe.connected ? 'open' : 'closed';
}

function rawFrontend(v: Vm, o: { numQueues?: number } = {}): VhostUserFrontend {
  return VhostUserFrontend.connect({ socketPath: v.socket, numQueues: o.numQueues ?? v.numQueues });
}

describe('bad vhost-user messages', () => {
  it('short header (6 bytes, then EOF)', async () => {
    vm = await Vm.start();
    const fe = rawFrontend(vm);
    fe.sendRaw(encodeMessage(Req.GET_FEATURES).subarray(0, 6));
    fe.shutdownWrite();
    await expectLog(vm, /short header|mid-message|truncated/i);
    await outcome(fe);
    await fe.close();
    await expectServed(vm);
  });

  it('unknown request (99) is refused', async () => {
    vm = await Vm.start();
    const fe = rawFrontend(vm);
    await fe.init();
    const r = fe.request(99, u64(0), { needReply: true });
    expect(await outcome(fe, r)).not.toBe('open');
    await expectLog(vm, /unknown request.*\b99\b|\b99\b.*unknown/i);
    await fe.close();
    await expectServed(vm);
  });

  it('size field larger than the message', async () => {
    vm = await Vm.start();
    const fe = rawFrontend(vm);
    const m = encodeMessage(Req.SET_FEATURES, u64(0));
    m.writeUInt32LE(0x100000, 8); // claims 1 MiB of payload, carries 8 bytes
    fe.sendRaw(m);
    fe.shutdownWrite();
    await expectLog(vm, /payload size 1048576|exceeds|too (large|big|long)|mid-message/i);
    await outcome(fe);
    await fe.close();
    await expectServed(vm);
  });

  it('SET_MEM_TABLE without fds', async () => {
    vm = await Vm.start();
    const fe = rawFrontend(vm);
    await fe.init();
    const r = fe.request(Req.SET_MEM_TABLE, memTable([fe.mem.region()]), { needReply: true, fds: [] });
    expect(await outcome(fe, r)).not.toBe('open');
    await expectLog(vm, /SET_MEM_TABLE.*(file descriptor|fd)/i);
    await fe.close();
    await expectServed(vm);
  });

  it('a payload too short for its request (SET_VRING_NUM with 4 bytes)', async () => {
    vm = await Vm.start();
    const fe = rawFrontend(vm);
    await fe.init();
    fe.sendRaw(encodeMessage(Req.SET_VRING_NUM, Buffer.alloc(4), FLAG_VERSION | FLAG_NEED_REPLY));
    await expectLog(vm, /SET_VRING_NUM.*(payload|size)/i);
    await fe.close();
    await expectServed(vm);
  });
});

describe('bad rings', () => {
  it('ring address outside guest memory', async () => {
    vm = await Vm.start();
    // Port 1's rx ring (queue 4) gets a descriptor table address nothing maps.
    const started = ConsoleDriver.start({
      socketPath: vm.socket,
      numQueues: vm.numQueues,
      timeoutMs: 3000,
      startHooks: { vringAddr: (a) => (a.index === 4 ? { ...a, desc: 0x3fff00000000n } : a) },
    });
    const d = await started.catch(() => undefined);
    await expectLog(vm, /queue 4.*(outside|not in|unmapped).*memory/i);
    await d?.close();
    await expectServed(vm);
  });

  /**
   * Brings a guest up with port 1 open and connected, hands its tx ring to `craft`, kicks,
   * and returns a function that ends this session (front-end and host client: a socket
   * chardev serves one client at a time).
   */
  async function withBrokenTx(
    craft: (d: ConsoleDriver, qi: number) => void,
    o: Parameters<Vm['driver']>[0] = {},
  ): Promise<{ d: ConsoleDriver; end: () => Promise<void> }> {
    vm = await Vm.start();
    const h = await vm.host('c1');
    const d = await vm.driver({ queueSize: 64, ...o });
    await d.waitPorts(3, settled);
    const p = d.port(1);
    await p.open();
    await d.waitFor(() => p.hostOpen, 'port 1 host-open');
    craft(d, p.txQueue);
    d.fe.forceKick(p.txQueue);
    return {
      d,
      end: async () => {
        await d.close();
        h.close();
      },
    };
  }

  it('descriptor address outside guest memory', async () => {
    const { end } = await withBrokenTx((d, qi) => {
      const q = d.fe.queues[qi]!;
      q.writeDesc(0, d.fe.mem.gpa(d.fe.mem.size) + 0x10000n, 64, 0, 0);
      q.publish(0);
    });
    await expectLog(vm!, /queue 5.*(outside|not in|unmapped).*memory/i);
    await end();
    await expectServed(vm!);
  });

  it('descriptor that straddles the end of guest memory', async () => {
    const { end } = await withBrokenTx((d, qi) => {
      const q = d.fe.queues[qi]!;
      q.writeDesc(0, d.fe.mem.gpa(d.fe.mem.size - 16), 4096, 0, 0);
      q.publish(0);
    });
    await expectLog(vm!, /queue 5.*(outside|not in|unmapped).*memory/i);
    await end();
    await expectServed(vm!);
  });

  it('descriptor loop', async () => {
    const { end } = await withBrokenTx((d, qi) => {
      const q = d.fe.queues[qi]!;
      const buf = d.fe.mem.alloc(64);
      q.writeDesc(0, d.fe.mem.gpa(buf), 8, DESC_F_NEXT, 1);
      q.writeDesc(1, d.fe.mem.gpa(buf + 8), 8, DESC_F_NEXT, 0);
      q.publish(0);
    });
    await expectLog(vm!, /queue 5.*(loop|cycle)/i);
    await end();
    await expectServed(vm!);
  });

  it('chain longer than the queue (an indirect table of size+1 entries)', async () => {
    const { end } = await withBrokenTx((d, qi) => {
      const q = d.fe.queues[qi]!;
      const mem = d.fe.mem;
      const n = q.size + 1;
      const buf = mem.alloc(n);
      const table = mem.alloc(16 * n, 16);
      if (has(d.features, F.RING_INDIRECT_DESC)) {
        for (let i = 0; i < n; i++)
          q.writeDescAt(table + 16 * i, mem.gpa(buf + i), 1, i + 1 < n ? DESC_F_NEXT : 0, i + 1);
        q.writeDesc(0, mem.gpa(table), 16 * n, DESC_F_INDIRECT, 0);
      } else {
        // Without indirect descriptors a chain can only outgrow the ring by revisiting one.
        for (let i = 0; i < q.size; i++) q.writeDesc(i, mem.gpa(buf + i), 1, DESC_F_NEXT, (i + 1) % q.size);
      }
      q.publish(0);
    });
    await expectLog(vm!, /queue 5.*(loop|longer|too long|table|indirect)/i);
    await end();
    await expectServed(vm!);
  });

  const badIndirect: [string, (d: ConsoleDriver, qi: number) => void][] = [
    [
      'length not a multiple of 16',
      (d, qi) => {
        const q = d.fe.queues[qi]!;
        const table = d.fe.mem.alloc(64, 16);
        const buf = d.fe.mem.alloc(16);
        q.writeDescAt(table, d.fe.mem.gpa(buf), 8, 0, 0);
        q.writeDesc(0, d.fe.mem.gpa(table), 20, DESC_F_INDIRECT, 0);
        q.publish(0);
      },
    ],
    [
      'an indirect descriptor inside the table',
      (d, qi) => {
        const q = d.fe.queues[qi]!;
        const table = d.fe.mem.alloc(64, 16);
        const inner = d.fe.mem.alloc(64, 16);
        const buf = d.fe.mem.alloc(16);
        q.writeDescAt(inner, d.fe.mem.gpa(buf), 8, 0, 0);
        q.writeDescAt(table, d.fe.mem.gpa(inner), 16, DESC_F_INDIRECT, 0);
        q.writeDesc(0, d.fe.mem.gpa(table), 16, DESC_F_INDIRECT, 0);
        q.publish(0);
      },
    ],
    [
      'a table outside guest memory',
      (d, qi) => {
        const q = d.fe.queues[qi]!;
        q.writeDesc(0, d.fe.mem.gpa(d.fe.mem.size) + 0x100000n, 64, DESC_F_INDIRECT, 0);
        q.publish(0);
      },
    ],
    [
      'a next index past the table',
      (d, qi) => {
        const q = d.fe.queues[qi]!;
        const table = d.fe.mem.alloc(64, 16);
        const buf = d.fe.mem.alloc(16);
        q.writeDescAt(table, d.fe.mem.gpa(buf), 8, DESC_F_NEXT, 7);
        q.writeDesc(0, d.fe.mem.gpa(table), 16, DESC_F_INDIRECT, 0);
        q.publish(0);
      },
    ],
  ];

  it.each(badIndirect)('bad indirect table: %s', async (_, craft) => {
    const { d, end } = await withBrokenTx(craft, { indirect: 'auto' });
    if (!has(d.features, F.RING_INDIRECT_DESC))
      throw new Error('the daemon does not offer INDIRECT_DESC, which issue 2 requires');
    await expectLog(vm!, /queue 5.*(indirect|table|next|outside)/i);
    await end();
    await expectServed(vm!);
  });
});
