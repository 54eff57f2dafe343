#!/usr/bin/env node
// Idle cost of the daemon (issue 12): N VMs x 4 ports, the console port a hub of a pty, a
// unix socket and a file, the other 3 ports unix sockets; no front-end connected, nobody on
// the ptys or sockets. Measures start-up (spawn to "ready" on stdout), RSS, and CPU over a
// quiet window (utime+stime from /proc/PID/stat), with a same-run reference: the same VMs with
// sockets only (no pty, no file), which has no timer at all. Start-up is given as wall time
// and as the CPU time the daemon used until "ready" (the wall time depends on what else the
// machine runs; under `nice` on a busy machine it is mostly waiting).
//
// The daemon runs on a tmpfs (/dev/shm), as its sockets do in /run in production.
//
//   nice -n 19 node bench/idle.mjs [--vms 256] [--seconds 20]
//
// Goal: 256 VMs: idle CPU < 0.5% of a core, RSS < 150 MB, start-up < 2 s.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const CLI = process.env.VHC_CLI ?? join(ROOT, 'dist', 'cli.js');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const VMS = arg('vms', 256);
const SECONDS = arg('seconds', 20);
const TICKS = 100; // USER_HZ: /proc/PID/stat counts CPU time in 1/100 s on Linux

function config(dir, withPty) {
  const vm = [];
  for (let i = 0; i < VMS; i++) {
    const d = (f) => join(dir, `v${i}-${f}`);
    const chardev = [
      `socket,id=con,path=${d('con.sock')},server=on,wait=off`,
      ...(withPty ? [`pty,id=pty0`, `file,id=log0,path=${d('console.log')},max-size=2M`, 'hub,id=hub0,chardevs.0=pty0,chardevs.1=con,chardevs.2=log0'] : []),
      ...[1, 2, 3].map((p) => `socket,id=s${p},path=${d(`p${p}.sock`)},server=on,wait=off`),
    ];
    const device = [`virtconsole,chardev=${withPty ? 'hub0' : 'con'}`, ...[1, 2, 3].map((p) => `virtserialport,chardev=s${p},name=org.example.p${p}`)];
    vm.push({ id: `vm${i}`, socket: d('vhu.sock'), 'max-ports': 4, chardev, device });
  }
  const file = join(dir, 'vms.json');
  writeFileSync(file, JSON.stringify({ 'log-level': 'warn', vm }));
  return file;
}

function cpuTicks(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14, 15)
}

function rssMB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]) / 1024;
}

async function run(label, withPty) {
  // A tmpfs, as /run is where the sockets live in production (a disk or overlay file system
  // makes every bind and lock-file open slower).
  const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'vhc-idle-'));
  try {
    const file = config(dir, withPty);
    const t0 = process.hrtime.bigint();
    // Every VM needs ~16 fds (sockets, lock files, pty, log): raise the soft limit.
    const child = spawn('bash', ['-c', `ulimit -n $(ulimit -Hn); exec "${process.execPath}" "${CLI}" --config "${file}"`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stderr.on('data', (d) => { err += d; });
    const ready = await new Promise((resolve, reject) => {
      child.stdout.on('data', (d) => {
        out += d;
        if (out.includes('vhost-console: ready')) resolve({ wall: Number(process.hrtime.bigint() - t0) / 1e6, cpu: (cpuTicks(child.pid) * 1000) / TICKS });
      });
      child.once('exit', (c) => reject(new Error(`daemon exited (${c}): ${err.slice(-2000)}`)));
    });
    // Let start-up garbage settle, then measure a quiet window.
    await new Promise((r) => setTimeout(r, 3000));
    const c0 = cpuTicks(child.pid);
    const w0 = Date.now();
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    const cpu = ((cpuTicks(child.pid) - c0) / TICKS) / ((Date.now() - w0) / 1000) * 100;
    const rss = rssMB(child.pid);
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    return { label, startupMs: Math.round(ready.wall), startupCpuMs: Math.round(ready.cpu), idleCpuPercent: Number(cpu.toFixed(3)), rssMB: Number(rss.toFixed(1)) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const rows = [];
rows.push(await run(`${VMS} VMs x 4 ports, console = pty + socket + file hub`, true));
rows.push(await run(`reference: ${VMS} VMs x 4 ports, sockets only`, false));
console.table(rows);
const [m] = rows;
const goals = [
  ['idle CPU < 0.5% of a core', m.idleCpuPercent < 0.5],
  ['RSS < 150 MB', m.rssMB < 150],
  ['start-up < 2 s', m.startupMs < 2000],
];
for (const [what, ok] of goals) console.log(`${ok ? 'met    ' : 'MISSED '} ${what}`);
console.log(`(CPU over ${SECONDS} s of /proc/PID/stat at ${TICKS} ticks/s: resolution ${(100 / TICKS / SECONDS).toFixed(3)}% of a core)`);
