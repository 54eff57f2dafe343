// Handshake and port discovery through the real daemon, driven by the test front-end
// (QEMU's message order + a Linux virtio_console model).
import { afterEach, describe, expect, it } from 'vitest';
import { F, ProtoF, has, type ConsoleDriverOptions } from '../frontend/index.js';
import { Vm } from '../helpers/vm.js';

let vm: Vm | undefined;
afterEach(async () => {
  await vm?.dispose();
  vm = undefined;
});

const settled = (p: { id: number; console: boolean; name: string | undefined }) =>
  p.id === 0 ? p.console : p.name !== undefined;

describe('handshake', () => {
  it('offers the console features and protocol features, negotiates what Linux takes, and reports the configured config', async () => {
    vm = await Vm.start({ maxPorts: 4, consoleSize: '80x25' });
    const d = await vm.driver();
    const dev = d.init.features;
    for (const b of [F.CONSOLE_SIZE, F.CONSOLE_MULTIPORT, F.CONSOLE_EMERG_WRITE, F.VERSION_1, F.PROTOCOL_FEATURES]) {
      expect(has(dev, b), `device feature bit ${b}`).toBe(true);
    }
    const proto = d.init.offeredProtocolFeatures;
    for (const b of [
      ProtoF.REPLY_ACK,
      ProtoF.CONFIG,
      ProtoF.BACKEND_REQ,
      ProtoF.CONFIGURE_MEM_SLOTS,
      ProtoF.RESET_DEVICE,
      ProtoF.STATUS,
    ]) {
      expect(has(proto, b), `protocol feature bit ${b}`).toBe(true);
    }
    // Linux: SIZE + MULTIPORT (+ ring features), never EMERG_WRITE.
    expect(has(d.features, F.CONSOLE_SIZE)).toBe(true);
    expect(has(d.features, F.CONSOLE_MULTIPORT)).toBe(true);
    expect(has(d.features, F.CONSOLE_EMERG_WRITE)).toBe(false);
    expect(d.config).toEqual({ cols: 80, rows: 25, maxNrPorts: 4, emergWr: 0 });
    if (d.init.queueNum !== undefined) expect(d.init.queueNum).toBeGreaterThanOrEqual(vm.numQueues);
    if (d.init.maxMemSlots !== undefined) expect(d.init.maxMemSlots).toBeGreaterThanOrEqual(1);
    await d.waitPorts(3, settled);
    expect(d.problems()).toEqual([]);
  });

  it('stops rings on GET_VRING_BASE with bases matching what the guest published', async () => {
    vm = await Vm.start();
    const d = await vm.driver();
    await d.waitPorts(3, settled);
    const h = await vm.host('c1');
    const p1 = d.port(1);
    await p1.open();
    await p1.write(Buffer.from('hello'));
    expect((await h.read(5)).toString()).toBe('hello');
    const bases = await d.fe.stop();
    expect(bases).toHaveLength(vm.numQueues);
    // Every tx buffer was consumed: the device's next avail index is ours.
    for (const q of [3, p1.txQueue]) expect(bases[q], `queue ${q}`).toBe(d.fe.queues[q]!.availIndex);
    // rx queues: at least what the device used, at most what we offered.
    for (const q of [0, 2, 4]) {
      expect(bases[q]).toBeGreaterThanOrEqual(d.fe.queues[q]!.lastUsedIndex);
      expect(bases[q]).toBeLessThanOrEqual(d.fe.queues[q]!.availIndex);
    }
    expect(d.problems()).toEqual([]);
  });
});

