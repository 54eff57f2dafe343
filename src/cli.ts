#!/usr/bin/env node
// `vhost-console`: argv (and --config) -> one validated Config -> the daemon.
// Every input error is reported before anything is opened, naming the option and the value.
import { ConfigError } from './errors.js';
import { parseArgs } from './config/load.js';
import { formatQemuArgs, qemuArgs } from './cli/qemu-args.js';
import { helpText } from './cli/usage.js';
import { packageVersion } from './version.js';
import type { Config } from './config/schema.js';
import { sdNotify, startWatchdog } from './ops/systemd.js';
import { chardevEndpointLines, daemonEndpointLines } from './ops/banner.js';
import { setLogFormat } from './log.js';
import { checkStartup, Daemon, StartupError } from './daemon.js';
import { webBannerLines } from './web/server.js';

/**
 * A qemu-system-x86_64 command line per VM that a user can paste as it is (the comment lines
 * are shell comments): q35 with shared (memfd) guest memory of `memory`, and the device.
 */
function qemuBanner(config: Config, memory: string): string {
  return config.vms
    .map((vm) => {
      const args = qemuArgs(vm, { memory }).map((a) => (a === 'memory-backend=mem' ? 'q35,memory-backend=mem' : a));
      return [
        `# QEMU command line for VM '${vm.id}' (QEMU >= 10.2; before 10.2 use the patched vhost-user-device-pci);`,
        '# add your own disk, kernel, network and display options (and -accel kvm where available):',
        `qemu-system-x86_64 \\\n${formatQemuArgs(args)}`,
      ].join('\n');
    })
    .join('\n');
}

/** The start-up checks, printed once each; true if there was none. */
function reportProblems(problems: string[]): boolean {
  for (const p of problems) process.stderr.write(`vhost-console: ${p}\n`);
  return problems.length === 0;
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
  // Before anything logs: readable lines at a terminal, JSON otherwise (or as --log-format says).
  setLogFormat('config' in parsed ? parsed.config.logFormat : undefined);
  // Accepted but deprecated spellings (QEMU's short-form booleans), as QEMU warns about them.
  if ('warnings' in parsed) for (const w of parsed.warnings) process.stderr.write(`vhost-console: warning: ${w}\n`);
  switch (parsed.action) {
    case 'help':
      process.stdout.write(`${helpText()}\n`);
      return 0;
    case 'version':
      process.stdout.write(`vhost-console ${packageVersion()}\n`);
      return 0;
    case 'check':
      // Everything start-up checks, nothing created, locked or removed.
      if (!reportProblems(checkStartup(parsed.config))) return 2;
      process.stdout.write(
        `vhost-console: configuration OK (${parsed.config.vms.length} VM${parsed.config.vms.length === 1 ? '' : 's'})\n`,
      );
      return 0;
    case 'print-qemu-args':
      // A command line for a daemon that would not start helps nobody.
      if (!reportProblems(checkStartup(parsed.config))) return 2;
      process.stdout.write(`${qemuBanner(parsed.config, parsed.guestMemory)}\n`);
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
    // Printed once, for a person (not again as a JSON log line); it names its VM, chardev or
    // socket. Everything this start had opened or created is gone again.
    if (err instanceof StartupError) reportProblems(err.problems);
    else process.stderr.write(`vhost-console: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }

  const lines: string[] = [];
  if (parsed.usedDefault)
    lines.push('vhost-console: no configuration given; running the built-in default (see --help)');
  for (const vm of daemon.vms()) {
    lines.push(`vhost-console: VM '${vm.id}' listening on ${vm.config.socket}`);
    for (const p of vm.ptys())
      lines.push(`vhost-console: chardev '${p.id}': pty ${p.path}${p.link ? ` (link ${p.link})` : ''}`);
    // A TCP server's bound address (port=0: the port it got), from query-chardev's filename.
    const chardevInfo = daemon.queryChardev(vm.id);
    lines.push(
      ...chardevEndpointLines(vm.config, (id) => {
        const m = /^(?:disconnected:)?(?:tcp|telnet):([^, ]+)/.exec(
          chardevInfo.find((c) => c.label === id)?.filename ?? '',
        );
        return m ? `tcp:${m[1]}` : undefined;
      }),
    );
  }
  lines.push(...daemonEndpointLines(parsed.config, daemon.metricsUrl));
  if (daemon.web) lines.push(...webBannerLines(daemon.web));
  lines.push(qemuBanner(parsed.config, parsed.guestMemory), 'vhost-console: ready');
  process.stdout.write(`${lines.join('\n')}\n`);
  // Type=notify: every vhost-user socket and the control socket listen now.
  sdNotify('READY=1', daemon.statusLine());
  startWatchdog();
  return -1; // keep running
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(
      `vhost-console: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(70);
  },
);
