// Issue 11 in a real browser: Debian's chromium driven by playwright-core, against the real
// daemon (`--web 127.0.0.1:0`) with the test front-end as the guest. No browser is
// downloaded: without /usr/bin/chromium (or VHC_CHROMIUM) these tests are skipped, and say so.
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import WebSocket from 'ws';
import type { ConsolePort } from '../frontend/index.js';
import type { QmpClient } from '../helpers/qmp.js';
import { Rig, settled, until } from '../daemon/util.js';
import { chromiumMissing, launchChromium } from '../helpers/chromium.js';

const skipReason = chromiumMissing();
if (skipReason) console.warn(`test/web/browser.test.ts skipped: ${skipReason}`);

let browser: Browser | undefined;
let rig: Rig | undefined;

beforeAll(async () => {
  if (skipReason) return;
  browser = await launchChromium();
}, 60_000);
afterAll(async () => {
  await browser?.close();
});
afterEach(async () => {
  for (const c of browser?.contexts() ?? []) await c.close();
  await rig?.dispose();
  rig = undefined;
});

interface WebPortUrls {
  vm: string;
  port: string;
  'read-write': string;
  'read-only': string;
}
interface Member {
  chardev: string;
  'bytes-out': number;
  drops: number;
  remote?: string;
  role?: string;
}

/** The daemon with a console port on a unix socket chardev, the web console, and the guest driver up. */
async function start(extra: string[] = []) {
  rig = await Rig.start((dir) => {
    return {
      args: [
        '--socket',
        `${dir}/vm.sock`,
        '--max-ports',
        '1',
        '--control',
        `${dir}/ctl.sock`,
        '--chardev',
        `socket,id=sock,path=${dir}/con.sock,server=on,wait=off`,
        '--device',
        'virtconsole,id=console,chardev=sock',
        '--web',
        '127.0.0.1:0',
        ...extra,
      ],
      wait: [`${dir}/vm.sock`, `${dir}/ctl.sock`],
    };
  });
  const r = rig;
  const q = await r.qmp();
  const web = (await q.execute('query-web')) as { url: string; ports: WebPortUrls[] };
  const d = await r.driver({ numQueues: 4 });
  await d.waitPorts(1, settled);
  return { r, q, web, urls: web.ports[0]!, guest: d.port(0) };
}

async function members(q: QmpClient): Promise<Member[]> {
  const ports = (await q.execute('query-ports')) as { id: string; members: Member[] }[];
  return ports.find((p) => p.id === 'console')!.members;
}

async function open(url: string, viewport = { width: 900, height: 600 }): Promise<Page> {
  const ctx = await browser!.newContext({ viewport });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => {
    throw e;
  });
  await page.goto(url);
  await page.waitForFunction(() => (window as unknown as { vhc?: { open: boolean } }).vhc?.open === true);
  return page;
}

const text = (p: Page) => p.evaluate(() => (window as unknown as { vhc: { text(): string } }).vhc.text());
const waitText = (p: Page, s: string, timeout = 15_000) =>
  p.waitForFunction((x) => (window as unknown as { vhc: { text(): string } }).vhc.text().includes(x), s, { timeout });
const termSize = (p: Page) =>
  p.evaluate(() => {
    const t = (window as unknown as { vhc: { term: { cols: number; rows: number } } }).vhc.term;
    return [t.cols, t.rows] as [number, number];
  });

async function typeIn(p: Page, s: string): Promise<void> {
  await p.click('#terminal');
  await p.keyboard.type(s);
}

/** Waits until `n` bytes reached the guest; returns them. */
async function guestGot(guest: ConsolePort, n: number): Promise<string> {
  return (await guest.read(n, 10_000)).toString();
}

