// The web server's own rules, in process over real hubs and real sockets (no browser): tokens,
// Origin, read-only enforced at the WebSocket level, screen on attach, the resize rule, slow
// viewers, web-disconnect. The browser and the real daemon: browser.test.ts.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { WebServer } from '../../src/web/server.js';
import { FakeConsole, startServer, TOKENS } from './harness.js';

let server: WebServer | undefined;
const sockets: WebSocket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) {
    s.on('error', () => {}); // terminate() on a socket still connecting reports an error
    s.terminate();
  }
  await server?.close();
  server = undefined;
});

async function until(pred: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

interface Client {
  ws: WebSocket;
  json: Record<string, unknown>[];
  bin: Buffer[];
  text(): string;
  closed?: { code: number; reason: string };
}

/** A WebSocket client; resolves once the hello and the screen came in. */
async function viewer(base: string, token: string, o: { origin?: string; port?: string } = {}): Promise<Client> {
  const ws = new WebSocket(
    `${base.replace(/^http/, 'ws')}/ws/vm/vm0/port/${o.port ?? 'console'}?token=${token}`,
    o.origin ? { origin: o.origin } : {},
  );
  sockets.push(ws);
  const c: Client = { ws, json: [], bin: [], text: () => Buffer.concat(c.bin).toString('latin1') };
  ws.on('message', (d: Buffer, isBinary) =>
    isBinary ? c.bin.push(d) : c.json.push(JSON.parse(d.toString()) as Record<string, unknown>),
  );
  ws.on('close', (code, reason) => {
    c.closed = { code, reason: reason.toString() };
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('error', reject);
    ws.once('open', () => resolve());
  });
  await until(() => c.json.some((m) => m.type === 'screen'), 'the screen');
  return c;
}

/** The HTTP status of a refused upgrade (and that no WebSocket opened). */
async function refusedUpgrade(base: string, token: string | undefined, origin?: string): Promise<number> {
  const ws = new WebSocket(
    `${base.replace(/^http/, 'ws')}/ws/vm/vm0/port/console${token === undefined ? '' : `?token=${token}`}`,
    origin ? { origin } : {},
  );
  sockets.push(ws);
  let opened = false;
  ws.on('open', () => {
    opened = true;
  });
  const status = await new Promise<number>((resolve) => {
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.once('error', () => resolve(-1));
  });
  expect(opened).toBe(false);
  return status;
}

describe('web server (in process)', () => {
  it('pages and sockets need a token; a wrong one is answered late, and later ones later still', async () => {
    const c = new FakeConsole('vm0', 'console');
    ({ server } = await startServer([c]));
    const base = server.baseUrl;
    expect((await fetch(`${base}/`)).status).toBe(401);
    expect((await fetch(`${base}/vm/vm0/port/console`)).status).toBe(401);
    expect((await fetch(`${base}/vm/vm0/port/console?token=${TOKENS.readWrite}`)).status).toBe(200);
    expect((await fetch(`${base}/vm/vm0/port/console?token=${TOKENS.readOnly}`)).status).toBe(200);
    expect((await fetch(`${base}/assets/xterm.mjs`)).status).toBe(200); // library code: no secret
    let t = Date.now();
    expect((await fetch(`${base}/vm/vm0/port/console?token=${TOKENS.readWrite}x`)).status).toBe(401);
    const third = Date.now() - t; // the 3rd bad request from 127.0.0.1 (2 without a token before)
    expect(third).toBeGreaterThanOrEqual(900); // 250 ms * 2^2
    t = Date.now();
    expect(await refusedUpgrade(base, 'nope-nope-nope-nope')).toBe(401);
    expect(Date.now() - t).toBeGreaterThanOrEqual(1900); // the 4th: 2 s
    // A good token is never slowed down by someone else's guesses from the same address.
    t = Date.now();
    expect((await fetch(`${base}/?token=${TOKENS.readOnly}`)).status).toBe(200);
    expect(Date.now() - t).toBeLessThan(500);
    expect(c.hub.stats().members.map((m) => m.id)).toEqual(['web:screen']);
  }, 20_000);

  it('a WebSocket upgrade without a token or from a foreign Origin is refused', async () => {
    const c = new FakeConsole('vm0', 'console');
    ({ server } = await startServer([c]));
    const base = server.baseUrl;
    expect(await refusedUpgrade(base, undefined)).toBe(401);
    expect(await refusedUpgrade(base, TOKENS.readWrite, 'http://evil.example')).toBe(403);
    expect(await refusedUpgrade(base, TOKENS.readWrite, base.replace('http:', 'https:'))).toBe(403);
    const ok = await viewer(base, TOKENS.readWrite, { origin: base });
    expect(ok.json[0]).toMatchObject({ type: 'hello', role: 'read-write', vm: 'vm0', port: 'console' });
  }, 20_000);

  it('a read-only viewer sees the output, and what it sends reaches nothing (bypassing the page)', async () => {
    const c = new FakeConsole('vm0', 'console');
    ({ server } = await startServer([c]));
    const ro = await viewer(server.baseUrl, TOKENS.readOnly);
    const rw = await viewer(server.baseUrl, TOKENS.readWrite);
    expect(ro.json[0]).toMatchObject({ type: 'hello', role: 'read-only' });
    ro.ws.send(Buffer.from('rm -rf /\r'));
    ro.ws.send(JSON.stringify({ type: 'resize', cols: 33, rows: 11 }));
    rw.ws.send(Buffer.from('ls\r'));
    await until(() => c.typed === 'ls\r', "the writer's keys");
    await new Promise((r) => setTimeout(r, 100));
    expect(c.typed).toBe('ls\r');
    expect(c.resizes).toEqual([]);
    c.hub.output(Buffer.from('output for all\r\n'));
    await until(() => ro.text().includes('output for all') && rw.text().includes('output for all'), 'output on both');
    const members = c.hub.stats().members;
    expect(members.find((m) => m.id === ro.json[0]!.viewer)).toMatchObject({
      input: false,
      bytesIn: 0,
      policy: 'drop',
    });
    expect(members.find((m) => m.id === rw.json[0]!.viewer)).toMatchObject({ input: true, bytesIn: 3, policy: 'drop' });
    expect(server.memberInfo(ro.json[0]!.viewer as string)).toMatchObject({
      role: 'read-only',
      remote: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
    });
  });

  it('a late viewer first gets the screen and scrollback, then the live stream with nothing doubled', async () => {
    const c = new FakeConsole('vm0', 'console');
    ({ server } = await startServer([c], { scrollback: 500 }));
    for (let i = 1; i <= 200; i++) c.hub.output(Buffer.from(`line ${i}\r\n`));
    const v = await viewer(server.baseUrl, TOKENS.readOnly);
    const screen = v.json.find((m) => m.type === 'screen')!.data as string;
    for (const i of [1, 100, 177, 200]) expect(screen).toContain(`line ${i}\r`);
    c.hub.output(Buffer.from('line 201\r\n'));
    await until(() => v.text().includes('line 201'), 'the live line');
    expect(v.text()).toBe('line 201\r\n');
  });

  it('viewers joining during a stream of output see exactly what a terminal fed everything shows: no gap, nothing doubled', async () => {
    const xh = (await import('@xterm/headless')).default;
    const term = () => new xh.Terminal({ cols: 80, rows: 24, scrollback: 200, allowProposedApi: true });
    /** Scrollback and screen as text, once everything written is parsed. */
    const lines = async (t: InstanceType<typeof xh.Terminal>): Promise<string> => {
      await new Promise<void>((r) => t.write('', r));
      const out: string[] = [];
      for (let y = 0; y < t.buffer.active.length; y++) out.push(t.buffer.active.getLine(y)!.translateToString(true));
      return out.join('\n');
    };
    const c = new FakeConsole('vm0', 'console');
    ({ server } = await startServer([c], { scrollback: 200 }));
    const reference = term();
    let i = 0;
    const timer = setInterval(() => {
      for (let k = 0; k < 2; k++, i++) {
        const chunk = `\x1b[3${i % 8}mline ${i}\x1b[0m ${'.'.repeat(i % 50)}\r\n`;
        reference.write(chunk);
        c.hub.output(Buffer.from(chunk));
      }
    }, 5);
    const viewers: Client[] = [];
    try {
      for (let k = 0; k < 3; k++) {
        await new Promise((r) => setTimeout(r, 50));
        viewers.push(await viewer(server.baseUrl, TOKENS.readOnly));
      }
    } finally {
      clearInterval(timer);
    }
    reference.write('the end\r\n');
    c.hub.output(Buffer.from('the end\r\n'));
    await until(() => viewers.every((v) => v.text().includes('the end')), 'every viewer to have the last line');
    const want = await lines(reference);
    expect(want).toContain('line 0 ');
    for (const v of viewers) {
      const t = term();
      t.write(v.json.find((m) => m.type === 'screen')!.data as string);
      for (const b of v.bin) t.write(b);
      expect(await lines(t)).toBe(want);
    }
  });

  it('the guest size follows the most recently active writer; a read-only viewer never resizes', async () => {
    const c = new FakeConsole('vm0', 'console');
    ({ server } = await startServer([c]));
    const a = await viewer(server.baseUrl, TOKENS.readWrite);
    const b = await viewer(server.baseUrl, TOKENS.readWrite);
    const ro = await viewer(server.baseUrl, TOKENS.readOnly);
    a.ws.send(JSON.stringify({ type: 'resize', cols: 100, rows: 30 }));
    await until(() => c.resizes.length === 1, 'a resize');
    expect(c.resizes).toEqual([[100, 30]]);
    await until(() => ro.json.some((m) => m.type === 'size' && m.cols === 100), 'the new size announced');
    b.ws.send(JSON.stringify({ type: 'resize', cols: 120, rows: 40 }));
    await until(() => c.resizes.length === 2, "b's resize");
    a.ws.send(Buffer.from('x')); // a types: its size comes back
    await until(() => c.resizes.length === 3, 'a active again');
    ro.ws.send(JSON.stringify({ type: 'resize', cols: 20, rows: 5 }));
    ro.ws.send(Buffer.from('y'));
    await new Promise((r) => setTimeout(r, 150));
    expect(c.resizes).toEqual([
      [100, 30],
      [120, 40],
      [100, 30],
    ]);
    expect(
      server
        .info()
        .viewers.filter((v) => v.active)
        .map((v) => v.id),
    ).toEqual([a.json[0]!.viewer]);
  });

  it('a viewer that stops reading loses its own oldest output (counted); the guest and the other viewer lose nothing', async () => {
    const c = new FakeConsole('vm0', 'console');
    ({ server } = await startServer([c], { buffer: 64 * 1024 }));
    const slow = await viewer(server.baseUrl, TOKENS.readOnly);
    const fast = await viewer(server.baseUrl, TOKENS.readOnly);
    (slow.ws as unknown as { _socket: import('node:net').Socket })._socket.pause();
    const chunk = Buffer.alloc(16 * 1024, 'x');
    const slowMember = () => c.hub.stats().members.find((x) => x.id === slow.json[0]!.viewer)!;
    // Output until the slow viewer's member drops: first the kernel's socket buffers fill
    // (their size depends on the kernel's TCP autotuning and on Node's stream marks, 16 KiB
    // on Node 20, 64 KiB from 22 on), then the member's own 64 KiB. 64 MiB at most.
    let total = 0;
    while (total < 64 * 1024 * 1024 && slowMember().drops === 0) {
      c.hub.output(chunk); // a console hub never refuses output
      total += chunk.length;
      await new Promise((r) => setImmediate(r));
    }
    await until(() => fast.bin.reduce((s, b) => s + b.length, 0) >= total, 'the fast viewer to get everything', 20_000);
    const m = slowMember();
    expect(m.drops).toBeGreaterThan(0);
    expect(m.lag).toBeLessThanOrEqual(64 * 1024);
    expect(c.hub.stats().members.find((x) => x.id === fast.json[0]!.viewer)!.drops).toBe(0);
  }, 30_000);

  it("web-disconnect ends one viewer with the operator's close code; the other stays", async () => {
    const c = new FakeConsole('vm0', 'console');
    ({ server } = await startServer([c]));
    const a = await viewer(server.baseUrl, TOKENS.readWrite);
    const b = await viewer(server.baseUrl, TOKENS.readWrite);
    expect(
      server
        .info()
        .viewers.map((v) => v.id)
        .sort(),
    ).toEqual([a.json[0]!.viewer, b.json[0]!.viewer].sort());
    server.disconnect(a.json[0]!.viewer as string);
    await until(() => a.closed !== undefined, 'the close');
    expect(a.closed!.code).toBe(4001);
    expect(() => server!.disconnect('web:999')).toThrow(/no web viewer 'web:999'/);
    expect(c.hub.stats().members.map((m) => m.id)).toEqual(['web:screen', b.json[0]!.viewer]);
    expect(server.info().ports[0]).toMatchObject({
      vm: 'vm0',
      port: 'console',
      viewers: 1,
      'read-write': expect.stringContaining(`token=${TOKENS.readWrite}`),
    });
  });

  it('with a certificate it serves HTTPS and WSS only, and the Origin must be https', async (ctx) => {
    const dir = mkdtempSync(join(tmpdir(), 'vhc-web-tls-'));
    try {
      const r = spawnSync('openssl', [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        join(dir, 'k.pem'),
        '-out',
        join(dir, 'c.pem'),
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ]);
      if (r.error || r.status !== 0) {
        ctx.skip(`openssl could not make a certificate (${r.error?.message ?? r.stderr.toString()})`);
      }
      const ca = readFileSync(join(dir, 'c.pem'));
      const c = new FakeConsole('vm0', 'console');
      ({ server } = await startServer([c], { cert: join(dir, 'c.pem'), key: join(dir, 'k.pem') }));
      expect(server.baseUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const get = (path: string) =>
        new Promise<number>((resolve, reject) =>
          https
            .get(`${server!.baseUrl}${path}`, { ca }, (res) => {
              res.resume();
              resolve(res.statusCode ?? 0);
            })
            .on('error', reject),
        );
      expect(await get(`/vm/vm0/port/console?token=${TOKENS.readWrite}`)).toBe(200);
      expect(await get('/vm/vm0/port/console')).toBe(401);
      // Plain HTTP on the same port gets nowhere.
      await expect(fetch(`${server.baseUrl.replace('https:', 'http:')}/`)).rejects.toThrow();
      const wss = (origin?: string) =>
        new WebSocket(`${server!.baseUrl.replace('https:', 'wss:')}/ws/vm/vm0/port/console?token=${TOKENS.readOnly}`, {
          ca,
          ...(origin && { origin }),
        });
      const ok = wss(server.baseUrl);
      sockets.push(ok);
      await new Promise((res, rej) => {
        ok.once('open', res);
        ok.once('error', rej);
      });
      const bad = wss(server.baseUrl.replace('https:', 'http:'));
      sockets.push(bad);
      expect(
        await new Promise((res) => {
          bad.once('unexpected-response', (_q, rs) => res(rs.statusCode));
          bad.once('open', () => res(101));
        }),
      ).toBe(403);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('on loopback, a Host that is not a loopback name is refused (DNS rebinding), even with a token', async () => {
    const c = new FakeConsole('vm0', 'console');
    ({ server } = await startServer([c]));
    const port = new URL(server.baseUrl).port;
    const status = (host: string) =>
      new Promise<number>((resolve, reject) =>
        http
          .get({ host: '127.0.0.1', port, path: `/?token=${TOKENS.readWrite}`, headers: { host } }, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          })
          .on('error', reject),
      );
    expect(await status(`evil.example:${port}`)).toBe(403);
    expect(await status(`localhost:${port}`)).toBe(200);
    expect(await status(`127.0.0.1:${port}`)).toBe(200);
    const ws = new WebSocket(
      `${server.baseUrl.replace(/^http/, 'ws')}/ws/vm/vm0/port/console?token=${TOKENS.readWrite}`,
      { headers: { host: `evil.example:${port}` }, origin: `http://evil.example:${port}` },
    );
    sockets.push(ws);
    expect(
      await new Promise((res) => {
        ws.once('unexpected-response', (_q, r) => res(r.statusCode));
        ws.once('open', () => res(101));
      }),
    ).toBe(403);
  });

  it('generic ports are served only with --web-generic: a viewer then holds the port open on the host side, no screen, no resize', async () => {
    const con = new FakeConsole('vm0', 'console');
    const gen = new FakeConsole('vm0', 'agent', false);
    ({ server } = await startServer([con, gen]));
    expect(server.info().ports.map((p) => p.port)).toEqual(['console']);
    expect((await fetch(`${server.baseUrl}/vm/vm0/port/agent?token=${TOKENS.readWrite}`)).status).toBe(404);
    await server.close();
    ({ server } = await startServer([con, gen], { generic: true }));
    expect(server.info().ports.map((p) => p.port)).toEqual(['console', 'agent']);
    expect(gen.hub.hostOpen).toBe(false);
    const v = await viewer(server.baseUrl, TOKENS.readWrite, { port: 'agent' });
    expect(v.json[0]).toMatchObject({ type: 'hello', console: false });
    expect(v.json.find((m) => m.type === 'screen')).toMatchObject({ data: '' });
    expect(gen.hub.hostOpen).toBe(true); // the guest sees the port open while someone watches
    expect(gen.hub.stats().members.map((m) => m.id)).toEqual([v.json[0]!.viewer]); // no screen member
    gen.hub.output(Buffer.from('{"return": {}}\n'));
    await until(() => v.text().includes('"return"'), 'the output');
    v.ws.send(Buffer.from('{"execute": "guest-ping"}\n'));
    v.ws.send(JSON.stringify({ type: 'resize', cols: 50, rows: 10 }));
    await until(() => gen.typed.includes('guest-ping'), 'the input');
    await new Promise((r) => setTimeout(r, 100));
    expect(gen.resizes).toEqual([]);
    v.ws.close();
    await until(() => !gen.hub.hostOpen, 'the port closed again on the host side');
  });

  it('the index lists every port with its state, and read-write links only for the read-write token', async () => {
    const c = new FakeConsole('vm0', 'console');
    ({ server } = await startServer([c]));
    const rw = await (await fetch(`${server.baseUrl}/?token=${TOKENS.readWrite}`)).text();
    expect(rw).toContain(`/vm/vm0/port/console?token=${TOKENS.readWrite}`);
    expect(rw).toContain(`/vm/vm0/port/console?token=${TOKENS.readOnly}`);
    expect(rw).toMatch(/<td class="open">open<\/td>/);
    const ro = await (await fetch(`${server.baseUrl}/?token=${TOKENS.readOnly}`)).text();
    expect(ro).not.toContain(TOKENS.readWrite);
    expect(ro).toContain(`/vm/vm0/port/console?token=${TOKENS.readOnly}`);
    expect((await fetch(`${server.baseUrl}/vm/vm0/port/nope?token=${TOKENS.readOnly}`)).status).toBe(404);
    // Malformed escapes are a 404, not a crash; the server carries on.
    expect((await fetch(`${server.baseUrl}/vm/%E0%A4%A/port/%?token=${TOKENS.readOnly}`)).status).toBe(404);
    const ws = new WebSocket(`${server.baseUrl.replace(/^http/, 'ws')}/ws/vm/%E0%A4%A/port/%?token=${TOKENS.readOnly}`);
    sockets.push(ws);
    expect(
      await new Promise((res) => {
        ws.once('unexpected-response', (_q, r) => res(r.statusCode));
        ws.once('open', () => res(101));
      }),
    ).toBe(404);
    expect((await fetch(`${server.baseUrl}/?token=${TOKENS.readOnly}`)).status).toBe(200);
  });
});
