// A QEMU command line moves over as QEMU 10.x reads it (util/qemu-option.c, chardev/char.c,
// chardev/char-socket.c, hw/core/bus.c, hw/virtio/virtio-serial-pci.c): what QEMU accepts is
// accepted, with QEMU's warning where QEMU warns; what QEMU has and we do not is "not supported
// by vhost-console"; a typo gets a suggestion; every refusal's advice works when followed.
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { parseArgs } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { KNOWN_BACKENDS } from '../../src/chardev/registry.js';

// The list is the registry's: a backend added there shows up in the message.
const SUPPORTED = `(supported: ${KNOWN_BACKENDS.join(', ')})`;

function run(argv: string[]): { config: Config; warnings: string[] } {
  const r = parseArgs(['--socket', '/s', ...argv]);
  if (r.action !== 'run') throw new Error(`unexpected action ${r.action}`);
  return { config: r.config, warnings: r.warnings };
}

function refusal(argv: string[]): string {
  try {
    parseArgs(['--socket', '/s', ...argv]);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error(`accepted: ${argv.join(' ')}`);
}

const options = (argv: string[]) => run(argv).config.vms[0]!.chardevs[0]!.options;

describe("QEMU's short-form booleans (deprecated since QEMU 6.0, accepted with a warning by 10.x)", () => {
  it('reads server and nowait as server=on and wait=off, warning with advice that works', () => {
    const text = 'socket,id=s,path=/x,server,nowait';
    const { config, warnings } = run(['--chardev', text]);
    expect(config.vms[0]!.chardevs[0]!.options).toEqual({ path: '/x', server: 'on', wait: 'off' });
    expect(warnings).toEqual([
      `--chardev '${text}': 'server' is QEMU's deprecated short form of 'server=on'; write 'server=on'`,
      `--chardev '${text}': 'nowait' is QEMU's deprecated short form of 'wait=off'; write 'wait=off'`,
    ]);
    // Following the advice gives the same chardev and no warning.
    const advised = run(['--chardev', 'socket,id=s,path=/x,server=on,wait=off']);
    expect(advised.config).toEqual(config);
    expect(advised.warnings).toEqual([]);
  });

  it("reads nodelay, telnet and the no- forms as QEMU does; QEMU's delay is the inverse of nodelay", () => {
    expect(options(['--chardev', 'socket,id=s,port=4555,nodelay,telnet'])).toEqual({
      port: '4555',
      nodelay: 'on',
      telnet: 'on',
    });
    expect(options(['--chardev', 'socket,id=s,path=/x,noserver,notelnet'])).toEqual({
      path: '/x',
      server: 'off',
      telnet: 'off',
    });
    expect(options(['--chardev', 'socket,id=s,port=4555,delay=off'])).toEqual({ port: '4555', nodelay: 'on' });
    expect(options(['--chardev', 'file,id=f,path=/x,append'])).toEqual({ path: '/x', append: 'on' });
    expect(options(['--chardev', 'stdio,id=t,nosignal'])).toEqual({ signal: 'off' });
  });

  it.each([
    [['--chardev', 'pty,id=p,path'], "--chardev 'pty,id=p,path': parameter 'path' has no value; write 'path=VALUE'"],
    [
      ['--chardev', 'socket,id=s,path=/x,server,server=on'],
      "--chardev 'socket,id=s,path=/x,server,server=on': 'server' is given twice ('server' and 'server=on')",
    ],
    [
      ['--chardev', 'socket,id=s,path=/x,nowait,wait=on'],
      "--chardev 'socket,id=s,path=/x,nowait,wait=on': 'wait' is given twice ('nowait' and 'wait=on')",
    ],
    [
      ['--chardev', 'socket,id=s,path=/x,sevrer'],
      "--chardev 'socket,id=s,path=/x,sevrer': unknown option 'sevrer'; did you mean 'server'?",
    ],
    [
      ['--chardev', 'socket,id=s,port=1,delay,nodelay'],
      "chardev 's': options 'delay' and 'nodelay' exclude each other",
    ],
    // A flag resolves to an option the backend does not take: the backend's own refusal.
    [['--chardev', 'pty,id=p,server'], "chardev 'p': unknown option 'server'"],
    [
      ['--device', 'virtserialport,name'],
      "--device 'virtserialport,name': parameter 'name' has no value; write 'name=VALUE'",
    ],
    [
      ['--device', 'virtserialport,nmae'],
      "--device 'virtserialport,nmae': unknown parameter 'nmae'; did you mean 'name'?",
    ],
  ])('%j -> %s', (argv, message) => {
    expect(refusal(argv)).toBe(message);
  });
});

describe('backends and options QEMU has and vhost-console does not', () => {
  it.each([
    [
      ['--chardev', 'vc,id=v'],
      `chardev 'v': backend 'vc' is not supported by vhost-console ${SUPPORTED}; for a terminal use pty, or a socket and a client such as socat`,
    ],
    [
      ['--chardev', 'udp,id=u,host=localhost,port=4555'],
      `chardev 'u': backend 'udp' is not supported by vhost-console ${SUPPORTED}; use socket`,
    ],
    [
      ['--chardev', 'spicevmc,id=s,name=vdagent'],
      `chardev 's': backend 'spicevmc' is not supported by vhost-console ${SUPPORTED}`,
    ],
    [
      ['--chardev', 'serial,id=s,path=/dev/ttyS0'],
      `chardev 's': backend 'serial' is not supported by vhost-console ${SUPPORTED}`,
    ],
    [
      ['--chardev', 'parallel,id=p,path=/dev/parport0'],
      `chardev 'p': backend 'parallel' is not supported by vhost-console ${SUPPORTED}`,
    ],
    // A typo is not "not supported": it gets a suggestion, and the list.
    [['--chardev', 'sokcet,id=s'], `chardev 's': unknown backend 'sokcet'; did you mean 'socket'? ${SUPPORTED}`],
    [['--chardev', 'frobnicator,id=s'], `chardev 's': unknown backend 'frobnicator' ${SUPPORTED}`],
    [
      ['--chardev', 'socket,id=s,port=4555,tls-creds=tls0'],
      "chardev 's': option 'tls-creds' (tls-creds=tls0) is not supported by vhost-console; put a TLS proxy in front of a unix or localhost socket",
    ],
    [
      ['--chardev', 'socket,id=s,port=4555,server=on,websocket=on'],
      "chardev 's': option 'websocket' (websocket=on) is not supported by vhost-console",
    ],
    [
      ['--chardev', 'socket,id=s,port=4555,server,tn3270'],
      "chardev 's': option 'tn3270' (tn3270=on) is not supported by vhost-console",
    ],
    [
      ['--chardev', 'socket,id=s,port=4555,ipv6=on'],
      "chardev 's': option 'ipv6' (ipv6=on) is not supported by vhost-console; host= chooses the address",
    ],
    [
      ['--chardev', 'socket,id=s,fd=3'],
      "chardev 's': option 'fd' (fd=3) is not supported by vhost-console; give path= or host=,port=",
    ],
    [['--chardev', 'socket,id=s,port=4555,websockte=on'], "chardev 's': unknown option 'websockte'"],
    [
      ['--chardev', 'socket,id=mon0,path=/x,server=on,wait=off,mux=on'],
      "chardev 'mon0': option 'mux' is not supported by vhost-console; to share a port between several backends, put them in a hub: --chardev hub,id=hub0,chardevs.0=mon0,chardevs.1=OTHER --device virtconsole,chardev=hub0",
    ],
    [
      ['--chardev', 'stdio,id=c,mux'],
      "chardev 'c': option 'mux' is not supported by vhost-console; to share a port between several backends, put them in a hub: --chardev hub,id=hub0,chardevs.0=c,chardevs.1=OTHER --device virtconsole,chardev=hub0",
    ],
  ])('%j -> %s', (argv, message) => {
    expect(refusal(argv)).toBe(message);
  });

  it("accepts QEMU's defaults of options it does not implement (mux=off, websocket=off, ...) and QEMU's alias memory for ringbuf", () => {
    expect(options(['--chardev', 'socket,id=s,path=/x,server=on,wait=off,mux=off,websocket=off,tn3270=off'])).toEqual({
      path: '/x',
      server: 'on',
      wait: 'off',
    });
    expect(run(['--chardev', 'memory,id=r,size=4096']).config.vms[0]!.chardevs[0]).toEqual({
      id: 'r',
      backend: 'ringbuf',
      options: { size: '4096' },
      config: { id: 'r', backend: 'ringbuf', size: 4096, common: { logappend: false, timestamp: false, member: {} } },
    });
  });

  it('the hub the mux refusal points to works as written', () => {
    const { config } = run([
      '--chardev',
      'socket,id=mon0,path=/x,server=on,wait=off',
      '--chardev',
      'pty,id=OTHER',
      '--chardev',
      'hub,id=hub0,chardevs.0=mon0,chardevs.1=OTHER',
      '--device',
      'virtconsole,chardev=hub0',
    ]);
    expect(config.vms[0]!.devices[0]).toMatchObject({ driver: 'virtconsole', chardev: 'hub0', nr: 0 });
  });
});

describe('bus= on virtconsole and virtserialport', () => {
  it("accepts the one virtio-serial bus by QEMU's names: ID.0 of a controller, virtio-serial-bus.N of an id-less one", () => {
    // As libvirt writes it.
    const { config } = run([
      '--chardev',
      'pty,id=charconsole0',
      '--device',
      'virtconsole,chardev=charconsole0,id=console0,bus=virtio-serial0.0,nr=0',
      '--chardev',
      'socket,id=charchannel0,path=/q,server=on,wait=off',
      '--device',
      'virtserialport,bus=virtio-serial0.0,nr=1,chardev=charchannel0,id=channel0,name=org.qemu.guest_agent.0',
    ]);
    expect(config.vms[0]!.devices).toEqual([
      { id: 'console0', driver: 'virtconsole', chardev: 'charconsole0', nr: 0, bus: 'virtio-serial0.0' },
      {
        id: 'channel0',
        driver: 'virtserialport',
        chardev: 'charchannel0',
        name: 'org.qemu.guest_agent.0',
        nr: 1,
        bus: 'virtio-serial0.0',
      },
    ]);
    expect(
      run(['--device', 'virtserialport,bus=virtio-serial-bus.0', '--device', 'virtconsole']).config.vms[0]!.devices[0]!
        .bus,
    ).toBe('virtio-serial-bus.0');
    expect(run(['--device', 'virtserialport,bus=vser.0']).config.vms[0]!.devices[0]!.bus).toBe('vser.0');
  });

  it.each([
    [
      ['--device', 'virtconsole,bus=virtio-serial0.0', '--device', 'virtserialport,bus=virtio-serial1.0'],
      "--device 'virtserialport,bus=virtio-serial1.0': bus 'virtio-serial1.0' is another virtio-serial controller than 'virtio-serial0.0' ('virtconsole,bus=virtio-serial0.0'): vhost-console serves one virtio-serial device per VM; give the ports of another controller a VM of their own (a vm list in --config)",
    ],
    [
      ['--device', 'virtserialport,bus=pci.0'],
      "--device 'virtserialport,bus=pci.0': bus 'pci.0' is a PCI bus: a virtserialport goes on a virtio-serial bus (e.g. 'virtio-serial0.0' for a controller with id=virtio-serial0)",
    ],
    [
      ['--device', 'virtconsole,bus=usb-bus.0'],
      "--device 'virtconsole,bus=usb-bus.0': bus 'usb-bus.0' is a USB bus: a virtconsole goes on a virtio-serial bus (e.g. 'virtio-serial0.0' for a controller with id=virtio-serial0)",
    ],
    [
      ['--device', 'virtserialport,bus=virtio-serial0'],
      "--device 'virtserialport,bus=virtio-serial0': bus 'virtio-serial0' is not a bus name: the bus of a virtio-serial controller with id=virtio-serial0 is 'virtio-serial0.0'",
    ],
    [
      ['--device', 'virtserialport,bus=virtio-serial0.1'],
      "--device 'virtserialport,bus=virtio-serial0.1': bus 'virtio-serial0.1' does not exist: a virtio-serial controller has one bus, 'virtio-serial0.0'",
    ],
    [
      ['--device', 'virtserialport,bus=/machine/peripheral/vser0/vser0.0'],
      "--device 'virtserialport,bus=/machine/peripheral/vser0/vser0.0': bus '/machine/peripheral/vser0/vser0.0': bus paths are not supported; give the bus name (e.g. 'virtio-serial0.0' for a controller with id=virtio-serial0)",
    ],
    [
      ['--device', 'virtserialport,bus=0.0'],
      "--device 'virtserialport,bus=0.0': bus '0.0' is not a bus name (e.g. 'virtio-serial0.0' for a controller with id=virtio-serial0)",
    ],
  ])('%j -> %s', (argv, message) => {
    expect(refusal(argv)).toBe(message);
  });
});
