// Issue 8, checks without side effects and errors a person can act on: --print-qemu-args
// refuses what would not start and prints a command line that runs when pasted (a fake
// qemu-system-x86_64 on PATH receives exactly the arguments), --guest-memory, and
// VHOST_CONSOLE_LOG (a bad value is a plain error; --log-level wins over it).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI, tmpDir } from '../helpers/daemon.js';
import { runCli, until } from '../daemon/util.js';

const dirs: { remove: () => void }[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) d.remove();
});
function dir(): string {
  const d = tmpDir('vhc-checks-');
  dirs.push(d);
  return d.path;
}

function runEnv(args: string[], env: Record<string, string>, cwd: string) {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    cwd,
    encoding: 'utf8',
    timeout: 15_000,
    env: { ...process.env, ...env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const VM = (d: string) => [
  '--socket',
  `${d}/vm.sock`,
  '--max-ports',
  '3',
  '--chardev',
  `socket,id=q,path=${d}/qga.sock,server=on,wait=off`,
  '--device',
  'virtserialport,chardev=q,name=org.qemu.guest_agent.0',
];

describe('--print-qemu-args', () => {
  it('prints a qemu-system-x86_64 command line that runs as pasted, with --guest-memory', () => {
    const d = dir();
    const r = runCli(['--print-qemu-args', '--guest-memory', '2G', ...VM(d)], d);
    expect(r.code, r.stderr).toBe(0);
    expect(fs.readdirSync(d)).toEqual([]); // printing creates nothing
    // A fake QEMU on PATH records its argv; the printed text goes to a shell verbatim.
    fs.writeFileSync(
      path.join(d, 'qemu-system-x86_64'),
      `#!/bin/sh\nfor a in "$@"; do printf '%s\\n' "$a"; done > "${d}/argv"\n`,
      { mode: 0o755 },
    );
    const sh = spawnSync('sh', ['-c', r.stdout], {
      cwd: d,
      encoding: 'utf8',
      env: { ...process.env, PATH: `${d}:${process.env.PATH}` },
    });
    expect(sh.status, sh.stderr).toBe(0);
    expect(fs.readFileSync(path.join(d, 'argv'), 'utf8').split('\n').filter(Boolean)).toEqual([
      '-m',
      '2G',
      '-object',
      'memory-backend-memfd,id=mem,size=2G,share=on',
      '-machine',
      'q35,memory-backend=mem',
      '-chardev',
      `socket,id=vhc-vm0,path=${d}/vm.sock`,
      '-device',
      'vhost-user-test-device-pci,chardev=vhc-vm0,virtio-id=3,num_vqs=8,config_size=12',
    ]);
  });

  it('defaults to 1G of guest memory; a bad --guest-memory is an error', () => {
    const d = dir();
    const r = runCli(['--print-qemu-args', ...VM(d)], d);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('-m 1G');
    expect(r.stdout).toContain('size=1G,share=on');
    const bad = runCli(['--print-qemu-args', '--guest-memory', 'lots', ...VM(d)], d);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(`--guest-memory: 'lots' must be a size like 512M or 2G`);
  });

  it('refuses a configuration that would fail at start (exit 2, the errors, nothing printed or created)', () => {
    const d = dir();
    fs.writeFileSync(path.join(d, 'qga.sock'), 'not a socket');
    const r = runCli(['--print-qemu-args', ...VM(d)], d);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `vhost-console: chardev 'q': path '${d}/qga.sock' exists and is not a socket; it is left untouched\n`,
    );
    expect(fs.readdirSync(d)).toEqual(['qga.sock']);
  });
});

describe('VHOST_CONSOLE_LOG', () => {
  it('a bad value is a clear error, not a stack trace (exit 2)', () => {
    const d = dir();
    const r = runEnv(VM(d), { VHOST_CONSOLE_LOG: 'verbose' }, d);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe(
      `vhost-console: VHOST_CONSOLE_LOG: 'verbose' is not a log level (fatal, error, warn, info, debug, trace, silent); --log-level overrides it`,
    );
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(fs.readdirSync(d)).toEqual([]);
  });

  it('--log-level wins over it; without --log-level it sets the level', async () => {
    const d = dir();
    const ok = runEnv(['--check', '--log-level', 'info', ...VM(d)], { VHOST_CONSOLE_LOG: 'verbose' }, d);
    expect(ok.code, ok.stderr).toBe(0);
    // VHOST_CONSOLE_LOG=debug: debug lines (level 20) appear; with --log-level warn, not even info ones.
    for (const [extra, wantDebug] of [
      [[], true],
      [['--log-level', 'warn'], false],
    ] as const) {
      const child = spawn(process.execPath, [CLI, ...VM(d), ...extra], {
        cwd: d,
        env: { ...process.env, VHOST_CONSOLE_LOG: 'debug' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stdout.setEncoding('utf8').on('data', (s: string) => {
        out += s;
      });
      child.stderr.setEncoding('utf8').on('data', (s: string) => {
        err += s;
      });
      try {
        await until(() => out.includes('ready') || child.exitCode !== null, 'the daemon to be ready', 15_000);
        expect(child.exitCode, err).toBe(null);
        const levels = err
          .split('\n')
          .filter(Boolean)
          .map((l) => (JSON.parse(l) as { level: number }).level);
        if (wantDebug) expect(levels).toContain(20);
        else expect(levels.filter((l) => l < 40)).toEqual([]);
      } finally {
        child.kill('SIGTERM');
        await new Promise((res) => child.once('exit', res));
      }
    }
  });
});

describe('start-up errors name what they belong to, once', () => {
  it("the pty backend's missing directory names the chardev; with several VMs, the VM too", () => {
    const d = dir();
    const r = runCli(
      [
        '--socket',
        `${d}/vm.sock`,
        '--chardev',
        `pty,id=p0,path=${d}/nodir/con.pty`,
        '--device',
        'virtconsole,chardev=p0',
      ],
      d,
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `vhost-console: chardev 'p0': directory '${d}/nodir' of '${d}/nodir/con.pty' does not exist\n`,
    );
    const file = path.join(d, 'vms.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        vm: [
          { id: 'a', socket: `${d}/a.sock`, chardev: ['null,id=n'], device: ['virtconsole,chardev=n'] },
          {
            id: 'b',
            socket: `${d}/b.sock`,
            chardev: [`pty,id=p0,path=${d}/nodir/b.pty`],
            device: ['virtconsole,chardev=p0'],
          },
        ],
      }),
    );
    const two = runCli(['--config', file], d);
    expect(two.code).toBe(1);
    expect(two.stderr).toBe(
      `vhost-console: vm 'b': chardev 'p0': directory '${d}/nodir' of '${d}/nodir/b.pty' does not exist\n`,
    );
    expect(fs.readdirSync(d)).toEqual(['vms.json']);
  });
});
