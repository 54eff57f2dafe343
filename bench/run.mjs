// The daemon's own throughput, latency and CPU cost per MiB (issue 13), measured with a native
// front-end (bench/frontend/vhc-bench.c) playing QEMU + Linux's driver in its own process and
// native host clients in others, so neither side bounds the figures. Every row has references
// measured in the same run: the same bytes through a plain Node relay between two unix sockets
// (bench/relay.mjs, with the same C clients) and memcpy on the same block sizes.
//
//   node bench/run.mjs [--mib N] [--fanout-mib N] [--iters N] [--rounds N] [--cpu-prof DIR]
//                      [--daemon-arg ARG]...
//
// --mib: bytes per throughput test (default 256); --fanout-mib: per fan-out test (default 64);
// --iters: round trips (default 5000); --rounds: repeat everything, report median [min-max];
// --only g2h,h2g,relay,memcpy,fan,rtt: run only these parts; --sizes 4K,32K,1M: only these
// buffer sizes (e.g. for a profile of one path: --only g2h --sizes 32K --perf FILE);
// --cpu-prof DIR: run the daemon under node --cpu-prof (profile written when it stops);
// --perf FILE: `perf record -e cpu-clock -g -p DAEMON` for the whole run (node gets
// --perf-basic-prof so JavaScript frames have names; `perf report -i FILE`).
// CPU is utime+stime of the daemon process (all its threads) from /proc/PID/stat, read before
// the guest starts and after the last byte arrived.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const FE = join(ROOT, 'bench/frontend');
const BIN = join(FE, 'vhc-bench');
const MiB = 1024 * 1024;

const opt = { mib: 256, fanoutMib: 64, iters: 5000, rounds: 1, cpuProf: undefined, daemonArgs: [], only: undefined, sizes: undefined };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const v = () => argv[++i] ?? fail(`${a} needs a value`);
  if (a === '--mib') opt.mib = Number(v());
  else if (a === '--fanout-mib') opt.fanoutMib = Number(v());
  else if (a === '--iters') opt.iters = Number(v());
  else if (a === '--rounds') opt.rounds = Number(v());
  else if (a === '--cpu-prof') opt.cpuProf = resolve(v());
  else if (a === '--daemon-arg') opt.daemonArgs.push(v());
  else if (a === '--perf') opt.perf = resolve(v());
  else if (a === '--only') opt.only = v().split(',');
  else if (a === '--sizes') opt.sizes = v().split(',');
  else fail(`unknown option ${a}`);
}
function fail(msg) {
  console.error(`bench/run.mjs: ${msg}`);
  process.exit(2);
}

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
/** utime+stime of a process in seconds. */
function cpu(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

/** Context switches (voluntary + involuntary) of all threads of a process. */
function csw(pid) {
  let n = 0;
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try {
      const st = readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8');
      n += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(st)[1]) + Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(st)[1]);
    } catch {
      // a thread that just ended
    }
  }
  return n;
}

/** A child process whose stdout lines can be awaited; key=value pairs parsed from them. */
function proc(cmd, args, name) {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const p = { child, name, lines: [], err: '', waiters: [] };
  let rest = '';
  child.stdout.on('data', (d) => {
    const parts = (rest + d).split('\n');
    rest = parts.pop();
    for (const l of parts) {
      p.lines.push(l);
      p.waiters = p.waiters.filter((w) => !(w.re.test(l) && (w.res(l), true)));
    }
  });
  child.stderr.on('data', (d) => { p.err += d; });
  p.exited = new Promise((res) => child.on('exit', (code, sig) => res(sig ?? code)));
  p.wait = (re, ms = 120_000) => {
    const seen = p.lines.find((l) => re.test(l));
    if (seen) return Promise.resolve(seen);
    return new Promise((res, rej) => {
      const t = setTimeout(() => rej(new Error(`${name}: timed out waiting for ${re}; stderr: ${p.err}`)), ms);
      p.waiters.push({ re, res: (l) => { clearTimeout(t); res(l); } });
      void p.exited.then((c) => { clearTimeout(t); rej(new Error(`${name} exited ${c} before ${re}; stderr: ${p.err}`)); });
    });
  };
  p.done = async () => {
    const c = await p.exited;
    if (c !== 0) throw new Error(`${name} exited ${c}: ${p.err}`);
    return kv(p.lines.join(' '));
  };
  return p;
}
const kv = (s) => Object.fromEntries([...s.matchAll(/(\w+)=([\d.]+)/g)].map((m) => [m[1], Number(m[2])]));
const fe = (args, name) => proc(BIN, args.map(String), name);

