// Issue 8, "never destroy what isn't ours": the real daemon (node dist/cli.js) against files,
// sockets and pty links that are not its own -- a user's file at a chardev path, a second
// daemon with the same configuration, another program's live socket, a stale socket, and a
// start-up that fails half-way.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Daemon, HostClient, tmpDir, until } from '../helpers/daemon.js';
import { QmpClient } from '../helpers/qmp.js';
import { PtyPeer, qmpError, runCli } from './util.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

function dir(): string {
  const d = tmpDir('vhc-paths-');
  cleanups.push(d.remove);
  return d.path;
}

/** The README's own configuration, in `d`. */
function readmeArgs(d: string, socket = `${d}/console.sock`): string[] {
  return [
    '--socket',
    socket,
    '--chardev',
    `pty,id=pty0,path=${d}/console.pty`,
    '--chardev',
    `socket,id=sock0,path=${d}/console.io,server=on,wait=off`,
    '--chardev',
    `file,id=log0,path=${d}/vm1-console.log,append=on`,
    '--chardev',
    'hub,id=hub0,chardevs.0=pty0,chardevs.1=sock0,chardevs.2=log0',
    '--device',
    'virtconsole,chardev=hub0,name=org.example.console.0',
    '--chardev',
    `socket,id=qga0,path=${d}/qga.sock,server=on,wait=off`,
    '--device',
    'virtserialport,chardev=qga0,name=org.qemu.guest_agent.0',
    '--control',
    `${d}/qmp.sock`,
  ];
}

async function start(args: string[], wait: string[]): Promise<Daemon> {
  const daemon = await Daemon.start(args, wait);
  cleanups.push(() => daemon.stop());
  return daemon;
}

/** A process that listens on `path` (another program); it prints a line per connection it gets. */
async function otherProgram(path: string): Promise<{ connections: () => number }> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `
    require('net').createServer((s) => { console.log('connection'); s.destroy(); }).listen(${JSON.stringify(path)}, () => console.log('up'));
  `,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  cleanups.push(() => {
    child.kill('SIGKILL');
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  await new Promise<void>((resolve) => {
    const t = setInterval(() => {
      if (out.includes('up')) {
        clearInterval(t);
        resolve();
      }
    }, 10);
  });
  return { connections: () => out.split('\n').filter((l) => l === 'connection').length };
}

function connectOnce(path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve();
    });
    s.once('error', reject);
  });
}

/** A stale socket: its listener was SIGKILLed, so the file stays and nobody accepts on it. */
function staleSocket(path: string): number {
  const killed = spawnSync(process.execPath, [
    '-e',
    `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`,
  ]);
  expect(killed.signal).toBe('SIGKILL');
  return fs.statSync(path).ino;
}

describe("a user's file at a chardev path", () => {
  it('survives a refused start (socket and pty chardevs), and --check says the same, exit 2', () => {
    const d = dir();
    fs.writeFileSync(join(d, 'notes.txt'), 'important\n');
    for (const chardev of ['socket,id=s,path=notes.txt,server=on,wait=off', 'pty,id=s,path=notes.txt']) {
      const args = ['--socket', 'v.sock', '--chardev', chardev, '--device', 'virtserialport,chardev=s'];
      const r = runCli(args, d);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(
        /^vhost-console: chardev 's': path 'notes.txt' exists and is not a (socket|symlink); it is left untouched\n$/,
      );
      expect(fs.readFileSync(join(d, 'notes.txt'), 'utf8')).toBe('important\n');
      expect(fs.readdirSync(d)).toEqual(['notes.txt']);
      const c = runCli(['--check', ...args], d);
      expect(c.code).toBe(2);
      expect(c.stderr).toBe(r.stderr);
      expect(fs.readdirSync(d)).toEqual(['notes.txt']);
    }
  });

  it('survives a refused chardev-add over the control socket', async () => {
    const d = dir();
    fs.writeFileSync(join(d, 'notes.txt'), 'important\n');
    await start(
      [
        '--socket',
        `${d}/vm.sock`,
        '--chardev',
        'null,id=n',
        '--device',
        'virtconsole,chardev=n',
        '--control',
        `${d}/ctl.sock`,
      ],
      [`${d}/vm.sock`, `${d}/ctl.sock`],
    );
    const q = await QmpClient.connect(`${d}/ctl.sock`);
    cleanups.push(() => q.close());
    const notes = join(d, 'notes.txt');
    const sock = await qmpError(
      q.execute('chardev-add', {
        id: 's',
        backend: { type: 'socket', data: { addr: { type: 'unix', data: { path: notes } }, server: true, wait: false } },
      }),
    );
    expect(sock.desc).toContain(`chardev 's': path '${notes}' exists and is not a socket; it is left untouched`);
    const pty = await qmpError(q.execute('chardev-add', { id: 'p', backend: { type: 'pty', data: { path: notes } } }));
    expect(pty.desc).toContain(`chardev 'p': path '${notes}' exists and is not a symlink; it is left untouched`);
    expect(fs.readFileSync(notes, 'utf8')).toBe('important\n');
    expect(fs.readdirSync(d).sort()).toEqual(['ctl.sock', 'ctl.sock.lock', 'notes.txt', 'vm.sock', 'vm.sock.lock']);
  });
});

