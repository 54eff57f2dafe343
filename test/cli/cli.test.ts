// The `vhost-console` executable (node dist/cli.js) as a user meets it: help, version, errors
// before anything starts, the printed QEMU arguments, and the embedded default.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tmpDir } from '../helpers/daemon.js';
import { present, runCli, spawnCli, until } from '../daemon/util.js';

const dirs: { remove: () => void }[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) d.remove();
});
function dir(): string {
  const d = tmpDir('vhc-cli-');
  dirs.push(d);
  return d.path;
}

const version = (
  JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

describe('--help and --version', () => {
  it('--help prints the usage and every option, exit 0', () => {
    const r = runCli(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: vhost-console/);
    for (const opt of [
      '--socket',
      '--chardev',
      '--device',
      '--max-ports',
      '--console-size',
      '--resize-order',
      '--config',
      '--control',
      '--log-level',
      '--print-qemu-args',
      '--version',
    ]) {
      expect(r.stdout).toContain(opt);
    }
    expect(r.stderr).toBe('');
  });

  it('--version prints the package version, exit 0', () => {
    const r = runCli(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(`vhost-console ${version}`);
  });
});

describe('invalid input exits 2 before anything starts', () => {
  const cases: { what: string; args: (d: string) => string[]; stderr: RegExp[] }[] = [
    { what: 'bad --console-size', args: () => ['--console-size', '80by25'], stderr: [/--console-size/, /'80by25'/] },
    {
      what: 'out-of-range --console-size',
      args: () => ['--console-size', '0x25'],
      stderr: [/--console-size/, /'0x25'/],
    },
    {
      what: 'unknown option, with a suggestion',
      args: () => ['--sokcet', 'x.sock'],
      stderr: [/'--sokcet'/, /did you mean '--socket'/],
    },
    { what: "QEMU's single-dash habit", args: () => ['-chardev', 'null,id=n'], stderr: [/'-chardev'/, /'--chardev'/] },
    {
      what: 'bad chardev option value',
      args: () => ['--chardev', 'socket,id=s0,path=s.sock,server=maybe'],
      stderr: [/chardev 's0'/, /'server'/, /'maybe'/],
    },
    {
      what: 'unknown chardev option',
      args: () => ['--chardev', 'socket,id=s0,path=s.sock,severe=on'],
      stderr: [/chardev 's0'/, /'severe'/],
    },
    {
      what: 'unknown backend, with a suggestion',
      args: () => ['--chardev', 'pyt,id=p0'],
      stderr: [/'pyt'/, /did you mean 'pty'/],
    },
    {
      what: 'device with an unknown chardev',
      args: () => ['--device', 'virtconsole,chardev=nope'],
      stderr: [/chardev 'nope'/, /does not exist/],
    },
    {
      what: 'a chardev socket on the vhost-user socket path',
      args: (d) => ['--chardev', `socket,id=s0,path=${d}/vm.sock,server=on,wait=off`],
      stderr: [/chardev 's0'/, /vm\.sock/, /already used by the vhost-user socket/],
    },
    {
      what: 'a pty link on the control socket path',
      args: (d) => ['--chardev', `pty,id=p0,path=${d}/ctl.sock`],
      stderr: [/chardev 'p0'/, /ctl\.sock/, /already used by the control socket/],
    },
    { what: 'bad --max-ports', args: () => ['--max-ports', 'lots'], stderr: [/--max-ports/, /'lots'/] },
    {
      what: 'bad --resize-order',
      args: () => ['--resize-order', 'cols-row'],
      stderr: [/--resize-order/, /'cols-row'/, /did you mean 'cols-rows'/],
    },
  ];
  for (const c of cases) {
    it(c.what, () => {
      const d = dir();
      const sock = path.join(d, 'vm.sock');
      const ctl = path.join(d, 'ctl.sock');
      const r = runCli(['--socket', sock, '--control', ctl, ...c.args(d)], d);
      expect(r.code, r.stderr).toBe(2);
      for (const re of c.stderr) expect(r.stderr).toMatch(re);
      expect(r.stdout).toBe('');
      // Nothing was opened: no vhost-user socket, no control socket, no chardev socket.
      expect(fs.readdirSync(d)).toEqual([]);
    });
  }

  it('a bad config file names the file and the key', () => {
    const d = dir();
    const file = path.join(d, 'vm.toml');
    fs.writeFileSync(file, `socket = "${path.join(d, 'vm.sock')}"\nmax-prots = 4\n`);
    const r = runCli(['--config', file], d);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(file);
    expect(r.stderr).toMatch(/'max-prots'.*did you mean 'max-ports'/);
    expect(fs.readdirSync(d)).toEqual(['vm.toml']);
  });
});

describe('a start-up failure', () => {
  it('exits 1 naming the chardev, and closes what was already opened', () => {
    const d = dir();
    const r = runCli(
      [
        '--socket',
        `${d}/vm.sock`,
        '--control',
        `${d}/ctl.sock`,
        '--chardev',
        `pty,id=pty0,path=${d}/con.pty`,
        '--chardev',
        `socket,id=s0,path=${d}/no/such/dir/s.sock,server=on,wait=off`,
        '--chardev',
        'hub,id=hub0,chardevs.0=pty0,chardevs.1=s0',
        '--device',
        'virtconsole,chardev=hub0',
      ],
      d,
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/chardev 's0'/);
    expect(r.stderr).toContain(`${d}/no/such/dir/s.sock`);
    expect(fs.readdirSync(d)).toEqual([]); // the pty link is gone, no socket was made
  });
});

describe('--print-qemu-args', () => {
  it('num_vqs = 2*(max_ports+1) and config_size=12, with the absolute socket path', () => {
    const d = dir();
    const r = runCli(
      [
        '--socket',
        'vm.sock',
        '--max-ports',
        '7',
        '--chardev',
        'null,id=n',
        '--device',
        'virtconsole,chardev=n',
        '--print-qemu-args',
      ],
      d,
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/-device vhost-user-test-device-pci,chardev=(\S+),virtio-id=3,num_vqs=16,config_size=12/);
    expect(r.stdout).toContain(`path=${path.join(d, 'vm.sock')}`);
    expect(r.stdout).toContain('share=on');
    expect(fs.readdirSync(d)).toEqual([]); // printing starts nothing
  });

  it('num_vqs=2 with --multiport off', () => {
    const r = runCli([
      '--socket',
      `${dir()}/vm.sock`,
      '--multiport',
      'off',
      '--chardev',
      'null,id=n',
      '--device',
      'virtconsole,chardev=n',
      '--print-qemu-args',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/virtio-id=3,num_vqs=2,config_size=12/);
  });

  it('one block per VM of a config file', () => {
    const d = dir();
    const file = path.join(d, 'vms.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        vm: [
          { id: 'a', socket: 'a.sock', 'max-ports': 1, chardev: ['null,id=n'], device: ['virtconsole,chardev=n'] },
          { id: 'b', socket: 'b.sock', 'max-ports': 3, chardev: ['null,id=n'], device: ['virtconsole,chardev=n'] },
        ],
      }),
    );
    const r = runCli(['--config', file, '--print-qemu-args'], d);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/VM 'a'[^]*num_vqs=4,[^]*VM 'b'[^]*num_vqs=8,/);
  });
});

