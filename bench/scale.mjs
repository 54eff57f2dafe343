// Scale bench (issue 13): one daemon serving many VMs (default 1000 x 4 ports, from a config
// file), the native front-end (bench/frontend/vhc-bench.c, `trickle`, one process) connected
// to some of them (default 100), each console printing ~RATE bytes a second. Reports start-up
// time, the daemon's RSS and its CPU (utime+stime from /proc/PID/stat) while idle and under the
// trickle, as % of one core.
//
//   node bench/scale.mjs [--vms N] [--connect N] [--rate BYTES_PER_S] [--seconds S] [--cpu-prof DIR]
//
// Each VM: console = hub of a socket and a log file, ports 1..3 = sockets (5 fds and a file
// per VM, about 6000 fds for 1000 VMs).
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const FE = join(ROOT, 'bench/frontend');
const opt = { vms: 1000, connect: 100, rate: 100, seconds: 30, cpuProf: undefined };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const v = () => Number(argv[++i]);
  if (a === '--vms') opt.vms = v();
  else if (a === '--connect') opt.connect = v();
  else if (a === '--rate') opt.rate = v();
  else if (a === '--seconds') opt.seconds = v();
  else if (a === '--cpu-prof') opt.cpuProf = resolve(argv[++i]);
  else { console.error(`bench/scale.mjs: unknown option ${a}`); process.exit(2); }
}
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
function cpu(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}
const status = (pid, key) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const canConnect = (path) => new Promise((res) => {
  const s = connect(path);
  s.once('connect', () => { s.destroy(); res(true); });
  s.once('error', () => res(false));
});

/** The checkout the daemon under test was built from (dist/ follows the working tree). */
function revision() {
  try {
    const head = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['-C', ROOT, 'status', '--porcelain', '--untracked-files=no', 'src', 'native'], { encoding: 'utf8' }).trim();
    return `${head}${dirty ? ' + uncommitted changes in src/ or native/' : ''}`;
  } catch {
    return 'unknown';
  }
}

execFileSync('make', ['-s', '-C', FE], { stdio: 'inherit' });
const dir = mkdtempSync(join(tmpdir(), 'vhc-scale-'));
const vm = [];
for (let i = 0; i < opt.vms; i++) {
  const p = (x) => join(dir, `vm${i}.${x}`);
  vm.push({
    id: `vm${i}`, socket: p('sock'), 'max-ports': 4,
    chardev: [`socket,id=con,path=${p('con.sock')},server=on,wait=off`, `file,id=log,path=${p('console.log')}`, 'hub,id=hub0,chardevs.0=con,chardevs.1=log',
      ...[1, 2, 3].map((n) => `socket,id=s${n},path=${p(`p${n}.sock`)},server=on,wait=off`)],
    device: ['virtconsole,chardev=hub0', ...[1, 2, 3].map((n) => `virtserialport,chardev=s${n},name=org.bench.p${n}`)],
  });
}
const cfg = join(dir, 'scale.json');
writeFileSync(cfg, JSON.stringify({ 'log-level': 'warn', vm }));

const t0 = process.hrtime.bigint();
const prof = opt.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', opt.cpuProf] : [];
const d = spawn(process.execPath, [...prof, join(ROOT, 'dist/cli.js'), '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
let err = '';
d.stderr.on('data', (x) => { err += x; });
d.stdout.resume();
const exited = new Promise((r) => d.on('exit', (c, s) => r(s ?? c)));
const last = vm.at(-1);
let startMs;
try {
  for (;;) {
    if (d.exitCode !== null) throw new Error(`daemon exited ${d.exitCode}: ${err.slice(-3000)}`);
    if (existsSync(join(dir, `vm${opt.vms - 1}.p3.sock`)) && (await canConnect(last.socket)) && (await canConnect(join(dir, `vm${opt.vms - 1}.p3.sock`)))) break;
    if (Number(process.hrtime.bigint() - t0) / 1e9 > 120) throw new Error(`not up after 120 s: ${err.slice(-3000)}`);
    await sleep(20);
  }
  startMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const startCpu = cpu(d.pid);
  const fds = execFileSync('ls', [`/proc/${d.pid}/fd`], { encoding: 'utf8' }).split('\n').filter(Boolean).length;
  await sleep(5000);
  const rssIdle = status(d.pid, 'VmRSS');
  const c0 = cpu(d.pid);
  await sleep(10000);
  const idlePct = ((cpu(d.pid) - c0) / 10) * 100;

  const socks = vm.slice(0, opt.connect).map((v) => v.socket);
  const fe = spawn(join(FE, 'vhc-bench'), ['trickle', String(opt.rate), String(opt.seconds + 3), ...socks], { stdio: ['ignore', 'pipe', 'pipe'] });
  let feOut = '';
  let feErr = '';
  fe.stdout.on('data', (x) => { feOut += x; });
  fe.stderr.on('data', (x) => { feErr += x; });
  const feExit = new Promise((r) => fe.on('exit', r));
  const tc = Date.now();
  while (!/connected=/.test(feOut)) {
    if (fe.exitCode !== null) throw new Error(`front-end failed: ${feErr}`);
    if (Date.now() - tc > 120_000) throw new Error('front-end did not connect in 120 s');
    await sleep(50);
  }
  const connectMs = Date.now() - tc;
  await sleep(2000);
  const c1 = cpu(d.pid);
  const fc1 = cpu(fe.pid);
  await sleep(opt.seconds * 1000 - 2000);
  const busyPct = ((cpu(d.pid) - c1) / (opt.seconds - 2)) * 100;
  const fePct = ((cpu(fe.pid) - fc1) / (opt.seconds - 2)) * 100;
  const rssBusy = status(d.pid, 'VmRSS');
  const hwm = status(d.pid, 'VmHWM');
  await feExit;
  const logged = vm.slice(0, opt.connect).reduce((n, v) => n + readFileSync(join(dir, `${v.id}.console.log`)).length, 0);
  console.log(`scale bench: ${opt.vms} VMs x 4 ports in one daemon, ${opt.connect} front-ends (one process) each printing ${opt.rate} bytes/s on the console; machine ${execFileSync('nproc', { encoding: 'utf8' }).trim()} CPUs, load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  console.log(`daemon built from ${revision()}`);
  console.log('');
  console.log('| measure | value |');
  console.log('| --- | --- |');
  console.log(`| start-up (spawn to last VM's sockets accepting) | ${(startMs / 1000).toFixed(2)} s (daemon CPU ${startCpu.toFixed(2)} s) |`);
  console.log(`| daemon fds after start | ${fds} |`);
  console.log(`| RSS idle, ${opt.vms} VMs, no front-end | ${rssIdle.toFixed(0)} MiB |`);
  console.log(`| CPU idle (10 s) | ${idlePct.toFixed(2)} % of a core |`);
  console.log(`| ${opt.connect} front-ends connecting (all ports ready) | ${(connectMs / 1000).toFixed(2)} s |`);
  console.log(`| RSS with ${opt.connect} front-ends, trickling | ${rssBusy.toFixed(0)} MiB (peak ${hwm.toFixed(0)} MiB) |`);
  console.log(`| daemon CPU under the trickle (${opt.seconds - 2} s) | ${busyPct.toFixed(2)} % of a core |`);
  console.log(`| front-end process CPU (reference) | ${fePct.toFixed(2)} % of a core |`);
  console.log(`| console bytes in the log files (${opt.connect} VMs) | ${logged} (front-end says ${/sent=(\d+)/.exec(feOut)?.[1]}) |`);
} finally {
  d.kill('SIGTERM');
  await exited;
  rmSync(dir, { recursive: true, force: true });
}