// ---- the daemon: port 1 on one socket member, port 2 on a hub of 4, port 3 on a hub of 16 ----
const FAN = { 1: 1, 4: 2, 16: 3 };
async function startDaemon(dir) {
  const s = (id) => join(dir, `${id}.sock`);
  const sock = (id) => ['--chardev', `socket,id=${id},path=${s(id)},server=on,wait=off`];
  const a = ['--socket', s('vm'), '--max-ports', '4', '--log-level', 'warn', ...sock('con'), '--device', 'virtconsole,chardev=con',
    ...sock('p1'), '--device', 'virtserialport,chardev=p1,name=org.bench.p1'];
  const members = { 1: [s('p1')] };
  for (const [n, port] of [[4, 2], [16, 3]]) {
    const ids = Array.from({ length: n }, (_, i) => `h${port}m${i}`);
    for (const id of ids) a.push(...sock(id));
    a.push('--chardev', `hub,id=hub${port},${ids.map((id, i) => `chardevs.${i}=${id}`).join(',')}`);
    a.push('--device', `virtserialport,chardev=hub${port},name=org.bench.p${port}`);
    members[n] = ids.map(s);
  }
  const node = opt.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', opt.cpuProf] : [];
  if (opt.perf) node.push('--perf-basic-prof');
  const d = proc(process.execPath, [...node, join(ROOT, 'dist/cli.js'), ...a, ...opt.daemonArgs], 'daemon');
  d.child.stderr.on('data', (x) => { if (/listening/.test(String(x))) d.lines.push('listening'); });
  await d.wait(/listening|QEMU command line/, 20_000).catch(async () => {
    await new Promise((r) => setTimeout(r, 1000));
  });
  d.vm = s('vm');
  d.members = members;
  if (opt.perf) {
    d.perf = proc('perf', ['record', '-q', '-e', 'cpu-clock', '-g', '-o', opt.perf, '-p', String(d.child.pid)], 'perf');
    await new Promise((r) => setTimeout(r, 500));
  }
  return d;
}

async function guestToHost(d, buf, total, port, paths) {
  const sink = fe(['sink', total, ...paths], 'sink');
  await sink.wait(/connected/);
  const c0 = cpu(d.child.pid);
  const w0 = csw(d.child.pid);
  const g = fe(['guest', d.vm, 'g2h', buf, total, '--port', port], 'guest');
  const gr = await g.done();
  const sr = await sink.done();
  if (sr.bad) throw new Error(`sink saw ${sr.bad} corrupted reads`);
  const s = (sr.t_end - gr.t_start) / 1e9;
  return { mibps: total / MiB / s, cpuMsPerMiB: ((cpu(d.child.pid) - c0) * 1000) / (total / MiB), cswPerMiB: (csw(d.child.pid) - w0) / (total / MiB), kicks: gr.kicks, waits: gr.waits };
}

async function hostToGuest(d, buf, total) {
  const src = fe(['source', total, buf, d.members[1][0]], 'source');
  await src.wait(/connected/);
  const c0 = cpu(d.child.pid);
  const w0 = csw(d.child.pid);
  const g = fe(['guest', d.vm, 'h2g', buf, total, '--port', 1], 'guest');
  await g.wait(/ready/);
  src.child.stdin.write('go\n');
  const gr = await g.done();
  const c1 = cpu(d.child.pid);
  const w1 = csw(d.child.pid);
  await src.wait(/t_start/);
  src.child.stdin.end('bye\n');
  const sr = await src.done();
  if (gr.bad) throw new Error(`guest saw ${gr.bad} corrupted buffers`);
  return { mibps: total / MiB / ((gr.t_end - sr.t_start) / 1e9), cpuMsPerMiB: ((c1 - c0) * 1000) / (total / MiB), cswPerMiB: (w1 - w0) / (total / MiB) };
}