describe.skipIf(skipReason !== undefined)(
  `web console in a browser${skipReason ? ` (skipped: ${skipReason})` : ''}`,
  () => {
    it("the guest's output appears in the page; keys typed in the page reach the guest; the page shows port, VM, guest state, role", async () => {
      const { guest, urls } = await start();
      const page = await open(urls['read-write']);
      await guest.write(Buffer.from('Debian GNU/Linux 13 guest hvc0\r\n\r\nguest login: '));
      await waitText(page, 'guest login:');
      await typeIn(page, 'root\r');
      expect(await guestGot(guest, 5)).toBe('root\r');
      // A paste larger than one WebSocket message may be (64 KiB) arrives whole.
      await page.evaluate(() =>
        (window as unknown as { vhc: { term: { paste(s: string): void } } }).vhc.term.paste('p'.repeat(100_000)),
      );
      expect(await guestGot(guest, 100_000)).toBe('p'.repeat(100_000));
      const header = await page.textContent('header');
      expect(header).toContain('console');
      expect(header).toContain('vm0');
      expect(header).toContain('guest: open');
      expect(header).toContain('read-write');
    });

    it('two pages show the same output; typing in a read-only page reaches nothing, also at the WebSocket level', async () => {
      const { q, guest, urls } = await start();
      const rw = await open(urls['read-write']);
      const ro = await open(urls['read-only']);
      expect(await ro.textContent('#role')).toBe('read-only');
      for (let i = 0; i < 30; i++) await guest.write(Buffer.from(`\x1b[1mline ${i}\x1b[0m of the boot\r\n`));
      await waitText(rw, 'line 29 of');
      await waitText(ro, 'line 29 of');
      expect(await text(ro)).toBe(await text(rw));

      await typeIn(ro, 'typed in the read-only page\r');
      // The same token, bypassing the page: a WebSocket of our own sending keys.
      const ws = new WebSocket(urls['read-only'].replace(/^http/, 'ws').replace('/vm/', '/ws/vm/'));
      await new Promise((res, rej) => {
        ws.once('open', res);
        ws.once('error', rej);
      });
      ws.send(Buffer.from('sent on a read-only socket\r'));
      ws.send(JSON.stringify({ type: 'resize', cols: 31, rows: 7 }));
      await typeIn(rw, 'ok\r');
      expect(await guestGot(guest, 3)).toBe('ok\r');
      await new Promise((res) => setTimeout(res, 200));
      expect(guest.bufferedBytes).toBe(0);
      expect(guest.resizes.some(([c, r]) => c === 31 && r === 7)).toBe(false);

      // Each browser (and our socket) is a hub member, shown with its address and role.
      const web = (await members(q)).filter((m) => m.role === 'read-write' || m.role === 'read-only');
      expect(web.map((m) => m.role).sort()).toEqual(['read-only', 'read-only', 'read-write']);
      for (const m of web) expect(m.remote).toMatch(/^127\.0\.0\.1:\d+$/);
      ws.close();
    });

    it('a page opened after 200 lines of output shows them', async () => {
      const { guest, urls } = await start();
      let out = '';
      for (let i = 1; i <= 200; i++) out += `boot message ${i}\r\n`;
      await guest.write(Buffer.from(out));
      const before = await open(urls['read-only']); // to know the daemon has it all
      await waitText(before, 'boot message 200');
      const late = await open(urls['read-only']);
      await waitText(late, 'boot message 200');
      const t = await text(late);
      for (let i = 1; i <= 200; i++) expect(t).toContain(`boot message ${i}\n`);
    });

    it('a page with a wrong or no token is refused with 401 and opens no WebSocket', async () => {
      const { urls } = await start();
      const ctx = await browser!.newContext();
      const page = await ctx.newPage();
      const sockets: string[] = [];
      page.on('websocket', (w) => sockets.push(w.url()));
      const noToken = urls['read-write'].replace(/\?token=.*$/, '');
      expect((await page.goto(noToken))!.status()).toBe(401);
      expect((await page.goto(`${urls['read-write']}x`))!.status()).toBe(401);
      await new Promise((res) => setTimeout(res, 300));
      expect(sockets).toEqual([]);
      // The socket itself refuses too.
      const status = await new Promise<number>((res) => {
        const ws = new WebSocket(noToken.replace(/^http/, 'ws').replace('/vm/', '/ws/vm/'));
        ws.once('unexpected-response', (_q, r) => res(r.statusCode ?? 0));
        ws.once('open', () => res(101));
      });
      expect(status).toBe(401);
    }, 30_000);

    it('a frozen page stalls neither the guest nor the other page; its drops are counted', async () => {
      const { q, guest, urls } = await start();
      const frozen = await open(urls['read-only']);
      const live = await open(urls['read-only']);
      const id = (p: Page) => p.evaluate(() => (window as unknown as { vhc: { viewer: string } }).vhc.viewer);
      const [frozenId, liveId] = [await id(frozen), await id(live)];
      const member = async (mid: string) => (await members(q)).find((m) => m.chardev === mid)!;
      const cdp = await frozen.context().newCDPSession(frozen);
      await cdp.send('Page.setWebLifecycleState', { state: 'frozen' });
      // Output until the frozen page's member has dropped some (the kernel's and the browser's
      // buffers take several MiB first; at most 64 MiB), then a marker. The test paces itself
      // on the live page (a real browser parses slower than the test front-end writes, and
      // would drop too); the frozen page holds nobody back: if it did, a write would hang.
      const chunk = Buffer.from(`${'x'.repeat(1000)}\r\n`.repeat(64)); // 64 KiB
      let n = 0;
      const t0 = Date.now();
      while (n < 1024) {
        await guest.write(chunk);
        n++;
        if (n % 4 !== 0) continue;
        if ((await member(frozenId)).drops > 0) break;
        const written = n * chunk.length;
        const end = Date.now() + 30_000;
        while ((await member(liveId))['bytes-out'] < written - 64 * 1024) {
          if (Date.now() > end) throw new Error(`the live page is stuck: ${JSON.stringify(await member(liveId))}`);
          await new Promise((res) => setTimeout(res, 10));
        }
      }
      await guest.write(Buffer.from('END OF FLOOD\r\n'));
      const guestMs = Date.now() - t0;
      await waitText(live, 'END OF FLOOD', 60_000);
      const [f, l] = [await member(frozenId), await member(liveId)];
      expect(f.drops, JSON.stringify(f)).toBeGreaterThan(0);
      expect(l.drops).toBe(0);
      expect(l['bytes-out']).toBe(n * chunk.length + 14); // the live page lost nothing
      console.log(
        `${(n * chunk.length) / 2 ** 20} MiB written by the guest in ${guestMs} ms; the frozen page dropped ${f.drops} bytes`,
      );
      // Thawed, the page carries on with new output.
      await cdp.send('Page.setWebLifecycleState', { state: 'active' });
      await guest.write(Buffer.from('after the thaw\r\n'));
      await waitText(frozen, 'after the thaw', 30_000);
    }, 120_000);

    it("resizing a writer's window resizes the guest's console (RESIZE); a read-only page's window does not", async () => {
      const { guest, urls } = await start();
      const ro = await open(urls['read-only'], { width: 500, height: 300 });
      const page = await open(urls['read-write'], { width: 800, height: 500 });
      // The writer's window decides: the guest is told, and the page's terminal takes the size.
      await until(() => guest.resizes.length >= 1, 'a RESIZE after the writer connected');
      await page.waitForFunction(() => {
        const t = (window as unknown as { vhc: { term: { cols: number } } }).vhc.term;
        return t.cols !== 80;
      });
      const first = await termSize(page);
      await until(
        () => JSON.stringify(guest.resizes.at(-1)) === JSON.stringify(first),
        `the guest at the page's size ${first.join('x')}`,
      );
      await page.setViewportSize({ width: 1200, height: 800 });
      await until(
        () => guest.resizes.some(([c, r]) => c > first[0] && r > first[1]),
        'a larger RESIZE after the window grew',
      );
      const second = guest.resizes.at(-1)!;
      await page.waitForFunction(
        (c) => (window as unknown as { vhc: { term: { cols: number } } }).vhc.term.cols === c,
        second[0],
      );
      // Every viewer's terminal follows the guest's size.
      await ro.waitForFunction(
        (c) => (window as unknown as { vhc: { term: { cols: number } } }).vhc.term.cols === c,
        second[0],
      );
      const count = guest.resizes.length;
      await ro.setViewportSize({ width: 400, height: 200 });
      await new Promise((res) => setTimeout(res, 400));
      expect(guest.resizes.length).toBe(count);
    });

    it('the page reconnects by itself after the daemon restarts (same port, tokens from a file); web-disconnect ends a page for good', async () => {
      const port = await freePort();
      const tokens = 'read-write=rw-0123456789abcdefgh\nread-only=ro-0123456789abcdefgh\n';
      const startFixed = async () => {
        rig = await Rig.start((dir) => {
          writeFileSync(`${dir}/tokens`, tokens, { mode: 0o600 });
          return {
            args: [
              '--socket',
              `${dir}/vm.sock`,
              '--max-ports',
              '1',
              '--control',
              `${dir}/ctl.sock`,
              '--chardev',
              `socket,id=sock,path=${dir}/con.sock,server=on,wait=off`,
              '--device',
              'virtconsole,id=console,chardev=sock',
              '--web',
              `127.0.0.1:${port}`,
              '--web-token-file',
              `${dir}/tokens`,
            ],
            wait: [`${dir}/vm.sock`, `${dir}/ctl.sock`],
          };
        });
        const d = await rig.driver({ numQueues: 4 });
        await d.waitPorts(1, settled);
        return d.port(0);
      };
      let guest = await startFixed();
      const url = `http://127.0.0.1:${port}/vm/vm0/port/console?token=rw-0123456789abcdefgh`;
      expect(rig!.daemon.stdout).toContain(`web console for VM 'vm0' port 'console': ${url}\n`);
      const page = await open(url);
      await guest.write(Buffer.from('first life\r\n'));
      await waitText(page, 'first life');

      // The daemon goes away and comes back on the same port with the same tokens.
      await rig!.dispose();
      rig = undefined;
      await page.waitForFunction(() => !(window as unknown as { vhc: { open: boolean } }).vhc.open);
      guest = await startFixed();
      await page.waitForFunction(() => (window as unknown as { vhc: { open: boolean } }).vhc.open, undefined, {
        timeout: 20_000,
      });
      await guest.write(Buffer.from('second life\r\n'));
      await waitText(page, 'second life');

      // The operator ends this viewer (a take-over): the page says so and stays away.
      const q = await rig!.qmp();
      const info = (await q.execute('query-web')) as { viewers: { id: string }[] };
      expect(info.viewers).toHaveLength(1);
      await q.execute('web-disconnect', { id: info.viewers[0]!.id });
      await page.waitForFunction(() => document.querySelector('#conn')?.textContent === 'disconnected by the operator');
      await new Promise((res) => setTimeout(res, 1500));
      expect(((await q.execute('query-web')) as { viewers: unknown[] }).viewers).toHaveLength(0);
    }, 60_000);
  },
);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address() as net.AddressInfo;
      s.close(() => resolve(a.port));
    });
  });
}
