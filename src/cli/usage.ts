// --help: the option table comes from the configuration loader (one list of flags for
// parsing and for help); the wording around it is the command line's.
import { FLAGS } from '../config/load.js';

export function helpText(): string {
  const lines = FLAGS.map((f) => {
    const head = `  --${f.name}${f.metavar ? ` ${f.metavar}` : ''}`;
    return head.length < 34 ? `${head.padEnd(34)}${f.help}` : `${head}\n${' '.repeat(34)}${f.help}`;
  });
  return [
    'Usage: vhost-console [OPTIONS]',
    '',
    'A vhost-user virtio-console backend: named multiport console ports, each a hub of host backends.',
    'Without any VM option or --config it runs the built-in default (a console on a pty, a socket and',
    'a log file, plus a guest-agent port), all in the current directory.',
    '',
    'Options:',
    ...lines,
    '',
    'Example:',
    '  vhost-console --socket /run/vm1/console.sock \\',
    '    --chardev pty,id=pty0,path=/run/vm1/console.pty \\',
    '    --chardev socket,id=sock0,path=/run/vm1/console.io,server=on,wait=off \\',
    '    --chardev hub,id=hub0,chardevs.0=pty0,chardevs.1=sock0 \\',
    '    --device virtconsole,chardev=hub0',
    '',
    'See docs/configuration.md for every option and the config-file form.',
  ].join('\n');
}
