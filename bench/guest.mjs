// The guest benchmark (issue 13): the e2e rig's real QEMU + Linux guest (TCG), booted twice per
// round, once with QEMU's built-in virtio-serial-pci and once with the daemon behind QEMU's
// generic vhost-user device (same QEMU, same kernel, same guest-init), interleaved; the guest's
// own `dd` times each transfer (guest clock). Prints the median of the rounds and the ratio
// daemon / built-in (> 1: the daemon is faster).
//
//   node bench/guest.mjs [--rounds N] [--scale F] [--vq-size N] [--only a,b] [--keep]
//
// --rounds: rounds (default 3; the median is reported); --scale: multiply every size (e.g.
// 0.125 for a quick check); --vq-size: QEMU's vq_size for the vhost-user device (default:
// QEMU's); --only: run only these tests (ids below). Needs the rig: npm run e2e:provision.
//
// Host sides: the built-in device's ports are QEMU socket chardevs, the daemon's port 1 a
// socket member and its console a hub of a socket and a log file (the e2e tests' default
// configuration); a Node client drains or feeds every socket.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const MiB = 1024 * 1024;
const opt = { rounds: 3, scale: 1, vqSize: undefined, only: undefined, keep: false };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const v = () => argv[++i] ?? fail(`${a} needs a value`);
  if (a === '--rounds') opt.rounds = Number(v());
  else if (a === '--scale') opt.scale = Number(v());
  else if (a === '--vq-size') opt.vqSize = Number(v());
  else if (a === '--only') opt.only = v().split(',');
  else if (a === '--keep') opt.keep = true;
  else fail(`unknown option ${a}`);
}
function fail(msg) {
  console.error(`bench/guest.mjs: ${msg}`);
  process.exit(2);
}

const rigEnv = process.env.VHC_E2E_RIG ?? join(ROOT, '.e2e-cache/rig.env');
if (!existsSync(rigEnv)) fail(`no e2e rig (${rigEnv}); run npm run e2e:provision`);
const rig = Object.fromEntries(readFileSync(rigEnv, 'utf8').split('\n').filter((l) => /^[A-Z_]+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));

// Tests: guest command (DEV = the port's device), bytes, and whether the host feeds the guest.
const sz = (b) => Math.max(1, Math.round((b * opt.scale) / 4096)) * 4096;
const TESTS = [
  { id: 'w32k', what: 'vport write, 32 KiB blocks', bs: 32768, bytes: sz(64 * MiB), dev: 'port' },
  { id: 'w1m', what: 'vport write, 1 MiB blocks', bs: MiB, bytes: Math.max(MiB, Math.round((64 * opt.scale)) * MiB), dev: 'port' },
  { id: 'hvc', what: 'hvc0 write, 4 KiB blocks', bs: 4096, bytes: sz(8 * MiB), dev: 'hvc' },
  { id: 'r32k', what: 'vport read, 32 KiB blocks', bs: 32768, bytes: sz(32 * MiB), dev: 'port', read: true },
  { id: 'r4k', what: 'vport read, 4 KiB blocks (host->guest, small reads)', bs: 4096, bytes: sz(8 * MiB), dev: 'port', read: true },
].filter((t) => !opt.only || opt.only.includes(t.id));

function lines(stream, onLine) {
  let rest = '';
  stream.on('data', (d) => {
    const parts = (rest + d.toString('latin1')).split('\n');
    rest = parts.pop();
    for (const l of parts) onLine(l.replace(/\r$/, ''));
  });
}