async function roundTrip(d) {
  const echo = fe(['echo', d.members[1][0]], 'echo');
  await echo.wait(/connected/);
  const c0 = cpu(d.child.pid);
  const g = fe(['guest', d.vm, 'rtt', 1, 1, '--port', 1, '--iters', opt.iters], 'guest');
  const r = await g.done();
  const usPerRt = ((cpu(d.child.pid) - c0) * 1e6) / opt.iters;
  echo.child.kill();
  return { p50: r.p50_ns / 1000, p99: r.p99_ns / 1000, cpuUsPerRt: usPerRt };
}

/** The plain relay (bench/relay.mjs): `out` side client first, then the `in` side. */
async function relay(dir, outRole, inRole) {
  const inP = join(dir, 'relay-in.sock');
  const outP = join(dir, 'relay-out.sock');
  rmSync(inP, { force: true });
  rmSync(outP, { force: true });
  const r = proc(process.execPath, [join(ROOT, 'bench/relay.mjs'), inP, outP], 'relay');
  await r.wait(/out ready/);
  const out = fe([...outRole, outP], 'relay-out-client');
  if (outRole[0] !== 'rttc') await out.wait(/connected/);
  await r.wait(/relay ready/);
  const inn = fe([...inRole, inP], 'relay-in-client');
  return { r, out, inn };
}

async function relayThroughput(dir, buf, total) {
  const { r, out, inn } = await relay(dir, ['sink', total], ['source', total, buf]);
  await inn.wait(/connected/);
  const c0 = cpu(r.child.pid);
  inn.child.stdin.write('go\n');
  const sr = await out.done();
  const c1 = cpu(r.child.pid);
  await inn.wait(/t_start/);
  inn.child.stdin.end('bye\n');
  const ir = await inn.done();
  r.child.kill();
  await r.exited;
  return { mibps: total / MiB / ((sr.t_end - ir.t_start) / 1e9), cpuMsPerMiB: ((c1 - c0) * 1000) / (total / MiB) };
}

async function relayRoundTrip(dir) {
  const { r, out, inn } = await relay(dir, ['echo'], ['rttc', opt.iters]);
  void out;
  const res = await inn.done();
  r.child.kill();
  await r.exited;
  return { p50: res.p50_ns / 1000, p99: res.p99_ns / 1000 };
}

const memcpyMibps = (buf) => kv(execFileSync(BIN, ['memcpy', String(buf), String(4096 * MiB)], { encoding: 'utf8' })).mibps;

