// docs/console.png: the management table as a person sees it, 1280×800 — two Dropbox folders
// connected through consent and the picker, one file of the first failing (a damaged download
// injected at the sandbox), so the failed badge shows.
// Usage: node tests/browser/screenshot.js <extconn-local binary> <out.png>
'use strict';
const H = require('./harness');

async function main() {
  const [bin, out] = process.argv.slice(2);
  if (!bin || !out) throw new Error('usage: node tests/browser/screenshot.js <extconn-local> <out.png>');
  const server = await H.startServer(bin);
  const browser = await H.launch();
  try {
    const context = await H.newContext(browser, { sandboxUrl: server.sandboxUrl });
    const page = await context.newPage();
    await page.goto(server.consoleUrl);
    await page.locator('#manage').waitFor();
    await page.selectOption('#service', 'dropbox');
    for (const [folder, fault] of [['Campaign 2026', false], ['Brand Assets', true]]) {
      await page.click('#add');
      await page.click('#allow');
      await page.locator('#picker[open]').waitFor();
      await page.click(`#picker-list button[aria-label="Open ${folder}"]`);
      await page.locator('#picker-crumbs [aria-current]', { hasText: folder }).waitFor();
      await page.click('#picker-select-here');
      if (fault) await H.control(server.sandboxUrl, 'dropbox', 'inject', { endpoint: 'Download', fault: 'corrupt_same_length', times: 1 });
      await page.click('#picker-confirm');
      await page.locator('#picker').waitFor({ state: 'hidden' });
      await page.locator('#rows tr', { hasText: folder }).locator('.count').waitFor({ timeout: 30_000 });
    }
    await page.locator('.badge-failed').waitFor();
    // Only the latest confirmation stays on screen.
    const msgs = page.locator('#messages .msg');
    while ((await msgs.count()) > 1) await msgs.first().getByRole('button', { name: 'Dismiss message' }).click();
    await page.mouse.move(0, 0);
    await page.screenshot({ path: out });
    context.check();
  } finally {
    await browser.close();
    await server.stop();
  }
}

main().catch((e) => { console.error('screenshot FAILED: ' + (e.stack || e)); process.exit(1); });