async function connectRetry(path) {
  for (let i = 0; ; i++) {
    try {
      return await new Promise((res, rej) => {
        const s = connect(path);
        s.once('connect', () => { s.removeAllListeners('error'); res(s); });
        s.once('error', rej);
      });
    } catch (e) {
      if (i > 200) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** A host-side client that counts what it receives and can feed bytes. */
async function hostClient(path) {
  const s = await connectRetry(path);
  const c = { s, got: 0 };
  s.on('data', (d) => { c.got += d.length; });
  s.on('error', () => {});
  return c;
}

async function startDaemon(dir) {
  const sock = (id) => ['--chardev', `socket,id=${id},path=${join(dir, `${id}.sock`)},server=on,wait=off`];
  const args = [join(ROOT, 'dist/cli.js'), '--socket', join(dir, 'vm.sock'), '--max-ports', '2', '--log-level', 'warn',
    ...sock('con'), '--chardev', `file,id=log,path=${join(dir, 'console.log')}`, '--chardev', 'hub,id=hub0,chardevs.0=con,chardevs.1=log',
    '--device', 'virtconsole,chardev=hub0', ...sock('p1'), '--device', 'virtserialport,chardev=p1,name=org.e2e.port1'];
  const d = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  d.stderr.on('data', (x) => { err += x; });
  d.stdout.resume();
  for (let i = 0; !existsSync(join(dir, 'p1.sock')); i++) {
    if (i > 200 || d.exitCode !== null) throw new Error(`daemon did not start: ${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  await new Promise((r) => setTimeout(r, 200));
  return d;
}

async function boot(dir, kind) {
  const args = ['-L', rig.FIRMWARE, '-machine', 'q35,accel=tcg,memory-backend=mem', '-cpu', 'max', '-smp', '1', '-m', '256M',
    '-object', 'memory-backend-memfd,id=mem,size=256M,share=on', '-nodefaults', '-no-user-config', '-display', 'none',
    '-no-reboot', '-serial', 'stdio', '-kernel', rig.KERNEL, '-initrd', rig.INITRD, '-append', 'console=ttyS0 panic=-1 quiet'];
  const qsock = (id) => `socket,id=${id},path=${join(dir, `${id}.sock`)},server=on,wait=off`;
  if (kind === 'builtin') {
    args.push('-device', 'virtio-serial-pci,id=vser0,max_ports=2', '-chardev', qsock('con'), '-device', 'virtconsole,bus=vser0.0,nr=0,chardev=con',
      '-chardev', qsock('p1'), '-device', 'virtserialport,bus=vser0.0,nr=1,chardev=p1,name=org.e2e.port1');
  } else {
    let dev = `${rig.DEVICE},chardev=vu0,virtio-id=3,num_vqs=6,config_size=12`;
    if (opt.vqSize) dev += `,vq_size=${opt.vqSize}`;
    args.push('-chardev', `socket,id=vu0,path=${join(dir, 'vm.sock')}`, '-device', dev);
  }
  const q = spawn(rig.QEMU, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const g = { q, lines: [], waiters: [], seq: 0, err: '' };
  q.stderr.on('data', (x) => { g.err += x; });
  const exited = new Promise((r) => q.on('exit', r));
  lines(q.stdout, (l) => {
    g.lines.push(l);
    g.waiters = g.waiters.filter((w) => !(w.re.test(l) && (w.res(l), true)));
  });
  g.wait = (re, ms) => new Promise((res, rej) => {
    if (g.lines.some((l) => re.test(l))) return res();
    const t = setTimeout(() => rej(new Error(`guest: timed out waiting for ${re}; qemu: ${g.err}`)), ms);
    g.waiters.push({ re, res: (l) => { clearTimeout(t); res(l); } });
    void exited.then(() => { clearTimeout(t); rej(new Error(`QEMU exited: ${g.err}`)); });
  });
  g.run = async (cmd, ms = 600_000) => {
    const id = `b${++g.seq}`;
    const from = g.lines.length;
    q.stdin.write(`${id} ${cmd}\n`);
    const end = await g.wait(new RegExp(`^E2E: end ${id} rc=`), ms);
    const out = g.lines.slice(from).filter((l) => l.startsWith(`E2E:${id}: `)).map((l) => l.slice(id.length + 6));
    return { rc: Number(/rc=(\d+)/.exec(end)[1]), out };
  };
  g.stop = async () => { q.kill('SIGKILL'); await exited; };
  await g.wait(/^E2E: ready/, 120_000);
  return g;
}

/** The rig's busybox dd prints no timing and its date has no %N: the command is timed with the
 *  guest kernel's monotonic clock as /proc/timer_list shows it ("now at N nsecs"). */
const NOW = "$(sed -n 's/^now at \\([0-9]*\\) nsecs.*/\\1/p' /proc/timer_list | head -n 1)";
const timed = (cmd) => `s=${NOW}; ${cmd}; rc=$?; e=${NOW}; echo "elapsed_ns=$((e - s))"; exit $rc`;
const med = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const elapsed = (out) => Number(out.map((l) => /^elapsed_ns=(\d+)$/.exec(l)).find(Boolean)?.[1] ?? NaN);
/** MiB/s of a timed dd, less the cost of timing itself (`overhead`: the same timing around `:`). */
function ddRate(out, bytes, overhead) {
  const recs = out.some((l) => /^\d+\+\d+ records out/.test(l));
  const ns = elapsed(out);
  if (!recs || Number.isNaN(ns)) throw new Error(`no dd summary or timing in: ${out.join(' | ')}`);
  return bytes / MiB / (Math.max(ns - overhead, 1) / 1e9);
}

async function runOne(kind) {
  const dir = mkdtempSync(join(tmpdir(), `vhc-guestbench-${kind}-`));
  const daemon = kind === 'daemon' ? await startDaemon(dir) : undefined;
  const g = await boot(dir, kind);
  const res = {};
  try {
    const con = await hostClient(join(dir, 'con.sock'));
    const p1 = await hostClient(join(dir, 'p1.sock'));
    const w = await g.run('e2e_wait_port org.e2e.port1 30', 60_000);
    if (w.rc !== 0) throw new Error(`no port org.e2e.port1 in the guest: ${w.out.join(' | ')}`);
    // What the timing itself costs in this guest (sed + head started twice), median of 5.
    const cal = [];
    for (let k = 0; k < 5; k++) cal.push(elapsed((await g.run(timed(':'))).out));
    const overhead = med(cal);
    res.overheadMs = overhead / 1e6;
    for (const t of TESTS) {
      const dev = t.dev === 'hvc' ? '/dev/hvc0' : '$(e2e_dev org.e2e.port1)';
      const count = t.bytes / t.bs;
      let r;
      if (t.read) {
        // The host writes everything first (held back until the guest opens the port), then
        // the guest reads it with full blocks.
        const data = Buffer.alloc(t.bytes, 0x61);
        p1.s.write(data);
        r = await g.run(timed(`dd if=${dev} of=/dev/null bs=${t.bs} count=${count} iflag=fullblock 2>&1`));
      } else {
        const host = t.dev === 'hvc' ? con : p1;
        const before = host.got;
        r = await g.run(timed(`dd if=/dev/zero of=${dev} bs=${t.bs} count=${count} 2>&1`));
        // QEMU's built-in console drops what its chardev does not take at once (virtio-console's
        // flush_buf on EAGAIN): there, count the loss instead of waiting for every byte.
        const lossy = kind === 'builtin' && t.dev === 'hvc';
        const end = Date.now() + (lossy ? 3_000 : 60_000);
        while (host.got - before < t.bytes && Date.now() < end) await new Promise((x) => setTimeout(x, 20));
        if (host.got - before < t.bytes && !lossy) throw new Error(`${kind} ${t.id}: the host received ${host.got - before} of ${t.bytes} bytes`);
        if (host.got - before < t.bytes) lost.push(`${kind} ${t.id}: ${t.bytes - (host.got - before)} bytes lost`);
      }
      if (r.rc !== 0) throw new Error(`${kind} ${t.id}: dd failed: ${r.out.join(' | ')}`);
      res[t.id] = ddRate(r.out, t.bytes, overhead);
    }
    con.s.destroy();
    p1.s.destroy();
  } finally {
    await g.stop();
    if (daemon) { daemon.kill('SIGTERM'); await new Promise((r) => daemon.on('exit', r)); }
    if (!opt.keep) rmSync(dir, { recursive: true, force: true });
  }
  return res;
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

const results = { builtin: [], daemon: [] };
const lost = [];
for (let i = 0; i < opt.rounds; i++) {
  // Interleaved, and the order alternates between rounds.
  for (const kind of i % 2 ? ['daemon', 'builtin'] : ['builtin', 'daemon']) {
    const t0 = Date.now();
    results[kind].push(await runOne(kind));
    console.error(`round ${i + 1}/${opt.rounds} ${kind}: ${JSON.stringify(results[kind].at(-1), (_, v) => (typeof v === 'number' ? Number(v.toFixed(1)) : v))} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  }
}
const f = (x) => x.toFixed(1);
const out = [`guest benchmark: QEMU ${rig.QEMU_VERSION} (TCG), Linux ${rig.KERNEL_VERSION}, ${opt.rounds} round(s), median; vq_size ${opt.vqSize ?? "QEMU's default"}; guest dd, guest clock; daemon built from ${revision()}`, '',
  '| test | size | daemon MiB/s | built-in MiB/s | ratio | daemon runs | built-in runs |', '| --- | --- | --- | --- | --- | --- | --- |'];
for (const t of TESTS) {
  const d = results.daemon.map((r) => r[t.id]);
  const b = results.builtin.map((r) => r[t.id]);
  out.push(`| ${t.what} | ${t.bytes / MiB} MiB | ${f(med(d))} | ${f(med(b))} | ${(med(d) / med(b)).toFixed(2)} | ${d.map(f).join(', ')} | ${b.map(f).join(', ')} |`);
}
if (lost.length) out.push('', `host side received less than the guest wrote: ${lost.join('; ')}`);
console.log(out.join('\n'));
