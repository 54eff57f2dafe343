// The daemon's own log: JSON lines when stderr is not a terminal, readable lines at a terminal
// (pino-pretty) or with --log-format pretty; and the start-up banner listing every endpoint.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI, Daemon, ROOT, tmpDir, until } from '../helpers/daemon.js';
import { QmpClient } from '../helpers/qmp.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

describe('log format and banner', () => {
  it('JSON lines when stderr is a pipe (the default), with the banner listing every endpoint', async () => {
    const dir = tmpDir('vhc-logs-');
    cleanups.push(dir.remove);
    const d = await Daemon.start(
      [
        '--socket',
        join(dir.path, 'vm.sock'),
        '--chardev',
        `socket,id=s0,path=${join(dir.path, 's0.sock')},server=on,wait=off`,
        '--chardev',
        `file,id=f0,path=${join(dir.path, 'out.log')},max-size=2M`,
        '--chardev',
        'pty,id=p0',
        '--chardev',
        'hub,id=h0,chardevs.0=s0,chardevs.1=f0,chardevs.2=p0',
        '--device',
        'virtconsole,chardev=h0',
        '--control',
        join(dir.path, 'ctl.sock'),
        '--metrics',
        '127.0.0.1:0',
      ],
      [join(dir.path, 'vm.sock'), join(dir.path, 'ctl.sock')],
    );
    cleanups.push(() => d.stop());
    await until(() => /vhost-console: ready/.test(d.stdout), 'the banner');
    expect(d.stdout).toContain(`VM 'vm0' listening on ${join(dir.path, 'vm.sock')}`);
    expect(d.stdout).toContain(`chardev 's0': unix socket ${join(dir.path, 's0.sock')}`);
    expect(d.stdout).toContain(`chardev 'f0': file ${join(dir.path, 'out.log')} (rotated at 2M, 3 backups)`);
    expect(d.stdout).toMatch(/chardev 'p0': pty \/dev\/pts\/\d+/);
    expect(d.stdout).toContain(`control socket ${join(dir.path, 'ctl.sock')}`);
    expect(d.stdout).toMatch(/metrics http:\/\/127\.0\.0\.1:\d+\/metrics/);
    await until(() => d.stderrLines.length > 0, 'a log line');
    for (const l of d.stderrLines) expect(() => JSON.parse(l)).not.toThrow();
  });

  it('--log-format pretty: readable lines, level and component first, no JSON', async () => {
    const dir = tmpDir('vhc-logs-');
    cleanups.push(dir.remove);
    const d = await Daemon.start(
      ['--socket', join(dir.path, 'vm.sock'), '--log-format', 'pretty', '--control', join(dir.path, 'ctl.sock')],
      [join(dir.path, 'ctl.sock')],
    );
    cleanups.push(() => d.stop());
    await until(() => d.stderrLines.some((l) => /control API listening/.test(l)), 'the control line');
    const line = d.stderrLines.find((l) => /control API listening/.test(l))!;
    expect(() => JSON.parse(line)).toThrow();
    expect(line).toMatch(/^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] INFO: control: control API listening/);
  });

  it('pretty by default when stderr is a terminal (a pty, as python3 pty.spawn gives it)', async () => {
    const dir = tmpDir('vhc-logs-');
    cleanups.push(dir.remove);
    const ctl = join(dir.path, 'ctl.sock');
    const child = spawn(
      'python3',
      [
        '-c',
        'import pty,sys; pty.spawn(sys.argv[1:])',
        process.execPath,
        CLI,
        '--socket',
        join(dir.path, 'vm.sock'),
        '--control',
        ctl,
      ],
      { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      out += s;
    });
    cleanups.push(async () => {
      // The daemon ends through its control socket (a SIGHUP from the closing pty only reopens logs).
      if (existsSync(ctl)) {
        const q = await QmpClient.connect(ctl);
        await q.execute('quit').catch(() => {});
        q.close();
      }
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
    });
    await until(() => /control API listening/.test(out), 'the control line', 10_000);
    const line = out.split(/\r?\n/).find((l) => /control API listening/.test(l))!;
    expect(line).not.toMatch(/^\{/);
    expect(line).toMatch(/^\[\d{4}-\d\d-\d\d [\d:.]+\] .*INFO.*control: control API listening/);
  });

  it('refuses a bad --log-format and --metrics value, naming them', () => {
    const a = spawnSync(process.execPath, [CLI, '--socket', '/tmp/x.sock', '--log-format', 'xml'], {
      encoding: 'utf8',
    });
    expect(a.status).toBe(2);
    expect(a.stderr).toMatch(/--log-format.*'xml'/);
    const b = spawnSync(process.execPath, [CLI, '--socket', '/tmp/x.sock', '--metrics', 'localhost:99999'], {
      encoding: 'utf8',
    });
    expect(b.status).toBe(2);
    expect(b.stderr).toMatch(/--metrics: 'localhost:99999' is not \[HOST:\]PORT/);
  });
});
