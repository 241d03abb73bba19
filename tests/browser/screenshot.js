// docs/console.png: the management table as a person sees it, 1280×800 — two Dropbox folders
// connected through consent and the picker, then a new file in one whose download arrives
// damaged (injected at the sandbox) and Refresh Items, so the failed badge shows.
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
    for (const folder of ['Campaign 2026', 'Brand Assets']) {
      await page.click('#add');
      await page.click('#allow');
      await page.locator('#picker[open]').waitFor();
      await page.click(`#picker-list button[aria-label="Open ${folder}"]`);
      await page.locator('#picker-crumbs [aria-current]', { hasText: folder }).waitFor();
      await page.click('#picker-select-here');
      await page.click('#picker-confirm');
      await page.locator('#picker').waitFor({ state: 'hidden' });
      await page.locator('#rows tr', { hasText: folder }).locator('.count').waitFor({ timeout: 30_000 });
    }
    // A new file whose download arrives damaged (every retry of the run too), then Refresh Items.
    const api = await H.apiAs(server, 'Ana');
    const list = (await api('GET', '/v1/connections?provider=dropbox')).body.items;
    const brand = list.find((c) => c.folder_name === 'Brand Assets');
    const account = (await api('GET', `/v1/connections/${brand.id}`)).body.account.id;
    const dropbox = (op, body) => H.control(server.sandboxUrl, 'dropbox', op, body);
    await dropbox('add_file', { account_id: account, path: '/Brand Assets/cover.jpg', content: { generated: { size: 120000, seed: 7 } } });
    await dropbox('inject', { endpoint: 'Download', fault: 'corrupt_same_length', times: 5 });
    await page.getByRole('button', { name: 'Refresh Items of Brand Assets' }).click();
    await page.locator('.badge-failed').waitFor({ timeout: 30_000 });
    await page.locator('#rows .progress').waitFor({ state: 'detached', timeout: 30_000 });
    await dropbox('clear_faults');
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
