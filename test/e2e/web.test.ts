// The web console with a real guest: a shell on hvc0 in chromium, the page's window size as
// `stty size` on hvc0. With VHC_SCREENSHOT=FILE it also saves a screenshot of the page
// (`npm run screenshot` writes docs/web-console.png that way).
import { expect, test } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { chromiumMissing, launchChromium } from '../helpers/chromium.js';
import { requireCommand, useE2E } from './harness.js';

const e2e = useE2E();

const vhc = (p: Page) =>
  p.evaluate(() => {
    const v = (window as unknown as { vhc: { text(): string; term: { cols: number; rows: number } } }).vhc;
    return { text: v.text(), cols: v.term.cols, rows: v.term.rows };
  });

test("web console: the guest's shell in the browser; the window's size is stty size on hvc0", async () => {
  const e = e2e();
  const missing = chromiumMissing();
  if (missing) e.skip(missing);
  const d = await e.startDaemon({ control: true, extraArgs: ['--web', '127.0.0.1:0'] });
  const c = await e.control(d);
  const web = await requireCommand(e, c, 'query-web');
  const url = (web.return as { ports: { 'read-write': string }[] }).ports[0]!['read-write'];
  const g = await e.boot({ daemon: d });
  await g.ok('e2e_hvc_shell');

  let browser: Browser | undefined;
  try {
    browser = await launchChromium();
    const page = await browser.newPage({ viewport: { width: 960, height: 560 } });
    await page.goto(url);
    await page.waitForFunction(() => (window as unknown as { vhc?: { open: boolean } }).vhc?.open === true);
    // The page's window decides the size; the guest's tty layer reports it.
    await page.waitForFunction(() => (window as unknown as { vhc: { term: { cols: number } } }).vhc.term.cols !== 100);
    const { cols, rows } = await vhc(page);
    let size = '';
    for (let i = 0; i < 40 && size !== `size ${rows} ${cols}`; i++) {
      if (i) await new Promise((r) => setTimeout(r, 250));
      size = (await g.ok('e2e_size'))[0] ?? '';
    }
    expect(size).toBe(`size ${rows} ${cols}`);

    // Typed in the page, run by the guest's shell, shown in the page.
    await page.click('#terminal');
    await page.keyboard.type('echo web-$((6*7)); stty size\r');
    await page.waitForFunction(
      (x) => (window as unknown as { vhc: { text(): string } }).vhc.text().includes(x),
      `${rows} ${cols}`,
      { timeout: 20_000 },
    );
    expect((await vhc(page)).text).toContain('web-42');

    if (process.env.VHC_SCREENSHOT) {
      await page.keyboard.type('uname -sr; ls /dev/hvc0; echo "$((6*7)) viewers welcome"\r');
      await page.waitForFunction(
        () => (window as unknown as { vhc: { text(): string } }).vhc.text().includes('42 viewers welcome'),
        undefined,
        { timeout: 20_000 },
      );
      await page.screenshot({ path: process.env.VHC_SCREENSHOT });
      console.warn(`screenshot written to ${process.env.VHC_SCREENSHOT}`);
    }
  } finally {
    await browser?.close();
  }
});
