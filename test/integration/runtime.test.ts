// Changes while the guest runs, made through the daemon's control API: port unplug/plug
// (PORT_REMOVE / PORT_ADD) and console resize (RESIZE, or a config-change notification on the
// backend channel for a single-port front-end).
import { afterEach, describe, expect, it } from 'vitest';
import { BackendReq, type ConsolePort } from '../frontend/index.js';
import { Vm } from '../helpers/vm.js';

let vm: Vm | undefined;
afterEach(async () => {
  await vm?.dispose();
  vm = undefined;
});

const settled = (p: ConsolePort) => (p.id === 0 ? p.console : p.name !== undefined);

describe('run-time changes', () => {
  it('device_del sends PORT_REMOVE; device_add sends PORT_ADD + PORT_NAME and the new port carries data', async () => {
    vm = await Vm.start({ control: true, maxPorts: 4 });
    const qmp = await vm.qmp();
    const d = await vm.driver();
    await d.waitPorts(3, settled);
    await qmp.execute('device_del', { id: 'org.example.port2' });
    await d.waitFor(() => !d.ports.has(2), 'PORT_REMOVE for port 2');
    expect(d.removedPorts.map((p) => p.id)).toEqual([2]);

    await qmp.execute('device_add', { driver: 'virtserialport', chardev: 'c2', name: 'org.example.late', nr: 3 });
    await d.waitFor(() => d.ports.get(3)?.name === 'org.example.late', 'PORT_ADD + PORT_NAME for port 3');
    const p3 = d.port(3);
    expect(p3.console).toBe(false);
    const h = await vm.host('c2');
    await p3.open();
    await d.waitFor(() => p3.hostOpen, 'port 3 host-open');
    await p3.write(Buffer.from('late hello'));
    expect((await h.read(10)).toString()).toBe('late hello');
    await h.write(Buffer.from('late reply'));
    expect((await p3.read(10)).toString()).toBe('late reply');
    expect(d.problems()).toEqual([]);
  });

  it('console-resize sends RESIZE to a multiport guest, in the default order', async () => {
    vm = await Vm.start({ control: true, consoleSize: '80x25' });
    const qmp = await vm.qmp();
    const d = await vm.driver();
    await d.waitPorts(3, settled);
    const c = d.port(0);
    await d.waitFor(() => c.resizes.length === 1, 'the initial RESIZE');
    await qmp.execute('console-resize', { cols: 120, rows: 40 });
    await d.waitFor(() => c.resizes.length === 2, 'a second RESIZE');
    expect(c.resizes).toEqual([
      [80, 25],
      [120, 40],
    ]); // default order: cols, rows
    expect(d.problems()).toEqual([]);
  });

  it('console-resize on a single-port front-end: config-change notification, new size in config', async () => {
    vm = await Vm.start({
      control: true,
      consoleSize: '80x25',
      ports: [{ driver: 'virtconsole', chardev: 'c0' }],
      extraArgs: ['--multiport', 'off'],
    });
    const qmp = await vm.qmp();
    const d = await vm.driver();
    expect(d.multiport).toBe(false);
    let notified = 0;
    d.fe.onBackendMessage((req) => {
      if (req === BackendReq.CONFIG_CHANGE_MSG) notified++;
    });
    await qmp.execute('console-resize', { cols: 132, rows: 50 });
    await d.waitFor(() => notified > 0 || d.fe.backendMessages.length > 0, 'CONFIG_CHANGE_MSG on the backend channel');
    expect(d.fe.backendMessages[0]!.request).toBe(BackendReq.CONFIG_CHANGE_MSG);
    // The guest then reads the size again, as Linux does on a config interrupt.
    const cfg = await d.fe.getConfig(12);
    expect([cfg.readUInt16LE(0), cfg.readUInt16LE(2)]).toEqual([132, 50]);
    expect(d.problems()).toEqual([]);
  });
});