describe('the embedded default', () => {
  it('listens on ./vhost-console.sock, prints the pty and QEMU args, and SIGTERM cleans up', async () => {
    const d = dir();
    const p = spawnCli([], d);
    try {
      const files = [
        'vhost-console.sock',
        'vhost-console.pty',
        'vhost-console.console.sock',
        'vhost-console.qga.sock',
      ].map((f) => path.join(d, f));
      await until(
        () => p.stdout.includes('ready') || p.child.exitCode !== null,
        'the default daemon to be ready',
        15_000,
      );
      expect(p.child.exitCode, p.stderr).toBe(null);
      expect(present(files)).toEqual(files);
      expect(fs.lstatSync(path.join(d, 'vhost-console.sock')).isSocket()).toBe(true);
      const slave = fs.readlinkSync(path.join(d, 'vhost-console.pty'));
      expect(slave).toMatch(/^\/dev\/pts\/\d+$/);
      expect(p.stdout).toContain(slave);
      expect(p.stdout).toContain(`path=${path.join(d, 'vhost-console.sock')}`);
      expect(p.stdout).toMatch(/num_vqs=\d+,config_size=12/);
      expect(fs.existsSync(path.join(d, 'vhost-console.log'))).toBe(true);

      p.child.kill('SIGTERM');
      expect(await p.exited).toEqual({ code: 0, signal: null });
      expect(present(files)).toEqual([]);
    } finally {
      await p.kill();
    }
  });
});
