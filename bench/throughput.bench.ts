// Throughput and latency of a named port through the real daemon, guest side played by the
// test front-end, host side a client of the port's unix-socket chardev. Each figure comes
// with a reference measured in the same run: the same bytes through a plain Node relay
// process between two unix sockets (what any Node-based host side must at least pay).
// Run: npm run bench   (prints a table; asserts only that the bytes arrived intact)
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { ConsoleDriver, type ConsolePort } from '../test/frontend/index.js';
import { Daemon, HostClient, tmpDir, until } from '../test/helpers/daemon.js';
import { Vm } from '../test/helpers/vm.js';

const MiB = 1024 * 1024;
const SIZE = Number(process.env.BENCH_MIB ?? 64) * MiB;
const ROUND_TRIPS = Number(process.env.BENCH_RTT ?? 2000);
const rows: { what: string; ours: number; ref: number; unit: string }[] = [];

const now = () => Number(process.hrtime.bigint()) / 1e9;
const mibps = (bytes: number, s: number) => bytes / MiB / s;

afterAll(() => {
  const table = ['| benchmark | vhost-console | reference (plain Node relay) | ratio |', '| --- | --- | --- | --- |'];
  for (const r of rows)
    table.push(
      `| ${r.what} | ${r.ours.toFixed(1)} ${r.unit} | ${r.ref.toFixed(1)} ${r.unit} | ${(r.ours / r.ref).toFixed(2)} |`,
    );
  console.log(`\n${table.join('\n')}\n`);
});

/** A relay process with a client on each side: `a` writes, `b` reads (and the other way). */
async function relay(): Promise<{ a: HostClient; b: HostClient; stop: () => void }> {
  const dir = tmpDir('vhc-bench-');
  const inPath = join(dir.path, 'in.sock');
  const outPath = join(dir.path, 'out.sock');
  const child: ChildProcess = spawn(
    process.execPath,
    [new URL('./relay.mjs', import.meta.url).pathname, inPath, outPath],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout!.on('data', (d) => {
    out += d;
  });
  await until(() => out.includes('out ready'), 'relay out socket');
  const b = await HostClient.connect(outPath);
  await until(() => out.includes('relay ready'), 'relay in socket');
  const a = await HostClient.connect(inPath);
  return {
    a,
    b,
    stop: () => {
      a.close();
      b.close();
      child.kill();
      dir.remove();
    },
  };
}

async function openPort(rxBufSize = 4096): Promise<{ vm: Vm; p: ConsolePort; h: HostClient }> {
  const vm = await Vm.start();
  const h = await vm.host('c1');
  const d = await vm.driver({ rxBufSize });
  await d.waitPorts(3, (p) => (p.id === 0 ? p.console : p.name !== undefined));
  const p = d.port(1);
  await p.open();
  await d.waitFor(() => p.hostOpen, 'host-open');
  return { vm, p, h };
}

it('guest -> host, 32 KiB guest buffers (Linux write size)', async () => {
  const data = randomBytes(SIZE);
  const { vm, p, h } = await openPort();
  let t = now();
  const [, got] = await Promise.all([p.write(data, { chunkSize: 32 * 1024 }), h.read(SIZE, 300_000)]);
  const ours = mibps(SIZE, now() - t);
  expect(got.equals(data)).toBe(true);
  await vm.dispose();

  const r = await relay();
  t = now();
  const [, got2] = await Promise.all([r.a.write(data), r.b.read(SIZE, 300_000)]);
  const ref = mibps(SIZE, now() - t);
  expect(got2.equals(data)).toBe(true);
  r.stop();
  rows.push({ what: `guest->host ${SIZE / MiB} MiB, 32 KiB buffers`, ours, ref, unit: 'MiB/s' });
});

it('host -> guest, 4 KiB guest rx buffers (Linux PAGE_SIZE)', async () => {
  const data = randomBytes(SIZE);
  const { vm, p, h } = await openPort();
  let t = now();
  const [, got] = await Promise.all([h.write(data), p.read(SIZE, 300_000)]);
  const ours = mibps(SIZE, now() - t);
  expect(got.equals(data)).toBe(true);
  await vm.dispose();

  const r = await relay();
  t = now();
  const [, got2] = await Promise.all([r.b.write(data), r.a.read(SIZE, 300_000)]);
  const ref = mibps(SIZE, now() - t);
  expect(got2.equals(data)).toBe(true);
  r.stop();
  rows.push({ what: `host->guest ${SIZE / MiB} MiB, 4 KiB rx buffers`, ours, ref, unit: 'MiB/s' });
});

it('round trip of 1 byte (guest -> host echo -> guest)', async () => {
  const { vm, p, h } = await openPort();
  h.sock.on('data', (d: Buffer) => h.sock.write(d)); // echo
  const one = Buffer.from([0x2a]);
  let t = now();
  for (let i = 0; i < ROUND_TRIPS; i++) {
    await p.write(one);
    await p.read(1);
  }
  const ours = ((now() - t) / ROUND_TRIPS) * 1e6;
  await vm.dispose();

  const r = await relay();
  r.b.sock.on('data', (d: Buffer) => r.b.sock.write(d));
  t = now();
  for (let i = 0; i < ROUND_TRIPS; i++) {
    await r.a.write(one);
    await r.a.read(1);
  }
  const ref = ((now() - t) / ROUND_TRIPS) * 1e6;
  r.stop();
  rows.push({ what: `1-byte round trip (mean of ${ROUND_TRIPS})`, ours, ref, unit: 'µs' });
});

it('fan-out: guest -> host to 4 socket members of one hub', async () => {
  const dir = tmpDir('vhc-bench-');
  const sock = (id: string) => join(dir.path, `${id}.sock`);
  const ids = ['m0', 'm1', 'm2', 'm3'];
  const args = ['--socket', sock('vm'), '--max-ports', '2', '--log-level', 'warn'];
  for (const id of ['c0', ...ids]) args.push('--chardev', `socket,id=${id},path=${sock(id)},server=on,wait=off`);
  args.push('--chardev', `hub,id=hub1,${ids.map((id, i) => `chardevs.${i}=${id}`).join(',')}`);
  args.push('--device', 'virtconsole,chardev=c0', '--device', 'virtserialport,chardev=hub1,name=org.example.fan');
  const daemon = await Daemon.start(args, [sock('vm'), ...ids.map(sock)]);
  const hosts = await Promise.all(ids.map((id) => HostClient.connect(sock(id))));
  const d = await ConsoleDriver.start({ socketPath: sock('vm'), numQueues: 6 });
  await d.waitPorts(2, (p) => (p.id === 0 ? p.console : p.name !== undefined));
  const p = d.port(1);
  await p.open();
  await d.waitFor(() => p.hostOpen, 'host-open');
  const data = randomBytes(SIZE);
  const t = now();
  const [, ...got] = await Promise.all([
    p.write(data, { chunkSize: 32 * 1024 }),
    ...hosts.map((h) => h.read(SIZE, 300_000)),
  ]);
  const ours = mibps(SIZE, now() - t);
  for (const g of got) expect(g.equals(data)).toBe(true);
  for (const h of hosts) h.close();
  await d.close();
  await daemon.stop();
  dir.remove();
  const single = rows.find((r) => r.what.startsWith('guest->host'));
  rows.push({
    what: `guest->host ${SIZE / MiB} MiB to 4 members (reference: 1 member, this run)`,
    ours,
    ref: single?.ours ?? NaN,
    unit: 'MiB/s',
  });
});