describe('a second daemon', () => {
  it("with the same configuration exits non-zero; the first one's sockets and pty still serve, and it saw nothing", async () => {
    const d = dir();
    const first = await start(readmeArgs(d), [
      `${d}/console.sock`,
      `${d}/console.io`,
      `${d}/qga.sock`,
      `${d}/qmp.sock`,
      `${d}/console.pty`,
    ]);
    const q = await QmpClient.connect(`${d}/qmp.sock`);
    cleanups.push(() => q.close());
    const link = fs.readlinkSync(join(d, 'console.pty'));
    const inodes = ['console.sock', 'console.io', 'qga.sock', 'qmp.sock'].map((f) => fs.statSync(join(d, f)).ino);
    const linesBefore = first.stderrLines.length;

    const r = runCli(readmeArgs(d), d);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `vhost-console: the vhost-user socket: '${d}/console.sock' is in use by another vhost-console (it holds '${d}/console.sock.lock')`,
    );
    expect(r.stderr).toContain(`chardev 'pty0': '${d}/console.pty' is in use by another vhost-console`);
    expect(r.stderr).toContain(`chardev 'qga0': '${d}/qga.sock' is in use by another vhost-console`);
    expect(r.stderr).not.toMatch(/"level"/); // printed once, not again as a JSON log line

    // Nothing of the first daemon was touched...
    expect(fs.readlinkSync(join(d, 'console.pty'))).toBe(link);
    expect(['console.sock', 'console.io', 'qga.sock', 'qmp.sock'].map((f) => fs.statSync(join(d, f)).ino)).toEqual(
      inodes,
    );
    // ...nor even knocked on: no event, no log line at the first daemon.
    await new Promise((res) => setTimeout(res, 300));
    expect(q.events.filter((e) => e.event.startsWith('FRONTEND_'))).toEqual([]);
    expect(first.stderrLines.slice(linesBefore)).toEqual([]);

    // And it still serves: clients of both sockets, a terminal on the pty, a control client.
    const io = await HostClient.connect(join(d, 'console.io'));
    const qga = await HostClient.connect(join(d, 'qga.sock'));
    const pty = new PtyPeer(join(d, 'console.pty'));
    cleanups.push(() => {
      io.close();
      qga.close();
      pty.close();
    });
    const q2 = await QmpClient.connect(`${d}/qmp.sock`);
    q2.close();
    let open: Record<string, boolean> = {};
    for (const end = Date.now() + 5000; !(open.pty0 && open.sock0 && open.qga0) && Date.now() < end;) {
      const ports = (await q.execute('query-ports')) as { members: { chardev: string; open: boolean }[] }[];
      open = Object.fromEntries(ports.flatMap((p) => p.members.map((m) => [m.chardev, m.open])));
      await new Promise((res) => setTimeout(res, 50));
    }
    expect(open).toMatchObject({ pty0: true, sock0: true, qga0: true });
  });

  it("with another vhost-user socket but the same chardev path is refused; the live socket stays the first one's", async () => {
    const d = dir();
    await start(readmeArgs(d), [`${d}/console.sock`, `${d}/qga.sock`, `${d}/qmp.sock`]);
    const ino = fs.statSync(join(d, 'qga.sock')).ino;
    const other = dir();
    const r = runCli(
      [
        '--socket',
        `${other}/other.sock`,
        '--chardev',
        `socket,id=q,path=${d}/qga.sock,server=on,wait=off`,
        '--device',
        'virtserialport,chardev=q',
      ],
      other,
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `vhost-console: chardev 'q': '${d}/qga.sock' is in use by another vhost-console (it holds '${d}/qga.sock.lock')\n`,
    );
    expect(fs.statSync(join(d, 'qga.sock')).ino).toBe(ino);
    expect(fs.readdirSync(other)).toEqual([]);
    const c = await HostClient.connect(join(d, 'qga.sock'));
    c.close();
  });
});