describe('discovery', () => {
  it('shows the driver exactly the configured ports: ids, names, console flag, host-open state', async () => {
    vm = await Vm.start({ maxPorts: 4 });
    const h1 = await vm.host('c1'); // port 1's host side is connected before the guest starts
    const d = await vm.driver();
    await d.waitPorts(3, settled);
    await d.waitFor(() => d.port(1).hostOpen, 'port 1 host-open');
    const seen = [...d.ports.values()]
      .sort((a, b) => a.id - b.id)
      .map((p) => ({ id: p.id, name: p.name, console: p.console, hostOpen: p.hostOpen }));
    // The console is host-open with no client, as QEMU's virtconsole is: console output is
    // never held back (it may just go nowhere); generic ports follow their backends.
    expect(seen).toEqual([
      { id: 0, name: undefined, console: true, hostOpen: true },
      { id: 1, name: 'org.example.port1', console: false, hostOpen: true },
      { id: 2, name: 'org.example.port2', console: false, hostOpen: false },
    ]);
    // The console's size reaches a multiport guest only by RESIZE (default order: cols, rows,
    // the spec's and what the e2e guest kernel reads).
    await d.waitFor(() => d.port(0).resizes.length > 0, 'RESIZE for the console');
    expect(d.port(0).resizes[0]).toEqual([80, 25]);
    // A host client connecting later opens the port; leaving closes it.
    const h2 = await vm.host('c2');
    await d.waitFor(() => d.port(2).hostOpen, 'port 2 host-open after its client connected');
    h2.close();
    await d.waitFor(() => !d.port(2).hostOpen, 'port 2 host-closed after its client left');
    h1.close();
    await d.waitFor(() => !d.port(1).hostOpen, 'port 1 host-closed');
    expect(d.problems()).toEqual([]);
  });

  it.each([
    ['rows-cols', [43, 132]],
    ['cols-rows', [132, 43]],
  ] as const)('sends RESIZE in the order given by --resize-order %s', async (order, want) => {
    vm = await Vm.start({ consoleSize: '132x43', extraArgs: ['--resize-order', order] });
    const d = await vm.driver();
    await d.waitFor(() => d.ports.get(0)?.resizes.length === 1, 'RESIZE for the console');
    expect(d.port(0).resizes[0]).toEqual(want);
    // Config space keeps its fixed layout whatever the RESIZE order.
    expect(d.config.cols).toBe(132);
    expect(d.config.rows).toBe(43);
  });

  it('honours explicit port numbers (nr=)', async () => {
    vm = await Vm.start({
      maxPorts: 8,
      ports: [
        { driver: 'virtconsole', chardev: 'c0' },
        { driver: 'virtserialport', chardev: 'c5', name: 'org.example.five', nr: 5 },
      ],
    });
    const d = await vm.driver();
    await d.waitPorts(2, settled);
    expect([...d.ports.keys()].sort()).toEqual([0, 5]);
    expect(d.port(5).name).toBe('org.example.five');
    expect(d.problems()).toEqual([]);
  });

  it('serves a single-port (non-MULTIPORT) front-end: port 0 is the console, size from config', async () => {
    vm = await Vm.start({
      consoleSize: '100x30',
      ports: [{ driver: 'virtconsole', chardev: 'c0' }],
      extraArgs: ['--multiport', 'off'],
    });
    const h = await vm.host('c0');
    const d = await vm.driver();
    expect(has(d.init.features, F.CONSOLE_MULTIPORT)).toBe(false);
    expect(d.multiport).toBe(false);
    expect(d.config.cols).toBe(100);
    expect(d.config.rows).toBe(30);
    const p0 = d.port(0);
    expect(p0.console).toBe(true);
    await p0.write(Buffer.from('boot messages\r\n'));
    expect((await h.read(15)).toString()).toBe('boot messages\r\n');
    await h.write(Buffer.from('ls\n'));
    expect((await p0.read(3)).toString()).toBe('ls\n');
    expect(d.problems()).toEqual([]);
  });
});

// Front-end variants: what QEMU 10.0 and 10.2 send, plus ring options a guest may pick.
const variants: [string, Partial<ConsoleDriverOptions>][] = [
  ['QEMU 10.2 (REPLY_ACK, ADD_MEM_REG, vq_size 64)', { queueSize: 64 }],
  ['QEMU 10.0 (vq_size 1024, no NEED_REPLY on fd requests)', { queueSize: 1024, needReplyOnFdRequests: false }],
  [
    'no REPLY_ACK (GET_FEATURES barriers), SET_MEM_TABLE, no STATUS',
    { replyAck: false, memSlots: false, status: false },
  ],
  ['no EVENT_IDX, indirect descriptors for every buffer', { eventIdx: false, indirect: 'always' }],
  ['no INDIRECT_DESC, no backend channel', { indirect: 'never', backendReq: false }],
  [
    'ring parts apart, RAM at GPA 4 GiB, user address elsewhere',
    { separateRingParts: true, memory: { guestBase: 0x100000000n, userBase: 0x5a5a00000000n } },
  ],
];

describe('front-end variants', () => {
  it.each(variants)('%s: ports appear and bytes flow both ways', async (_, o) => {
    vm = await Vm.start();
    const h = await vm.host('c1');
    const d = await vm.driver(o);
    await d.waitPorts(3, settled);
    const p1 = d.port(1);
    await p1.open();
    await d.waitFor(() => p1.hostOpen, 'port 1 host-open');
    const out = Buffer.alloc(100_000, 0x41);
    await p1.write(out);
    expect((await h.read(out.length)).equals(out)).toBe(true);
    const back = Buffer.alloc(50_000, 0x42);
    await h.write(back);
    expect((await p1.read(back.length)).equals(back)).toBe(true);
    expect(d.problems()).toEqual([]);
  });
});
