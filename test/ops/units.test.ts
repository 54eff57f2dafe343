// The shipped systemd units: `systemd-analyze verify` on copies whose ExecStart= points at this
// checkout (the shipped `vhost-console` resolves only where npm installed the package; verify
// refuses a command it cannot execute, which is exactly the check we want to keep), the
// sysusers file applied to an empty root, and the example per-VM config agreeing with the
// socket unit's paths.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseArgs } from '../../src/config/load.js';
import { ROOT, tmpDir } from '../helpers/daemon.js';

const UNITS = join(ROOT, 'systemd');
const hasAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;
const hasSysusers = spawnSync('systemd-sysusers', ['--help']).status === 0;
if (!hasAnalyze)
  console.warn(
    'test/ops/units.test.ts: systemd-analyze is not installed (apt-get install systemd): the verify tests are skipped',
  );
if (!hasSysusers)
  console.warn('test/ops/units.test.ts: systemd-sysusers is not installed: the sysusers test is skipped');
const dir = tmpDir('vhc-units-');
afterAll(() => dir.remove());

/** Copies of the units with ExecStart=vhost-console ... run by this Node on dist/cli.js. */
function unitCopies(): string {
  const out = join(dir.path, 'units');
  mkdirSync(out, { recursive: true });
  for (const f of readdirSync(UNITS).filter((f) => /\.(service|socket)$/.test(f))) {
    const text = readFileSync(join(UNITS, f), 'utf8');
    if (f.endsWith('.service')) expect(text).toMatch(/^ExecStart=vhost-console /m);
    writeFileSync(
      join(out, f),
      text.replace(/^ExecStart=vhost-console /m, `ExecStart=${process.execPath} ${join(ROOT, 'dist/cli.js')} `),
    );
  }
  return out;
}

function verify(units: string, names: string[]): { status: number | null; output: string } {
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', ...names.map((n) => join(units, n))], {
    cwd: units,
    encoding: 'utf8',
    env: { ...process.env, SYSTEMD_UNIT_PATH: `${units}:`, SYSTEMD_LOG_COLOR: '0' },
  });
  // Warnings about other units (the host's own) are not ours to judge; ours must be silent.
  const output = `${r.stdout}${r.stderr}`
    .split('\n')
    .filter((l) => /vhost-console/.test(l))
    .join('\n');
  return { status: r.status, output };
}

describe.skipIf(!hasAnalyze)('systemd units (systemd-analyze verify)', () => {
  it('the single-instance service verifies without a warning', () => {
    const r = verify(unitCopies(), ['vhost-console.service']);
    expect(r.output).toBe('');
    expect(r.status).toBe(0);
  });

  it('the template service and its socket unit verify for an instance', () => {
    const r = verify(unitCopies(), ['vhost-console@web1.service', 'vhost-console@web1.socket']);
    expect(r.output).toBe('');
    expect(r.status).toBe(0);
  });

  it('verify would catch a unit whose command is not executable (the check the copies pass)', () => {
    const units = unitCopies();
    const f = join(units, 'vhost-console.service');
    writeFileSync(f, readFileSync(f, 'utf8').replace(/^ExecStart=\S+ \S+/m, `ExecStart=${join(ROOT, 'dist/cli.js')}`));
    const r = verify(units, ['vhost-console.service']);
    expect(r.output).toMatch(/is not executable/);
    expect(r.status).not.toBe(0);
  });

  it('the units use Type=notify and the directories the docs name', () => {
    const single = readFileSync(join(UNITS, 'vhost-console.service'), 'utf8');
    const template = readFileSync(join(UNITS, 'vhost-console@.service'), 'utf8');
    for (const u of [single, template]) {
      expect(u).toMatch(/^Type=notify$/m);
      expect(u).toMatch(/^User=vhost-console$/m);
      expect(u).toMatch(/^LogsDirectory=vhost-console$/m);
      expect(u).toMatch(/^\[Install\]$/m);
    }
    expect(template).toMatch(/^RuntimeDirectoryPreserve=yes$/m); // the activated sockets live there
  });
});

describe.skipIf(!hasSysusers)('sysusers', () => {
  it("creates the vhost-console user in QEMU's group", () => {
    const root = join(dir.path, 'root');
    mkdirSync(join(root, 'etc'), { recursive: true });
    const r = spawnSync('systemd-sysusers', [`--root=${root}`, join(UNITS, 'vhost-console.sysusers')], {
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(join(root, 'etc/passwd'), 'utf8')).toMatch(
      /^vhost-console:x:\d+:\d+:[^:]*:\/nonexistent:\/usr\/sbin\/nologin$/m,
    );
    expect(readFileSync(join(root, 'etc/group'), 'utf8')).toMatch(/^kvm:x:\d+:vhost-console$/m);
  });
});

describe('the example per-VM configuration', () => {
  it('parses, and names the paths of vhost-console@.socket for its instance', () => {
    const parsed = parseArgs(['--config', join(UNITS, 'vm.example.toml')]);
    if (!('config' in parsed)) throw new Error('no config');
    const socketUnit = readFileSync(join(UNITS, 'vhost-console@.socket'), 'utf8');
    const listen = [...socketUnit.matchAll(/^ListenStream=(.*)$/gm)].map((m) => m[1]!.replace('%i', 'web1'));
    expect(parsed.config.vms).toHaveLength(1);
    expect(listen).toEqual([parsed.config.vms[0]!.socket, parsed.config.control!.path]);
  });
});
