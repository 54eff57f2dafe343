#!/usr/bin/env node
// `vhost-console`: argv (and --config) -> one validated Config -> the daemon.
// Every input error is reported before anything is opened, naming the option and the value.
import { ConfigError } from './errors.js';
import { formatQemuArgs, helpText, packageVersion, parseArgs, qemuArgs } from './config/load.js';
import type { Config } from './config/schema.js';
import { Daemon } from './daemon.js';
import { sdNotify, startWatchdog } from './ops/systemd.js';
import { rootLogger } from './log.js';

function qemuBanner(config: Config): string {
  return config.vms
    .map((vm) => `# QEMU arguments for VM '${vm.id}' (QEMU >= 10.2; before 10.2 use the patched vhost-user-device-pci):\n${formatQemuArgs(qemuArgs(vm))}`)
    .join('\n');
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs(argv);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`vhost-console: ${err.message}\nTry 'vhost-console --help' for more information.\n`);
      return 2;
    }
    throw err;
  }
  // Accepted but deprecated spellings (QEMU's short-form booleans), as QEMU warns about them.
  if ('warnings' in parsed) for (const w of parsed.warnings) process.stderr.write(`vhost-console: warning: ${w}\n`);
  switch (parsed.action) {
    case 'help':
      process.stdout.write(`${helpText()}\n`);
      return 0;
    case 'version':
      process.stdout.write(`vhost-console ${packageVersion()}\n`);
      return 0;
    case 'print-qemu-args':
      process.stdout.write(`${qemuBanner(parsed.config)}\n`);
      return 0;
    case 'run':
      break;
  }

  let daemon: Daemon;
  try {
    daemon = await Daemon.start(parsed.config, (code) => process.exit(code));
  } catch (err) {
    if (err instanceof ConfigError) {
      // Found before anything was opened (e.g. two users of one socket path).
      process.stderr.write(`vhost-console: ${err.message}\nTry 'vhost-console --help' for more information.\n`);
      return 2;
    }
    const message = err instanceof Error ? err.message : String(err);
    rootLogger().fatal({ err: message }, 'start-up failed');
    process.stderr.write(`vhost-console: ${message}\n`);
    return 1;
  }

  const lines: string[] = [];
  if (parsed.usedDefault) lines.push('vhost-console: no configuration given; running the built-in default (see --help)');
  for (const vm of daemon.vms()) {
    lines.push(`vhost-console: VM '${vm.id}' listening on ${vm.config.socket}`);
    for (const p of vm.ptys()) lines.push(`vhost-console: chardev '${p.id}': pty ${p.path}${p.link ? ` (link ${p.link})` : ''}`);
  }
  lines.push(qemuBanner(parsed.config), 'vhost-console: ready');
  process.stdout.write(`${lines.join('\n')}\n`);
  // Type=notify: every vhost-user socket and the control socket listen now.
  const vms = daemon.vms();
  sdNotify('READY=1', `STATUS=serving ${vms.length} VM${vms.length === 1 ? '' : 's'}: ${vms.map((v) => v.id).join(', ')}`);
  startWatchdog();
  return -1; // keep running
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`vhost-console: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(70);
  },
);
