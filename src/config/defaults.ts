// The embedded default for `npm start` / `vhost-console` without options: one VM whose
// console is reachable three ways at once (a pty to attach a terminal, a unix socket for
// scripts, a log file), and a guest-agent port. Written as argv so it passes through the
// very parser and rules a user's command line does.

export const DEFAULT_PTY_PATH = './vhost-console.pty';

export const DEFAULT_ARGV: readonly string[] = [
  '--socket',
  './vhost-console.sock',
  '--chardev',
  `pty,id=console-pty,path=${DEFAULT_PTY_PATH}`,
  '--chardev',
  'socket,id=console-sock,path=./vhost-console.console.sock,server=on,wait=off',
  '--chardev',
  'file,id=console-log,path=./vhost-console.log,append=on',
  '--chardev',
  'hub,id=console-hub,chardevs.0=console-pty,chardevs.1=console-sock,chardevs.2=console-log',
  '--device',
  'virtconsole,id=console,chardev=console-hub',
  '--chardev',
  'socket,id=qga0,path=./vhost-console.qga.sock,server=on,wait=off',
  '--device',
  'virtserialport,chardev=qga0,name=org.qemu.guest_agent.0',
  // The web console on a free loopback port: two daemons never collide, and the URLs to open
  // (with a new token at each start anyway) are printed.
  '--web',
  '127.0.0.1:0',
];
