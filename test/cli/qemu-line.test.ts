// A libvirt/QEMU-style command line runs as written: short-form booleans (with QEMU's warning,
// once, on stderr) and bus=virtio-serial0.0; what QEMU has and we do not is refused before
// anything is created.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tmpDir } from '../helpers/daemon.js';
import { runCli, spawnCli, until } from '../daemon/util.js';
import { KNOWN_BACKENDS } from '../../src/chardev/registry.js';

/** The registry's list, as unknown-backend messages give it. */
const SUPPORTED = `(supported: ${KNOWN_BACKENDS.join(', ')})`;

const dirs: { remove: () => void }[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) d.remove();
});
function dir(): string {
  const d = tmpDir('vhc-qemu-line-');
  dirs.push(d);
  return d.path;
}

describe('a QEMU command line', () => {
  it('runs with server,nowait and bus=virtio-serial0.0, warning once about each short form', async () => {
    const d = dir();
    const qga = path.join(d, 'qga.sock');
    const text = `socket,id=charchannel0,path=${qga},server,nowait`;
    const p = spawnCli(
      [
        '--socket',
        path.join(d, 'vm.sock'),
        '--chardev',
        text,
        '--device',
        'virtserialport,bus=virtio-serial0.0,nr=1,chardev=charchannel0,id=channel0,name=org.qemu.guest_agent.0',
      ],
      d,
    );
    try {
      await until(() => p.stdout.includes('ready') || p.child.exitCode !== null, 'the daemon to be ready', 15_000);
      expect(p.child.exitCode, p.stderr).toBe(null);
      const warnings = p.stderr.split('\n').filter((l) => l.includes('warning'));
      expect(warnings).toEqual([
        `vhost-console: warning: --chardev '${text}': 'server' is QEMU's deprecated short form of 'server=on'; write 'server=on'`,
        `vhost-console: warning: --chardev '${text}': 'nowait' is QEMU's deprecated short form of 'wait=off'; write 'wait=off'`,
      ]);
      // nowait: the daemon did not wait for a client, and the server socket takes one.
      const sock = net.connect(qga);
      await new Promise<void>((resolve, reject) => {
        sock.once('connect', resolve);
        sock.once('error', reject);
      });
      sock.destroy();
    } finally {
      await p.kill();
    }
  });

  it('prints the port a TCP server on port=0 got, on the host it listens on (localhost by default)', async () => {
    const d = dir();
    const p = spawnCli(
      [
        '--socket',
        path.join(d, 'vm.sock'),
        '--chardev',
        'socket,id=t0,port=0,server=on,wait=off',
        '--device',
        'virtconsole,chardev=t0',
      ],
      d,
    );
    try {
      await until(() => p.stdout.includes('ready') || p.child.exitCode !== null, 'the daemon to be ready', 15_000);
      expect(p.child.exitCode, p.stderr).toBe(null);
      const m = /^vhost-console: chardev 't0': tcp localhost:(\d+)$/m.exec(p.stdout);
      expect(m, p.stdout).not.toBeNull();
      const port = Number(m![1]);
      expect(port).toBeGreaterThan(0);
      const sock = net.connect({ host: 'localhost', port });
      await new Promise<void>((resolve, reject) => {
        sock.once('connect', resolve);
        sock.once('error', reject);
      });
      sock.destroy();
    } finally {
      await p.kill();
    }
  });

  it.each([
    [
      `vc,id=v`,
      `vhost-console: chardev 'v': backend 'vc' is not supported by vhost-console ${SUPPORTED}; for a terminal use pty, or a socket and a client such as socat`,
    ],
    [
      `socket,id=mon0,path=mon.sock,server=on,wait=off,mux=on`,
      "vhost-console: chardev 'mon0': option 'mux' is not supported by vhost-console; to share a port between several backends, put them in a hub: --chardev hub,id=hub0,chardevs.0=mon0,chardevs.1=OTHER --device virtconsole,chardev=hub0",
    ],
  ])('refuses --chardev %s before creating anything', (chardev, message) => {
    const d = dir();
    const r = runCli(['--socket', path.join(d, 'vm.sock'), '--chardev', chardev], d);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe(message);
    expect(fs.readdirSync(d)).toEqual([]);
  });
});