// ---- one round --------------------------------------------------------------------------------
const SIZES = [[4096, '4 KiB'], [32768, '32 KiB'], [MiB, '1 MiB']];
async function round() {
  const dir = mkdtempSync(join(tmpdir(), 'vhc-bench-'));
  const d = await startDaemon(dir);
  const res = {};
  try {
    const total = opt.mib * MiB;
    const on = (part) => !opt.only || opt.only.includes(part);
    for (const [buf, label] of SIZES) {
      if (opt.sizes && !opt.sizes.includes(label.replace(/ KiB/, 'K').replace(/ MiB/, 'M'))) continue;
      if (on('g2h')) res[`g2h ${label}`] = await guestToHost(d, buf, total, 1, d.members[1]);
      if (on('h2g')) res[`h2g ${label}`] = await hostToGuest(d, buf, total);
      if (on('relay')) res[`relay ${label}`] = await relayThroughput(dir, buf, total);
      if (on('memcpy')) res[`memcpy ${label}`] = { mibps: memcpyMibps(buf) };
    }
    if (on('fan')) for (const n of [1, 4, 16]) res[`fan ${n}`] = await guestToHost(d, 32768, opt.fanoutMib * MiB, FAN[n], d.members[n]);
    if (on('rtt')) res.rtt = await roundTrip(d);
    if (on('rtt') && on('relay')) res['relay rtt'] = await relayRoundTrip(dir);
    res.daemonRssMiB = Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${d.child.pid}/status`, 'utf8'))[1]) / 1024;
  } finally {
    if (d.perf) { d.perf.child.kill('SIGINT'); await d.perf.exited; }
    d.child.kill('SIGTERM');
    await d.exited;
    rmSync(dir, { recursive: true, force: true });
  }
  return res;
}

// ---- report -----------------------------------------------------------------------------------
function stat(rounds, key, field) {
  const xs = rounds.map((r) => r[key]?.[field]).filter((x) => typeof x === 'number' && !Number.isNaN(x)).sort((a, b) => a - b);
  if (!xs.length) return 'n/a';
  const med = xs[Math.floor(xs.length / 2)];
  const f = (x) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
  return xs.length > 1 ? `${f(med)} [${f(xs[0])}-${f(xs[xs.length - 1])}]` : f(med);
}

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

function report(rounds) {
  const out = [];
  const n = rounds.length;
  out.push(`vhost-console bench: ${opt.mib} MiB per throughput test, ${opt.fanoutMib} MiB per fan-out test, ${opt.iters} round trips, ${n} round(s)${n > 1 ? ' (median [min-max])' : ''}`);
  out.push(`daemon built from ${revision()}`);
  out.push(`machine: ${execFileSync('nproc', { encoding: 'utf8' }).trim()} CPUs, load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  out.push('');
  out.push('| test | daemon MiB/s | daemon CPU ms/MiB | daemon context switches/MiB | plain relay MiB/s | relay CPU ms/MiB | memcpy MiB/s (same block) |');
  out.push('| --- | --- | --- | --- | --- | --- | --- |');
  for (const [, label] of SIZES) {
    for (const dir of ['g2h', 'h2g']) {
      if (!rounds.some((r) => r[`${dir} ${label}`] || r[`relay ${label}`] || r[`memcpy ${label}`])) continue;
      out.push(`| ${dir === 'g2h' ? 'guest->host' : 'host->guest'} ${label} buffers, 1 socket member | ${stat(rounds, `${dir} ${label}`, 'mibps')} | ${stat(rounds, `${dir} ${label}`, 'cpuMsPerMiB')} | ${stat(rounds, `${dir} ${label}`, 'cswPerMiB')} | ${stat(rounds, `relay ${label}`, 'mibps')} | ${stat(rounds, `relay ${label}`, 'cpuMsPerMiB')} | ${stat(rounds, `memcpy ${label}`, 'mibps')} |`);
    }
  }
  out.push('');
  out.push('| fan-out, guest->host 32 KiB buffers | daemon MiB/s (guest data) | daemon CPU ms per guest MiB | context switches per guest MiB | reference: 1 member, this run |');
  out.push('| --- | --- | --- | --- | --- |');
  for (const m of [1, 4, 16]) if (rounds.some((r) => r[`fan ${m}`])) out.push(`| ${m} socket member${m > 1 ? 's' : ''} | ${stat(rounds, `fan ${m}`, 'mibps')} | ${stat(rounds, `fan ${m}`, 'cpuMsPerMiB')} | ${stat(rounds, `fan ${m}`, 'cswPerMiB')} | ${stat(rounds, 'fan 1', 'mibps')} MiB/s, ${stat(rounds, 'fan 1', 'cpuMsPerMiB')} ms/MiB |`);
  out.push('');
  out.push('| 1-byte round trip (guest -> host echo -> guest) | p50 µs | p99 µs | daemon CPU µs per round trip |');
  out.push('| --- | --- | --- | --- |');
  out.push(`| vhost-console | ${stat(rounds, 'rtt', 'p50')} | ${stat(rounds, 'rtt', 'p99')} | ${stat(rounds, 'rtt', 'cpuUsPerRt')} |`);
  out.push(`| plain relay (reference) | ${stat(rounds, 'relay rtt', 'p50')} | ${stat(rounds, 'relay rtt', 'p99')} | |`);
  out.push('');
  const rss = rounds.map((r) => r.daemonRssMiB.toFixed(0)).join(', ');
  out.push(`daemon peak RSS (VmHWM) per round: ${rss} MiB`);
  return out.join('\n');
}

execFileSync('make', ['-s', '-C', FE], { stdio: 'inherit' });
const rounds = [];
for (let i = 0; i < opt.rounds; i++) {
  rounds.push(await round());
  if (opt.rounds > 1) console.error(`round ${i + 1}/${opt.rounds} done`);
}
console.log(report(rounds));
