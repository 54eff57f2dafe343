// GET /metrics on the real daemon (--metrics 127.0.0.1:0), with a test front-end playing QEMU
// and the guest, host clients on the socket chardevs and a control client: every value the
// issue asks for, checked against what was done, and the names against Prometheus conventions.
import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { DESC_F_NEXT, type ConsolePort } from '../frontend/index.js';
import { until } from '../helpers/daemon.js';
import { Vm } from '../helpers/vm.js';

let vm: Vm | undefined;
afterEach(async () => {
  await vm?.dispose();
  vm = undefined;
});

const settled = (p: ConsolePort) => (p.id === 0 ? p.console : p.name !== undefined);

function get(url: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method }, (res) => {
      let body = '';
      res
        .setEncoding('utf8')
        .on('data', (d: string) => {
          body += d;
        })
        .on('end', () => resolve({ status: res.statusCode!, type: String(res.headers['content-type']), body }));
    });
    req.on('error', reject).end();
  });
}

/** name{labels} -> value, from the text format. */
function samples(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}

async function metricsUrl(v: Vm): Promise<string> {
  await until(() => /metrics (http:\S+)/.test(v.daemon.stdout), "the banner's metrics line");
  return /metrics (http:\S+)/.exec(v.daemon.stdout)![1]!;
}

describe('metrics endpoint (Prometheus text)', () => {
  it('reports bytes, open states, members, drops, front-end, control clients, with conventional names', async () => {
    vm = await Vm.start({ control: true, extraArgs: ['--metrics', '127.0.0.1:0'] });
    const url = await metricsUrl(vm);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);

    const before = samples((await get(url)).body);
    expect(before.get('vhost_console_frontend_connected{vm="vm0"}')).toBe(0);
    expect(
      before.get('vhost_console_port_members_connected{vm="vm0",port="org.example.port1",name="org.example.port1"}'),
    ).toBe(0);

    const h = await vm.host('c1');
    const q = await vm.qmp();
    const d = await vm.driver();
    await d.waitPorts(3, settled);
    const p = d.port(1);
    await p.open();
    await d.waitFor(() => p.hostOpen, 'port 1 host-open');
    const out = Buffer.alloc(12_345, 0x61);
    await Promise.all([p.write(out), h.read(out.length)]);
    await h.write(Buffer.from('ping!'));
    expect((await p.read(5)).toString()).toBe('ping!');

    const r = await get(url);
    expect(r.status).toBe(200);
    expect(r.type).toMatch(/^text\/plain; version=0\.0\.4/);
    const s = samples(r.body);
    const port1 = 'vm="vm0",port="org.example.port1",name="org.example.port1"';
    expect(s.get('vhost_console_frontend_connected{vm="vm0"}')).toBe(1);
    expect(s.get('vhost_console_frontend_connections_total{vm="vm0"}')).toBe(1);
    expect(s.get('vhost_console_ring_faults_total{vm="vm0"}')).toBe(0);
    expect(s.get(`vhost_console_port_bytes_total{${port1},direction="from_guest"}`)).toBe(12_345);
    expect(s.get(`vhost_console_port_bytes_total{${port1},direction="to_guest"}`)).toBe(5);
    expect(s.get(`vhost_console_port_guest_open{${port1}}`)).toBe(1);
    expect(s.get(`vhost_console_port_host_open{${port1}}`)).toBe(1);
    expect(s.get(`vhost_console_port_members{${port1}}`)).toBe(1);
    expect(s.get(`vhost_console_port_members_connected{${port1}}`)).toBe(1);
    expect(s.get(`vhost_console_member_connected{${port1},chardev="c1"}`)).toBe(1);
    expect(s.get(`vhost_console_member_bytes_total{${port1},chardev="c1",direction="from_guest"}`)).toBe(12_345);
    expect(s.get(`vhost_console_member_bytes_total{${port1},chardev="c1",direction="to_guest"}`)).toBe(5);
    expect(s.get(`vhost_console_member_dropped_bytes_total{${port1},chardev="c1"}`)).toBe(0);
    // The unopened port 2: nobody connected, the guest has not opened it.
    expect(s.get('vhost_console_port_guest_open{vm="vm0",port="org.example.port2",name="org.example.port2"}')).toBe(0);
    expect(s.get('vhost_console_port_host_open{vm="vm0",port="org.example.port2",name="org.example.port2"}')).toBe(0);
    expect(s.get('vhost_console_control_clients')).toBe(1);
    // Standard process metrics come along (prom-client's defaults).
    expect(s.get('process_cpu_seconds_total')).toBeGreaterThan(0);

    // Conventions: every counter ends in _total, byte counts are in bytes, gauges do not end in _total.
    const types = [...r.body.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!] as const);
    const ours = types.filter(([n]) => n.startsWith('vhost_console_'));
    expect(ours.length).toBeGreaterThanOrEqual(12);
    for (const [name, type] of ours) {
      expect(name).toMatch(/^[a-z_]+$/);
      if (type === 'counter') expect(name).toMatch(/_total$/);
      else expect(name).not.toMatch(/_total$/);
      if (/bytes/.test(name)) expect(name).toMatch(/_bytes_total$/);
    }

    q.close();
    h.close();
    await d.close();
  });

  it('counts a ring fault and the next front-end connection', async () => {
    vm = await Vm.start({ extraArgs: ['--metrics', '127.0.0.1:0'] });
    const url = await metricsUrl(vm);
    const h = await vm.host('c1');
    const d = await vm.driver({ queueSize: 64 });
    await d.waitPorts(3, settled);
    const p = d.port(1);
    await p.open();
    await d.waitFor(() => p.hostOpen, 'port 1 host-open');
    // A descriptor loop on port 1's tx queue: the device ends that connection.
    const q = d.fe.queues[p.txQueue]!;
    q.writeDesc(0, d.fe.mem.gpa(0), 16, DESC_F_NEXT, 0);
    q.publish(0);
    d.fe.forceKick(p.txQueue);
    await vm.daemon.waitForLog(/loop|longer than|chain/i, { minLevel: 40 });
    await d.close();
    h.close();
    const d2 = await vm.driver();
    await d2.waitPorts(3, settled);
    const s = samples((await get(url)).body);
    expect(s.get('vhost_console_ring_faults_total{vm="vm0"}')).toBe(1);
    expect(s.get('vhost_console_frontend_connections_total{vm="vm0"}')).toBe(2);
    expect(s.get('vhost_console_frontend_connected{vm="vm0"}')).toBe(1);
  });

  it('answers 404 elsewhere and 405 to other methods; listens on loopback by default', async () => {
    vm = await Vm.start({ extraArgs: ['--metrics', '0'] });
    const url = await metricsUrl(vm);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:/);
    expect((await get(url.replace('/metrics', '/'))).status).toBe(404);
    expect((await get(url, 'POST')).status).toBe(405);
    expect((await get(url, 'HEAD')).status).toBe(200);
  });
});
