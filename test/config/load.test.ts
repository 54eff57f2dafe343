import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { parseArgs } from '../../src/config/load.js';
import { formatQemuArgs, numQueues, qemuArgs, shellQuote } from '../../src/cli/qemu-args.js';
import { helpText } from '../../src/cli/usage.js';
import { packageVersion } from '../../src/version.js';
import type { Config } from '../../src/config/schema.js';
import { KNOWN_BACKENDS } from '../../src/chardev/registry.js';

/** The registry's list, as unknown-backend messages give it. */
const SUPPORTED = `(supported: ${KNOWN_BACKENDS.join(', ')})`;

const dir = mkdtempSync(join(tmpdir(), 'vhc-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;
function file(ext: string, text: string): string {
  const p = join(dir, `c${fileNo++}${ext}`);
  writeFileSync(p, text);
  return p;
}

function config(argv: string[]): Config {
  const r = parseArgs(argv);
  if (r.action !== 'run') throw new Error(`expected run, got ${r.action}`);
  return r.config;
}

/** The design document's example, as flags. */
const EXAMPLE = [
  '--socket',
  '/run/vm1/console.sock',
  '--chardev',
  'pty,id=pty0,path=/run/vm1/console.pty',
  '--chardev',
  'socket,id=sock0,path=/run/vm1/console.io,server=on,wait=off',
  '--chardev',
  'file,id=log0,path=/var/log/vm1-console.log,append=on',
  '--chardev',
  'hub,id=hub0,chardevs.0=pty0,chardevs.1=sock0,chardevs.2=log0',
  '--chardev',
  'socket,id=qga0,path=/run/vm1/qga.sock,server=on,wait=off',
  '--device',
  'virtconsole,chardev=hub0,name=org.example.console.0',
  '--device',
  'virtserialport,chardev=qga0,name=org.qemu.guest_agent.0',
  '--max-ports',
  '8',
  '--console-size',
  '132x43',
  '--resize-order',
  'cols-rows',
  '--socket-mode',
  '0660',
];

/** The typed common options when none is given. */
const COMMON = { logappend: false, timestamp: false, member: {} };
/** A unix socket server's typed defaults (mode 0600). */
const UNIX_SERVER = {
  backend: 'socket',
  server: true,
  reconnectMs: 0,
  nodelay: false,
  telnet: false,
  mode: 0o600,
} as const;

const EXAMPLE_CONFIG: Config = {
  logLevel: 'info',
  vms: [
    {
      id: 'vm0',
      socket: '/run/vm1/console.sock',
      socketMode: 0o660,
      maxPorts: 8,
      multiport: true,
      consoleSize: { cols: 132, rows: 43 },
      resizeOrder: 'cols-rows',
      // Each chardev: its options as written, and the typed form the VM builds from.
      chardevs: [
        {
          id: 'pty0',
          backend: 'pty',
          options: { path: '/run/vm1/console.pty' },
          config: { id: 'pty0', backend: 'pty', path: '/run/vm1/console.pty', common: COMMON },
        },
        {
          id: 'sock0',
          backend: 'socket',
          options: { path: '/run/vm1/console.io', server: 'on', wait: 'off' },
          config: {
            id: 'sock0',
            ...UNIX_SERVER,
            address: { type: 'unix', path: '/run/vm1/console.io' },
            wait: false,
            common: COMMON,
          },
        },
        {
          id: 'log0',
          backend: 'file',
          options: { path: '/var/log/vm1-console.log', append: 'on' },
          config: { id: 'log0', backend: 'file', path: '/var/log/vm1-console.log', append: true, common: COMMON },
        },
        {
          id: 'hub0',
          backend: 'hub',
          options: {},
          members: ['pty0', 'sock0', 'log0'],
          config: { id: 'hub0', backend: 'hub', chardevs: ['pty0', 'sock0', 'log0'], maxMembers: 64, common: COMMON },
        },
        {
          id: 'qga0',
          backend: 'socket',
          options: { path: '/run/vm1/qga.sock', server: 'on', wait: 'off' },
          config: {
            id: 'qga0',
            ...UNIX_SERVER,
            address: { type: 'unix', path: '/run/vm1/qga.sock' },
            wait: false,
            common: COMMON,
          },
        },
      ],
      devices: [
        { id: 'org.example.console.0', driver: 'virtconsole', chardev: 'hub0', name: 'org.example.console.0', nr: 0 },
        {
          id: 'org.qemu.guest_agent.0',
          driver: 'virtserialport',
          chardev: 'qga0',
          name: 'org.qemu.guest_agent.0',
          nr: 1,
        },
      ],
    },
  ],
};

describe('flags', () => {
  it('builds the Config of the design example', () => {
    expect(config(EXAMPLE)).toEqual(EXAMPLE_CONFIG);
  });

  it('accepts --opt=value and takes defaults for what is not given', () => {
    expect(
      config([
        '--socket=/s',
        '--device=virtconsole',
        '--control',
        '/c',
        '--control-mode',
        '660',
        '--log-level',
        'warn',
      ]),
    ).toEqual({
      logLevel: 'warn',
      control: { path: '/c', mode: 0o660 },
      vms: [
        {
          id: 'vm0',
          socket: '/s',
          maxPorts: 31,
          multiport: true,
          consoleSize: { cols: 80, rows: 24 },
          resizeOrder: 'cols-rows',
          chardevs: [],
          devices: [{ id: 'port0', driver: 'virtconsole', nr: 0 }],
        },
      ],
    });
  });

  it('assigns port numbers as QEMU does: a console takes 0, the rest the lowest free from 1; explicit numbers are kept', () => {
    const vm = config([
      '--socket',
      '/s',
      '--device',
      'virtserialport,name=a',
      '--device',
      'virtserialport,name=b,nr=2',
      '--device',
      'virtconsole,name=c',
      '--device',
      'virtconsole,name=d',
      '--device',
      'virtserialport,name=e',
    ]).vms[0]!;
    expect(vm.devices.map((d) => [d.name, d.nr])).toEqual([
      ['a', 1],
      ['b', 2],
      ['c', 0],
      ['d', 3],
      ['e', 4],
    ]);
  });

  it('gives a port its name as id when the name is a valid id, else port<nr>', () => {
    const vm = config([
      '--socket',
      '/s',
      '--device',
      'virtserialport,name=9lives',
      '--device',
      'virtserialport,name=ok.name',
      '--device',
      'virtserialport,id=mine,name=x',
    ]).vms[0]!;
    expect(vm.devices.map((d) => d.id)).toEqual(['port1', 'ok.name', 'mine']);
  });

  it('multiport off: one console port and max_nr_ports 1', () => {
    const vm = config(['--socket', '/s', '--multiport', 'off', '--device', 'virtconsole']).vms[0]!;
    expect([vm.multiport, vm.maxPorts, vm.devices[0]!.nr]).toEqual([false, 1, 0]);
    expect(numQueues(vm)).toBe(2);
  });

  it('accepts yes/no and true/false as QEMU does', () => {
    expect(config(['--socket', '/s', '--multiport', 'yes']).vms[0]!.multiport).toBe(true);
    expect(config(['--socket', '/s', '--multiport', 'false', '--device', 'virtconsole']).vms[0]!.multiport).toBe(false);
  });

  it('--help and --version win over everything, even bad options', () => {
    expect(parseArgs(['--sockt', '--help'])).toEqual({ action: 'help' });
    expect(parseArgs(['-V'])).toEqual({ action: 'version' });
    expect(helpText()).toContain('--console-size COLSxROWS');
    expect(helpText()).toContain('--print-qemu-args');
    expect(packageVersion()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('without any VM option uses the embedded default, with the given globals', () => {
    const r = parseArgs(['--log-level', 'debug', '--print-qemu-args']);
    expect(r.action).toBe('print-qemu-args');
    if (r.action !== 'print-qemu-args') return;
    expect(r.usedDefault).toBe(true);
    expect(r.config.logLevel).toBe('debug');
    const vm = r.config.vms[0]!;
    expect(vm.socket).toBe('./vhost-console.sock');
    expect(vm.devices).toEqual([
      { id: 'console', driver: 'virtconsole', chardev: 'console-hub', nr: 0 },
      {
        id: 'org.qemu.guest_agent.0',
        driver: 'virtserialport',
        chardev: 'qga0',
        name: 'org.qemu.guest_agent.0',
        nr: 1,
      },
    ]);
    expect(vm.chardevs.find((c) => c.id === 'console-hub')!.members).toEqual([
      'console-pty',
      'console-sock',
      'console-log',
    ]);
    expect(vm.chardevs.find((c) => c.id === 'console-pty')!.options.path).toBe('./vhost-console.pty');
  });

  const errors: [string[], string][] = [
    [['--sockt', '/s'], "unknown option '--sockt'; did you mean '--socket'?"],
    [['--max-port', '4'], "unknown option '--max-port'; did you mean '--max-ports'?"],
    [['--frobnicate'], "unknown option '--frobnicate'"],
    [['-chardev', 'pty,id=p'], "unknown option '-chardev'; did you mean '--chardev'?"],
    [['/run/x'], "unexpected argument '/run/x' (options start with --; see --help)"],
    [['--socket'], '--socket needs a value (PATH)'],
    [['--socket', '--chardev', 'pty,id=p'], "--socket needs a value (PATH), got the option '--chardev'"],
    [['--socket', '/a', '--socket', '/b'], '--socket is given more than once'],
    [['--socket', ''], "--socket: '' is not a path (empty)"],
    [['--print-qemu-args=yes'], "--print-qemu-args takes no value (got 'yes')"],
    [['--socket', '/s', '--console-size', '80by24'], "--console-size: '80by24' is not COLSxROWS (e.g. 80x24)"],
    [
      ['--socket', '/s', '--console-size', '0x24'],
      "--console-size: '0x24' is out of range: cols 0 is out of range (1..65535)",
    ],
    [
      ['--socket', '/s', '--console-size', '80x65536'],
      "--console-size: '80x65536' is out of range: rows 65536 is out of range (1..65535)",
    ],
    [['--socket', '/s', '--max-ports', 'lots'], "--max-ports: 'lots' is not a non-negative integer"],
    [['--socket', '/s', '--max-ports', '0'], "--max-ports: '0' is out of range (1..127)"],
    [['--socket', '/s', '--max-ports', '128'], "--max-ports: '128' is out of range (1..127)"],
    [['--socket', '/s', '--multiport', 'maybe'], "--multiport: 'maybe' is not on or off"],
    [
      ['--socket', '/s', '--resize-order', 'rows-col'],
      "--resize-order: 'rows-col' is not one of rows-cols, cols-rows; did you mean 'rows-cols'?",
    ],
    [['--socket', '/s', '--socket-mode', '0999'], "--socket-mode: '0999' is not an octal permission mode (e.g. 0660)"],
    [['--log-level', 'verbose'], "--log-level: 'verbose' is not one of fatal, error, warn, info, debug, trace, silent"],
    [
      ['--log-level', 'debgu'],
      "--log-level: 'debgu' is not one of fatal, error, warn, info, debug, trace, silent; did you mean 'debug'?",
    ],
    [['--control-mode', '600'], '--control-mode is given without --control'],
    [['--socket', '/s', '--control', '/s'], "--control: '/s' is also the socket of vm 'vm0'"],
    [
      ['--id', '1vm', '--socket', '/s'],
      "vm id '1vm' is invalid: it must start with a letter and contain only letters, digits, '-', '.' and '_'",
    ],
    [['--device', 'virtconsole'], 'ports or chardevs are configured but no --socket (in the command line)'],
    [['--max-ports', '4'], 'VM options are given but no --socket (in the command line)'],
    // chardevs
    [['--socket', '/s', '--chardev', 'pty'], "--chardev: chardev 'pty' has no id in 'pty'"],
    [
      ['--socket', '/s', '--chardev', 'pty,id=p,path'],
      "--chardev 'pty,id=p,path': parameter 'path' has no value; write 'path=VALUE'",
    ],
    [['--socket', '/s', '--chardev', 'id=p'], "--chardev 'id=p': missing backend: the text must start with it"],
    [
      ['--socket', '/s', '--chardev', 'pyt,id=p'],
      `chardev 'p': unknown backend 'pyt'; did you mean 'pty'? ${SUPPORTED}`,
    ],
    [
      ['--socket', '/s', '--chardev', 'pty,id=p_1:'],
      "chardev id 'p_1:' is invalid: it must start with a letter and contain only letters, digits, '-', '.' and '_'",
    ],
    [['--socket', '/s', '--chardev', 'pty,id=p', '--chardev', 'null,id=p'], "chardev id 'p' is used twice"],
    [['--socket', '/s', '--chardev', 'pty,id=p,chardevs.0=x'], "chardev 'p': 'chardevs.0' is only for hub chardevs"],
    [['--socket', '/s', '--chardev', 'hub,id=h'], "hub 'h': no members (give chardevs.0=ID, chardevs.1=ID, ...)"],
    [
      ['--socket', '/s', '--chardev', 'hub,id=h,chardevs.0=pyt0', '--chardev', 'pty,id=pty0'],
      "hub 'h': member 'pyt0' does not exist; did you mean 'pty0'?",
    ],
    [
      [
        '--socket',
        '/s',
        '--chardev',
        'null,id=n',
        '--chardev',
        'hub,id=a,chardevs.0=n',
        '--chardev',
        'hub,id=b,chardevs.0=a',
      ],
      "hub 'b': member 'a' is a hub; hubs do not nest",
    ],
    [['--socket', '/s', '--chardev', 'hub,id=a,chardevs.0=a'], "hub 'a': member 'a' is a hub; hubs do not nest"],
    [
      [
        '--socket',
        '/s',
        '--chardev',
        'null,id=n',
        '--chardev',
        'hub,id=a,chardevs.0=n',
        '--chardev',
        'hub,id=b,chardevs.0=n',
      ],
      "hub 'b': member 'n' is already used by hub 'a'",
    ],
    [
      ['--socket', '/s', '--chardev', 'null,id=n', '--chardev', 'hub,id=a,chardevs.0=n,chardevs.1=n'],
      "hub 'a': member 'n' is already used by hub 'a'",
    ],
    [
      ['--socket', '/s', '--chardev', `hub,id=h,max-members=2,chardevs.0=a,chardevs.1=b,chardevs.2=c`],
      "hub 'h': too many members: 3 (maximum is 2)",
    ],
    // backend options are the chardev layer's to check
    [
      ['--socket', '/s', '--chardev', 'socket,id=s0,path=/x,sever=on'],
      "chardev 's0': unknown option 'sever'; did you mean 'server'?",
    ],
    [
      ['--socket', '/s', '--chardev', 'ringbuf,id=r,size=1000'],
      "chardev 'r': option 'size' must be a power of two, not '1000'",
    ],
    // devices
    [
      ['--socket', '/s', '--device', 'virtconsol'],
      "--device 'virtconsol': unknown driver 'virtconsol' (expected virtconsole or virtserialport); did you mean 'virtconsole'?",
    ],
    [
      ['--socket', '/s', '--device', 'virtconsole,nmae=x'],
      "--device 'virtconsole,nmae=x': unknown parameter 'nmae'; did you mean 'name'?",
    ],
    [
      ['--socket', '/s', '--device', 'virtconsole,nr=one'],
      "--device 'virtconsole,nr=one': nr: 'one' is not a non-negative integer",
    ],
    [
      ['--socket', '/s', '--device', 'virtserialport,nr=0'],
      "--device 'virtserialport,nr=0': nr 0 is reserved for a virtconsole (as in QEMU)",
    ],
    [
      ['--socket', '/s', '--max-ports', '4', '--device', 'virtserialport,nr=4'],
      "--device 'virtserialport,nr=4': nr 4 is out of range (0..3: max-ports is 4)",
    ],
    [
      ['--socket', '/s', '--device', 'virtserialport,nr=2', '--device', 'virtserialport,nr=2,name=b'],
      "--device 'virtserialport,nr=2,name=b': nr 2 is already used by 'virtserialport,nr=2'",
    ],
    [
      ['--socket', '/s', '--max-ports', '2', '--device', 'virtserialport', '--device', 'virtserialport'],
      "--device 'virtserialport': no free port number (max-ports is 2)",
    ],
    [
      ['--socket', '/s', '--device', 'virtserialport,name=a', '--device', 'virtserialport,name=a'],
      "--device 'virtserialport,name=a': name 'a' is already used by port 'a'",
    ],
    [
      ['--socket', '/s', '--device', 'virtserialport,name=a/b'],
      "--device 'virtserialport,name=a/b': name 'a/b' contains a control character or '/'",
    ],
    [['--socket', '/s', '--device', 'virtserialport,name='], "--device 'virtserialport,name=': empty name"],
    [
      ['--socket', '/s', '--device', `virtserialport,name=${'n'.repeat(256)}`],
      `--device 'virtserialport,name=${'n'.repeat(256)}': name is longer than 255 bytes`,
    ],
    [
      ['--socket', '/s', '--device', 'virtserialport,id=x', '--device', 'virtserialport,id=x'],
      "--device 'virtserialport,id=x': device id 'x' is used twice",
    ],
    [
      ['--socket', '/s', '--device', 'virtserialport,id=port2', '--device', 'virtserialport'],
      "--device 'virtserialport': device id 'port2' is used twice (give this port an id=)",
    ],
    [
      ['--socket', '/s', '--device', 'virtconsole,chardev=hbu0', '--chardev', 'null,id=hub0'],
      "port 'port0': chardev 'hbu0' does not exist; did you mean 'hub0'?",
    ],
    [
      [
        '--socket',
        '/s',
        '--chardev',
        'null,id=n',
        '--device',
        'virtconsole,chardev=n',
        '--device',
        'virtserialport,chardev=n',
      ],
      "port 'port1': chardev 'n' is already used by port 'port0'",
    ],
    [
      ['--socket', '/s', '--multiport', 'off'],
      '--multiport off: exactly one port is allowed, a virtconsole at nr 0 (got none)',
    ],
    [
      ['--socket', '/s', '--multiport', 'off', '--device', 'virtserialport,nr=1'],
      '--multiport off: exactly one port is allowed, a virtconsole at nr 0 (got virtserialport,nr=1)',
    ],
    [
      ['--socket', '/s', '--multiport', 'off', '--max-ports', '4', '--device', 'virtconsole'],
      '--max-ports: 4 conflicts with --multiport off, which has exactly one port',
    ],
  ];
  it.each(errors)('%j -> %s', (argv, message) => {
    let error: unknown;
    try {
      parseArgs(argv);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toBe(message);
  });

  it('names the option and the value on the error object', () => {
    try {
      parseArgs(['--socket', '/s', '--console-size', '80by24']);
      expect.unreachable();
    } catch (e) {
      expect(e).toMatchObject({ option: '--console-size', value: '80by24' });
    }
  });
});

describe('config file', () => {
  const TOML = `
socket = "/run/vm1/console.sock"
socket-mode = 0o660
max-ports = 8
console-size = "132x43"
resize-order = "cols-rows"
chardev = [
  "pty,id=pty0,path=/run/vm1/console.pty",
  { backend = "socket", id = "sock0", path = "/run/vm1/console.io", server = true, wait = false },
  { backend = "file", id = "log0", path = "/var/log/vm1-console.log", append = "on" },
  { backend = "hub", id = "hub0", chardevs = ["pty0", "sock0", "log0"] },
  "socket,id=qga0,path=/run/vm1/qga.sock,server=on,wait=off",
]

[[device]]
driver = "virtconsole"
chardev = "hub0"
name = "org.example.console.0"

[[device]]
driver = "virtserialport"
chardev = "qga0"
name = "org.qemu.guest_agent.0"
`;
  const JSON_TEXT = JSON.stringify({
    socket: '/run/vm1/console.sock',
    'socket-mode': '0660',
    'max-ports': 8,
    'console-size': '132x43',
    'resize-order': 'cols-rows',
    chardev: [
      { backend: 'pty', id: 'pty0', path: '/run/vm1/console.pty' },
      'socket,id=sock0,path=/run/vm1/console.io,server=on,wait=off',
      'file,id=log0,path=/var/log/vm1-console.log,append=on',
      'hub,id=hub0,chardevs.0=pty0,chardevs.1=sock0,chardevs.2=log0',
      { backend: 'socket', id: 'qga0', path: '/run/vm1/qga.sock', server: 'on', wait: false },
    ],
    device: [
      'virtconsole,chardev=hub0,name=org.example.console.0',
      { driver: 'virtserialport', chardev: 'qga0', name: 'org.qemu.guest_agent.0' },
    ],
  });

  it('TOML gives the same Config as the flags', () => {
    expect(config(['--config', file('.toml', TOML)])).toEqual(EXAMPLE_CONFIG);
  });

  it('JSON gives the same Config as the flags', () => {
    expect(config(['--config', file('.json', JSON_TEXT)])).toEqual(EXAMPLE_CONFIG);
  });

  it('recognises the format by content when the extension says nothing', () => {
    expect(config(['--config', file('.conf', JSON_TEXT)])).toEqual(EXAMPLE_CONFIG);
    expect(config(['--config', file('', TOML)])).toEqual(EXAMPLE_CONFIG);
  });

  it("flags override the file's scalars and append to its lists", () => {
    const f = file(
      '.toml',
      'socket = "/file.sock"\nmax-ports = 8\nlog-level = "warn"\nchardev = ["null,id=n0"]\ndevice = ["virtconsole,chardev=n0"]\n',
    );
    const c = config([
      '--config',
      f,
      '--max-ports',
      '4',
      '--log-level',
      'error',
      '--chardev',
      'null,id=n1',
      '--device',
      'virtserialport,chardev=n1',
    ]);
    expect(c.logLevel).toBe('error');
    expect(c.vms).toHaveLength(1);
    expect(c.vms[0]).toMatchObject({ socket: '/file.sock', maxPorts: 4 });
    expect(c.vms[0]!.chardevs.map((x) => x.id)).toEqual(['n0', 'n1']);
    expect(c.vms[0]!.devices.map((d) => [d.chardev, d.nr])).toEqual([
      ['n0', 0],
      ['n1', 1],
    ]);
  });

  it('runs several VMs from a vm list, with their own ids, sockets and namespaces', () => {
    const f = file(
      '.toml',
      `
log-level = "warn"
control = { path = "/run/vhc/control.sock", mode = "0660" }

[[vm]]
id = "vm1"
socket = "/run/vm1.sock"
chardev = ["pty,id=pty0"]
device = ["virtconsole,chardev=pty0"]

[[vm]]
id = "vm2"
socket = "/run/vm2.sock"
multiport = "off"
chardev = ["pty,id=pty0"]
device = ["virtconsole,chardev=pty0"]
`,
    );
    const c = config(['--config', f]);
    expect(c.control).toEqual({ path: '/run/vhc/control.sock', mode: 0o660 });
    expect(c.vms.map((v) => [v.id, v.socket, v.maxPorts, v.devices[0]!.chardev])).toEqual([
      ['vm1', '/run/vm1.sock', 31, 'pty0'],
      ['vm2', '/run/vm2.sock', 1, 'pty0'],
    ]);
  });

  it('a top-level VM (from the file or the flags) runs beside the vm list', () => {
    const f = file('.json', JSON.stringify({ vm: [{ id: 'vm1', socket: '/run/vm1.sock' }] }));
    expect(config(['--config', f, '--socket', '/run/top.sock']).vms.map((v) => v.id)).toEqual(['vm0', 'vm1']);
    expect(config(['--config', f]).vms.map((v) => v.id)).toEqual(['vm1']);
  });

  const errors: [string, string, string][] = [
    ['.json', '{"socket": "/s",', 'not valid JSON'],
    ['.toml', 'socket = ', 'not valid TOML'],
    ['.json', '[1]', ': the top level must be a table/object'],
    ['.json', '{"sockte": "/s"}', ": unknown key 'sockte'; did you mean 'socket'?"],
    [
      '.json',
      '{"log-level": "info"}',
      ': no VM is configured (give socket, chardev, device at the top level or a vm list)',
    ],
    ['.json', '{"max-ports": 8}', 'VM options are given but no --socket (in the command line or '],
    ['.json', '{"socket": "/s", "max-ports": "eight"}', ": max-ports: 'eight' is not a non-negative integer"],
    ['.json', '{"socket": "/s", "multiport": 1}', ': multiport: 1 is not on or off'],
    [
      '.json',
      '{"socket": "/s", "socket-mode": 1000}',
      ': socket-mode: 1000 is not an octal permission mode (e.g. 0660)',
    ],
    [
      '.json',
      '{"socket": "/s", "chardev": [42]}',
      ': chardev[0]: 42 is not a chardev (a string BACKEND,id=ID,... or a table with backend and id)',
    ],
    [
      '.json',
      '{"socket": "/s", "chardev": [{"id": "p"}]}',
      ': chardev[0].backend: undefined must be a string (pty, socket, file, ...)',
    ],
    [
      '.json',
      '{"socket": "/s", "chardev": [{"backend": "pty", "id": "p", "path": null}]}',
      ': chardev[0].path: null is not a string, number or boolean',
    ],
    [
      '.json',
      '{"socket": "/s", "chardev": "pty,id=p,path"}',
      ": chardev 'pty,id=p,path': parameter 'path' has no value; write 'path=VALUE'",
    ],
    [
      '.json',
      '{"socket": "/s", "device": [{"driver": "virtserialport", "nr": 0}]}',
      "--device 'virtserialport,nr=0': nr 0 is reserved for a virtconsole (as in QEMU)",
    ],
    [
      '.json',
      '{"socket": "/s", "device": [{"driver": "virtserialport", "nmae": "x"}]}',
      ": device[0] 'virtserialport,nmae=x': unknown parameter 'nmae'; did you mean 'name'?",
    ],
    [
      '.json',
      '{"control": {"path": "/c", "mdoe": "0600"}, "socket": "/s"}',
      ": control.mdoe: 'mdoe' is not a control key (path, mode); did you mean 'mode'?",
    ],
    ['.json', '{"vm": [{"socket": "/s"}]}', ': vm[0]: a vm entry needs an id'],
    ['.json', '{"vm": [{"id": "a"}]}', ": vm[0]: vm 'a' has no socket"],
    ['.json', '{"vm": [{"id": "a", "socket": "/s", "log-level": "info"}]}', ": vm[0]: unknown key 'log-level'"],
    ['.json', '{"vm": [{"id": "a", "socket": "/s"}, {"id": "a", "socket": "/t"}]}', "vm id 'a' is used twice"],
    [
      '.json',
      '{"vm": [{"id": "a", "socket": "/s"}, {"id": "b", "socket": "/s"}]}',
      "vm 'b': socket '/s' is already used by vm 'a'",
    ],
    [
      '.json',
      '{"vm": [{"id": "a", "socket": "/s", "device": ["virtserialport,chardev=x"]}, {"id": "b", "socket": "/t"}]}',
      "vm 'a': port 'port1': chardev 'x' does not exist",
    ],
    ['.json', '{"vm": 5}', ': vm[0]: 5 is not a table/object of VM keys'],
  ];
  it.each(errors)('%s %s -> …%s', (ext, text, message) => {
    const f = file(ext, text);
    let error: unknown;
    try {
      parseArgs(['--config', f]);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const m = (error as Error).message;
    // Messages about the file's content start with the file's name.
    expect(m.includes(message) && (message.startsWith(':') ? m.startsWith(f) : true)).toBe(true);
    if (!m.includes(message)) expect(m).toBe(message);
  });

  it('names a missing file', () => {
    expect(() => parseArgs(['--config', join(dir, 'missing.toml')])).toThrow(
      `--config: cannot read '${join(dir, 'missing.toml')}': ENOENT`,
    );
  });
});

describe('qemuArgs', () => {
  it('gives QEMU the memfd memory, the socket chardev and the generic vhost-user device', () => {
    const vm = config(EXAMPLE).vms[0]!;
    expect(qemuArgs(vm)).toEqual([
      '-m',
      '1G',
      '-object',
      'memory-backend-memfd,id=mem,size=1G,share=on',
      '-machine',
      'memory-backend=mem',
      '-chardev',
      'socket,id=vhc-vm0,path=/run/vm1/console.sock',
      '-device',
      'vhost-user-test-device-pci,chardev=vhc-vm0,virtio-id=3,num_vqs=18,config_size=12',
    ]);
    expect(qemuArgs(vm, { device: 'vhost-user-device-pci', memory: '4G', chardevId: 'c' }).slice(-1)[0]).toBe(
      'vhost-user-device-pci,chardev=c,virtio-id=3,num_vqs=18,config_size=12',
    );
  });

  it('makes a relative socket path absolute and escapes commas for QEMU', () => {
    const vm = config(['--socket', 'a,b.sock']).vms[0]!;
    expect(qemuArgs(vm)[7]).toBe(`socket,id=vhc-vm0,path=${process.cwd()}/a,,b.sock`);
  });

  it('formats a shell fragment with quoting where needed', () => {
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    expect(formatQemuArgs(['-m', '1G', '-chardev', 'socket,path=/a b'])).toBe(
      "  -m 1G \\\n  -chardev 'socket,path=/a b'",
    );
  });
});