describe('sockets of other programs', () => {
  it('a socket another program listens on is refused and untouched, detected without connecting to it', async () => {
    const d = dir();
    const path = join(d, 'theirs.sock');
    const prog = await otherProgram(path);
    const ino = fs.statSync(path).ino;
    for (const args of [
      ['--socket', path, '--chardev', 'null,id=n', '--device', 'virtconsole,chardev=n'],
      [
        '--socket',
        `${d}/vm.sock`,
        '--chardev',
        `socket,id=s,path=${path},server=on,wait=off`,
        '--device',
        'virtconsole,chardev=s',
      ],
      ['--socket', `${d}/vm.sock`, '--chardev', 'null,id=n', '--device', 'virtconsole,chardev=n', '--control', path],
    ]) {
      const r = runCli(args, d);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        new RegExp(
          `socket '${path}' is in use by another process \\(a listening socket is bound to it; see 'ss -xlp'\\); it is left untouched`,
        ),
      );
      expect(fs.statSync(path).ino).toBe(ino);
      expect(fs.readdirSync(d)).toEqual(['theirs.sock']);
    }
    // The program was never connected to (a connect probe would count here)...
    await new Promise((res) => setTimeout(res, 200));
    expect(prog.connections()).toBe(0);
    // ...and still serves.
    const c = await HostClient.connect(path);
    await c.closed;
    await until(() => prog.connections() === 1, 'the program to see our connection');
  });

  it('a stale socket (nobody serves it) is replaced', async () => {
    const d = dir();
    staleSocket(join(d, 'vm.sock'));
    staleSocket(join(d, 'io.sock'));
    // Stale: a connection is refused.
    await expect(connectOnce(join(d, 'io.sock'))).rejects.toThrow(/ECONNREFUSED/);
    await start(
      [
        '--socket',
        `${d}/vm.sock`,
        '--chardev',
        `socket,id=s,path=${d}/io.sock,server=on,wait=off`,
        '--device',
        'virtconsole,chardev=s',
      ],
      [`${d}/vm.sock.lock`, `${d}/io.sock.lock`],
    );
    // Replaced: the daemon serves both paths (the inode may be reused, so ask the sockets).
    await HostClient.connect(join(d, 'io.sock')).then((c) => c.close());
    await HostClient.connect(join(d, 'vm.sock')).then((c) => c.close());
  });
});

describe('a start-up that fails half-way', () => {
  it('undoes exactly what it did: its link, sockets, lock files and the file it created go; what was there stays', () => {
    const d = dir();
    fs.writeFileSync(join(d, 'old.log'), 'kept\n');
    const stale = staleSocket(join(d, 'peer.sock'));
    const r = runCli(
      [
        '--socket',
        `${d}/vm.sock`,
        '--control',
        `${d}/ctl.sock`,
        '--chardev',
        `pty,id=pty0,path=${d}/con.pty`,
        '--chardev',
        `file,id=new,path=${d}/new.log`,
        '--chardev',
        `file,id=old,path=${d}/old.log,append=on`,
        '--chardev',
        `socket,id=srv,path=${d}/srv.sock,server=on,wait=off`,
        // Passes the checks (a socket is there) but nobody accepts: fails when opened.
        '--chardev',
        `socket,id=peer,path=${d}/peer.sock`,
        '--chardev',
        'hub,id=hub0,chardevs.0=pty0,chardevs.1=new,chardevs.2=old,chardevs.3=srv,chardevs.4=peer',
        '--device',
        'virtconsole,chardev=hub0',
      ],
      d,
    );
    expect(r.code).toBe(1);
    // Printed once for a person (the JSON lines before it are the log of what was opened).
    expect(r.stderr.split('\n').filter((l) => l.startsWith('vhost-console:'))).toEqual([
      `vhost-console: chardev 'peer': cannot connect to unix:${d}/peer.sock: connect ECONNREFUSED ${d}/peer.sock`,
    ]);
    expect(r.stderr).not.toMatch(/ECONNREFUSED.*"level"|"level".*ECONNREFUSED/);
    expect(fs.readdirSync(d).sort()).toEqual(['old.log', 'peer.sock']);
    expect(fs.readFileSync(join(d, 'old.log'), 'utf8')).toBe('kept\n');
    expect(fs.statSync(join(d, 'peer.sock')).ino).toBe(stale);
  });
});

describe('--check', () => {
  it('runs the start-up checks and creates nothing (exit 0), or lists every problem (exit 2)', () => {
    const d = dir();
    const args = readmeArgs(d);
    const ok = runCli(['--check', ...args], d);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toBe('vhost-console: configuration OK (1 VM)\n');
    expect(fs.readdirSync(d)).toEqual([]);

    fs.mkdirSync(join(d, 'qga.sock'));
    fs.writeFileSync(join(d, 'console.pty'), 'mine');
    const bad = runCli(
      [
        '--check',
        ...args,
        '--chardev',
        `pipe,id=fifo,path=${d}/nofifo`,
        '--chardev',
        `file,id=f,path=${d}/no/dir/x.log`,
      ],
      d,
    );
    expect(bad.code).toBe(2);
    expect(bad.stderr.split('\n').filter(Boolean)).toEqual([
      `vhost-console: chardev 'pty0': path '${d}/console.pty' exists and is not a symlink; it is left untouched`,
      `vhost-console: chardev 'qga0': path '${d}/qga.sock' exists and is not a socket; it is left untouched`,
      `vhost-console: chardev 'fifo': FIFO '${d}/nofifo' does not exist (create it with mkfifo)`,
      `vhost-console: chardev 'f': directory '${d}/no/dir' of '${d}/no/dir/x.log' does not exist`,
    ]);
    expect(fs.readdirSync(d).sort()).toEqual(['console.pty', 'qga.sock']);
  });
});
