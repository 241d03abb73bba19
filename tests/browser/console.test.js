// The External Connections page in headless Chromium, against a fresh `extconn-local serve`:
// what a person sees and does, scenario by scenario (they build on each other: one server,
// one Dropbox account at the sandbox). The sandbox is changed from node through its control
// API (files added and deleted, faults injected, tokens revoked), never from the page.
//
// Usage: node tests/browser/console.test.js <path to the extconn-local binary>
// Screenshots of the main states go to target/browser-artifacts/.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const H = require('./harness');

const bin = process.argv[2] || process.env.EXTCONN_LOCAL;
if (!bin) {
  console.error('usage: node tests/browser/console.test.js <extconn-local binary>');
  process.exit(2);
}

let server;
let dam;
let browser;
let ana; // Ana's browser context: one person, several tabs
let page; // her main tab
let api; // Ana's API from node, to check what the page claims
let account; // the sandbox's Dropbox account the consent page signs in
const T = { timeout: 60_000 };
// The whole suite is bounded too (it takes under a minute here).
setTimeout(() => {
  console.error('browser tests: over 3 minutes, stopped');
  process.exit(1);
}, 180_000).unref();

// The scenarios build on each other (one server, one account): after a failure the dependent
// ones are skipped, so the first failure is the one reported.
let broken = null;
function step(name, fn, independent = false) {
  test(name, T, async (t) => {
    if (broken && !independent) return t.skip(`after the failure of "${broken}"`);
    try {
      await fn(t);
    } catch (e) {
      if (!independent) broken = name;
      if (page && !independent) await H.screenshot(page, 'failure-' + name.split('.')[0]).catch(() => {});
      throw e;
    }
  });
}

const dropbox = (op, body) => H.control(server.sandboxUrl, 'dropbox', op, body);

/** The table row of `folder` (its exact name). */
const row = (p, folder) => p.locator('#rows tr').filter({
  has: p.locator('.folder-name', { hasText: new RegExp(`^${folder.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) }),
});

async function openConsole(p, user) {
  await p.goto(server.consoleUrl);
  if (user) {
    const value = await p.locator('#user option', { hasText: new RegExp(`^${user}`) }).getAttribute('value');
    await p.selectOption('#user', value);
  }
  await p.locator('#manage:not([hidden]), #notice:not([hidden])').first().waitFor();
}

async function showDropbox(p) {
  await p.locator('#manage').waitFor();
  if ((await p.inputValue('#service')) !== 'dropbox') await p.selectOption('#service', 'dropbox');
}

/** The connection of `folder` as the API gives it (Ana's client). */
async function connectionOf(folder) {
  const list = await api('GET', '/v1/connections?provider=dropbox&limit=200');
  return list.body.items.find((c) => c.folder_name === folder);
}

/** Waits until `folder`'s row shows no run in progress (and the API agrees). */
async function idle(p, folder, ms = 30_000) {
  await H.until(`${folder} idle`, async () => {
    const c = await connectionOf(folder);
    return c && !c.current_run_id && c.status !== 'syncing';
  }, ms);
  await row(p, folder).locator('.progress').waitFor({ state: 'detached', timeout: ms });
}

/** ADD CONNECTION → the sandbox's consent page → Allow; the picker is open afterwards. */
async function consent(p, decision = 'allow') {
  await p.click('#add');
  await p.waitForSelector(`#${decision}`); // the sandbox's consent page
  await p.click(`#${decision}`);
  await p.waitForURL((u) => u.pathname === '/console' || u.pathname === '/console/');
}

/** In the open picker: opens each folder of `path` by name. */
async function openPath(p, path) {
  for (const name of path) {
    await p.click(`#picker-list button[aria-label="Open ${name}"]`);
    await p.locator('#picker-crumbs [aria-current]', { hasText: name }).waitFor();
  }
}

before(async () => {
  dam = await H.startDam();
  server = await H.startServer(bin, ['--dam-origin', dam.origin]);
  dam.consoleUrl = server.consoleUrl;
  api = await H.apiAs(server, 'Ana');
  const cfg = await (await fetch(`${server.origin}/console/config.json`)).json();
  dam.token = cfg.users.find((u) => u.label.startsWith('Ana')).token;
  browser = await H.launch();
  ana = await H.newContext(browser, { sandboxUrl: server.sandboxUrl });
  page = await ana.newPage();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
  if (dam) await dam.close();
});

step('1. connect a Dropbox folder: consent, picker (into a folder, back by breadcrumb, select the opened folder), import with progress', async () => {
  await openConsole(page);
  assert.equal(await page.inputValue('#user'), (await page.locator('#user option').first().getAttribute('value')));
  assert.match(await page.locator('#user option:checked').textContent(), /^Ana/);
  await showDropbox(page);
  await page.getByText('No Dropbox folders connected yet.').waitFor();

  await consent(page);
  // Back from the callback: the picker for the new grant, and no query left in the URL.
  await page.locator('#picker[open]').waitFor();
  assert.equal(new URL(page.url()).search, '');
  assert.equal(await page.locator('#picker-title').textContent(), 'Choose a Dropbox folder');
  await page.locator('#picker-list button[aria-label="Open Brand Assets"]').waitFor();
  assert.ok(await page.locator('#picker-select-here').isHidden(), 'the top level itself is not selectable');

  await openPath(page, ['Brand Assets', 'Photos']);
  assert.deepEqual(await page.locator('#picker-crumbs li').allTextContents(), ['Dropbox', 'Brand Assets', 'Photos']);
  await page.click('#picker-crumbs button:text-is("Brand Assets")');
  await page.locator('#picker-crumbs [aria-current]', { hasText: 'Brand Assets' }).waitFor();
  await page.locator('#picker-list button[aria-label="Open Photos"]').waitFor();
  assert.equal(await page.locator('#picker-here').textContent(), 'Brand Assets');
  await page.click('#picker-select-here');
  assert.equal(await page.locator('#picker-selected').textContent(), 'Selected: Brand Assets');
  assert.equal(await page.getAttribute('#picker-auto', 'aria-checked'), 'true', 'Auto sync defaults to on');
  await H.screenshot(page, 'picker');

  // Slow downloads, so the import is seen in progress.
  await dropbox('inject', { endpoint: 'Download', fault: { latency_ms: 2500 }, times: 9 });
  await page.click('#picker-confirm');
  await page.locator('#picker').waitFor({ state: 'hidden' });
  const r = row(page, 'Brand Assets');
  await r.locator('.progress progress').waitFor();
  // Files done of files found so far: the run says how many wait for their transfer.
  await r.locator('.progress', { hasText: /^Importing: \d+ of \d+ files?$/ }).waitFor();
  const [, done, found] = (await r.locator('.progress').textContent()).match(/(\d+) of (\d+)/);
  assert.ok(Number(done) < Number(found) && Number(found) <= 9, `${done} of ${found}`);
  assert.equal(await r.locator('.progress progress').getAttribute('max'), found, 'a determinate bar');
  assert.equal(await r.locator('.col-last').textContent(), 'Importing…');
  await page.locator('#messages').getByText('Connected Brand Assets: the initial import has started.').waitFor();
  await H.screenshot(page, 'importing');
  await idle(page, 'Brand Assets');
  await dropbox('clear_faults');
  assert.match(await r.locator('.count').textContent(), /^9 files · /);
  assert.equal(await r.locator('.col-last').textContent(), 'just now');
  assert.match(await r.locator('.col-last span').getAttribute('title'), /\d/);
  assert.equal(await r.locator('.col-by').textContent(), (await connectionOf('Brand Assets')).synced_by.display_name);
  // The account the row belongs to is shown on it.
  const details = await api('GET', `/v1/connections/${(await connectionOf('Brand Assets')).id}`);
  account = details.body.account.id;
  await r.locator('.folder-sub', { hasText: details.body.account.name }).waitFor();
  await H.screenshot(page, 'table');
  ana.check();
});

step('2. Auto sync off hides Refresh Items; on shows it again and it works', async () => {
  const r = row(page, 'Brand Assets');
  const sw = r.getByRole('switch', { name: 'Auto sync for Brand Assets' });
  assert.equal(await sw.getAttribute('aria-checked'), 'true');
  await r.getByRole('button', { name: 'Refresh Items of Brand Assets' }).waitFor();
  await sw.click();
  await page.locator('#messages').getByText('Auto sync turned off for Brand Assets.').waitFor();
  assert.equal(await sw.getAttribute('aria-checked'), 'false');
  assert.equal(await sw.textContent(), 'Off');
  assert.equal(await r.locator('button.refresh').isVisible(), false);
  assert.equal((await connectionOf('Brand Assets')).auto_sync, false);

  await sw.click();
  await page.locator('#messages').getByText('Auto sync turned on for Brand Assets.').waitFor();
  assert.equal(await sw.getAttribute('aria-checked'), 'true');
  const before = (await api('GET', `/v1/connections/${(await connectionOf('Brand Assets')).id}/runs`)).body.items.length;
  await dropbox('add_file', { account_id: account, path: '/Brand Assets/new-banner.png', content: { text: 'a new banner' } });
  await r.getByRole('button', { name: 'Refresh Items of Brand Assets' }).click();
  await H.until('a refresh run', async () =>
    (await api('GET', `/v1/connections/${(await connectionOf('Brand Assets')).id}/runs`)).body.items.length > before);
  await idle(page, 'Brand Assets');
  await r.locator('.count', { hasText: /^10 files/ }).waitFor();
  ana.check();
});

step('3. a failing file: failed badge, details with the reason, Retry failed imports it', async () => {
  const r = row(page, 'Brand Assets');
  await dropbox('add_file', { account_id: account, path: '/Brand Assets/broken.png', content: { text: 'bytes that arrive damaged' } });
  await dropbox('inject', { endpoint: 'Download', fault: 'corrupt_same_length', times: 5 });
  await r.getByRole('button', { name: 'Refresh Items of Brand Assets' }).click();
  await idle(page, 'Brand Assets');
  await r.locator('.badge-failed', { hasText: '1 failed' }).waitFor();
  await dropbox('clear_faults');

  await r.getByRole('button', { name: 'Details for Brand Assets' }).click();
  const d = page.locator('#details');
  await d.locator('h3', { hasText: 'Failed files (1)' }).waitFor();
  const failed = d.locator('.file-list li', { hasText: 'broken.png' });
  await failed.waitFor();
  assert.match(await failed.textContent(), /did not match what the service announced/);
  assert.match(await d.locator('.facts').textContent(), /Dropbox account.*Demo Designer/);
  assert.match(await d.locator('.facts').textContent(), /Folder\/Brand Assets/);
  await d.locator('.mini tbody tr').first().waitFor();
  await H.screenshot(page, 'details-failure');

  await d.getByRole('button', { name: 'Retry failed' }).click();
  await d.getByText('No failed files.').waitFor({ timeout: 30_000 });
  await page.keyboard.press('Escape');
  await d.waitFor({ state: 'hidden' });
  await idle(page, 'Brand Assets');
  await r.locator('.badge-failed').waitFor({ state: 'detached' });
  await r.locator('.count', { hasText: /^11 files/ }).waitFor();
  ana.check();
});

step('3b. a large file continued in the next step shows as being transferred, not failed', async () => {
  // Cutting a real transfer takes a worker's 5-minute time limit: the API's answer for the
  // failed items gets such a file added instead (as the items API records it).
  const resuming = {
    id: 'id:huge', name: 'huge.mov', path: '/Brand Assets/huge.mov', is_folder: false, state: 'failed',
    reason: 'transfer_resuming', error: '1073741824 of 4294967296 bytes stored; the next invocation continues from there',
    size: 4294967296, attempts: 0, next_attempt_at: new Date().toISOString(), asset_key: null,
    updated_at: new Date().toISOString(),
  };
  const pattern = /\/items\?.*state=failed/;
  await page.route(pattern, async (route) => {
    const res = await route.fetch();
    const body = await res.json();
    body.items = [...body.items, resuming];
    await route.fulfill({ response: res, json: body });
  });
  try {
    const r = row(page, 'Brand Assets');
    await r.getByRole('button', { name: 'Details for Brand Assets' }).click();
    const d = page.locator('#details');
    await d.locator('h3', { hasText: 'Being transferred (1)' }).waitFor();
    const moving = d.locator('.file-list li', { hasText: 'huge.mov' });
    assert.match(await moving.textContent(), /still being transferred.*1073741824 of 4294967296 bytes stored/);
    await d.locator('h3', { hasText: 'Failed files (0)' }).waitFor();
    await d.getByText('No failed files.').waitFor();
    assert.equal(await d.getByRole('button', { name: 'Retry failed' }).isDisabled(), true);
    await page.keyboard.press('Escape');
    await d.waitFor({ state: 'hidden' });
  } finally {
    await page.unroute(pattern);
  }
  ana.check();
});

step('4. the account revoked at Dropbox: Reconnect shown, reconnect by clicks, active again without a picker', async () => {
  const r = row(page, 'Brand Assets');
  await dropbox('revoke_all');
  await r.getByRole('button', { name: 'Refresh Items of Brand Assets' }).click();
  const reconnect = r.getByRole('button', { name: 'Reconnect the Dropbox account of Brand Assets' });
  await reconnect.waitFor({ timeout: 30_000 });
  assert.match(await r.locator('.pill').textContent(), /Needs reconnecting/);
  await H.screenshot(page, 'reauth');

  await reconnect.click();
  await page.waitForSelector('#allow');
  await page.click('#allow');
  await page.waitForURL((u) => u.pathname.startsWith('/console'));
  await page.locator('#messages').getByText('Reconnected Demo Designer: its connections sync again.').waitFor();
  assert.equal(await page.locator('#picker').isVisible(), false, 'no picker after a reconnect');
  assert.equal(new URL(page.url()).search, '');
  await idle(page, 'Brand Assets');
  await reconnect.waitFor({ state: 'detached' });
  assert.equal((await connectionOf('Brand Assets')).status, 'active');
  ana.check();
});

step('10. consent denied: a plain message, no raw problem', async () => {
  await consent(page, 'deny');
  await page.locator('#messages').getByText('You declined access at Dropbox; nothing was connected.').waitFor();
  assert.equal(new URL(page.url()).search, '');
  const text = await page.locator('body').innerText();
  assert.ok(!/[{}]|oauth\/|problems\//.test(text), `raw problem on the page: ${text}`);
  assert.equal(await page.locator('#picker').isVisible(), false);
  // It stays until dismissed.
  await page.locator('#messages .msg-error').getByRole('button', { name: 'Dismiss message' }).click();
  await page.locator('#messages .msg-error').waitFor({ state: 'detached' });
  ana.check();
});

step('8. two tabs add a connection at once: both consents complete, both pickers work', async () => {
  const [a, b] = [await ana.newPage(), await ana.newPage()];
  await Promise.all([openConsole(a), openConsole(b)]);
  await Promise.all([showDropbox(a), showDropbox(b)]);
  await Promise.all([a.click('#add'), b.click('#add')]);
  await Promise.all([a.waitForSelector('#allow'), b.waitForSelector('#allow')]);
  await a.click('#allow');
  await b.click('#allow');
  await Promise.all([a.locator('#picker[open]').waitFor(), b.locator('#picker[open]').waitFor()]);
  await openPath(a, ['Campaign 2026']);
  await openPath(b, ['Archive', '2019']);
  await a.click('#picker-select-here');
  await b.click('#picker-select-here');
  assert.equal(await b.locator('#picker-selected').textContent(), 'Selected: Archive › 2019');
  await Promise.all([a.click('#picker-confirm'), b.click('#picker-confirm')]);
  await row(a, 'Campaign 2026').waitFor();
  await row(b, '2019').waitFor();
  await idle(a, 'Campaign 2026');
  await idle(b, '2019');
  await page.reload();
  await row(page, 'Campaign 2026').waitFor();
  await row(page, '2019').waitFor();
  await a.close();
  await b.close();
  ana.check();
});

step('9. a mass deletion is held: needs_review with the count, Confirm deletions from the page', async () => {
  await dropbox('seed_tree', { account_id: account, root: '/Mass', files: 120, files_per_folder: 10, size_each: 64 });
  await consent(page);
  await page.locator('#picker[open]').waitFor();
  await openPath(page, ['Mass']);
  await page.click('#picker-select-here');
  await page.click('#picker-confirm');
  const r = row(page, 'Mass');
  await r.waitFor();
  await idle(page, 'Mass');
  await r.locator('.count', { hasText: /^120 files/ }).waitFor();

  for (let i = 0; i < 11; i++) await dropbox('delete', { account_id: account, path: `/Mass/d${String(i).padStart(4, '0')}` });
  await r.getByRole('button', { name: 'Refresh Items of Mass' }).click();
  await r.getByText('110 files would be marked deleted.').waitFor({ timeout: 30_000 });
  assert.match(await r.locator('.pill').textContent(), /Needs review/);
  await r.getByRole('button', { name: 'Discard' }).waitFor();
  await H.screenshot(page, 'needs-review');

  await r.getByRole('button', { name: 'Confirm deletions' }).click();
  await page.locator('#messages').getByText('Confirmed the deletions of Mass; they are applied now.').waitFor();
  await idle(page, 'Mass');
  await r.getByRole('button', { name: 'Confirm deletions' }).waitFor({ state: 'detached' });
  assert.equal((await connectionOf('Mass')).status, 'active');
  ana.check();
});

step('the connected folder deleted at Dropbox: the row says the folder is unavailable, and why', async () => {
  const r = row(page, '2019');
  await dropbox('delete', { account_id: account, path: '/Archive/2019' });
  await r.getByRole('button', { name: 'Refresh Items of 2019' }).click();
  await r.locator('.pill', { hasText: 'Folder unavailable' }).waitFor({ timeout: 30_000 });
  const reason = (await r.locator('.attention-box p').first().textContent()).trim();
  assert.ok(reason.length > 10, `a reason in words: ${reason}`);
  assert.match(await r.locator('.attention-box').textContent(), /Restore the folder/);
  assert.equal((await connectionOf('2019')).status, 'folder_unavailable');
  ana.check();
});

step('embedded: the DAM frames the console and hands it Ana\'s token (a stale one first); ADD CONNECTION runs in a popup', async () => {
  // The DAM's first token is not accepted (401): the console asks for another one and goes on.
  dam.firstToken = 'expired.' + dam.token.split('.').slice(1).join('.');
  ana.expectStatus(401);
  const p = await ana.newPage();
  await p.goto(dam.origin);
  const frame = p.frameLocator('#console');
  await frame.locator('#manage').waitFor();
  // A framed page's storage is the DAM site's partition: the service choice starts afresh.
  await frame.locator('#service').selectOption('dropbox');
  await frame.locator('#rows tr', { hasText: 'Brand Assets' }).first().waitFor();
  assert.equal(await frame.locator('#user-switch').isVisible(), false, 'no user switch when framed');
  assert.equal(await p.locator('body').getAttribute('data-ready'), 'yes');
  assert.equal(await p.locator('body').getAttribute('data-expired'), 'yes', 'the console reported the expired token');

  const popupSeen = p.waitForEvent('popup');
  await frame.locator('#add').click();
  const popup = await popupSeen;
  await popup.waitForSelector('#allow');
  await popup.click('#allow');
  await popup.waitForEvent('close');
  await frame.locator('#picker[open]').waitFor();
  // Campaign 2026 is connected already: the picker says so in plain words.
  await frame.locator('#picker-list button[aria-label="Open Campaign 2026"]').click();
  await frame.locator('#picker-crumbs [aria-current]', { hasText: 'Campaign 2026' }).waitFor();
  await frame.locator('#picker-select-here').click();
  ana.expectStatus(409);
  await frame.locator('#picker-confirm').click();
  await frame.locator('#picker-confirm-error').getByText('This folder is already connected.', { exact: false }).waitFor();
  await frame.locator('#picker-cancel').click();
  await p.close();
  ana.check();
  ana.expected.length = 0;
});

step('13. Google Drive and SharePoint: the picker opens drives (My Drive, a shared drive) and sites (site › library › folder)', async () => {
  await page.selectOption('#service', 'google_drive');
  await page.getByText('No Google Drive folders connected yet.').waitFor();
  await consent(page);
  await page.locator('#picker[open]').waitFor();
  assert.equal(await page.locator('#picker-title').textContent(), 'Choose a Google Drive folder');
  const myDrive = page.locator('#picker-list li', { has: page.locator('button[aria-label="Open My Drive"]') });
  await myDrive.locator('.kind', { hasText: 'Drive' }).waitFor();
  await openPath(page, ['Marketing']);
  // An entry of the list can be selected without opening it.
  await page.click('#picker-list button[aria-label="Select Campaign assets"]');
  assert.equal(await page.locator('#picker-selected').textContent(), 'Selected: Marketing › Campaign assets');
  await page.click('#picker-confirm');
  const g = row(page, 'Campaign assets');
  await g.waitFor();
  await H.until('the Drive import', async () => {
    const list = await api('GET', '/v1/connections?provider=google_drive');
    const c = list.body.items.find((x) => x.folder_name === 'Campaign assets');
    return c && !c.current_run_id && c.counters.files === 1;
  }, 30_000);
  await g.locator('.count', { hasText: /^1 file · / }).waitFor();

  await page.selectOption('#service', 'sharepoint');
  await page.getByText('No SharePoint folders connected yet.').waitFor();
  await consent(page);
  await page.locator('#picker[open]').waitFor();
  const site = page.locator('#picker-list li', { has: page.locator('button[aria-label="Open Marketing"]') });
  await site.locator('.kind', { hasText: 'Site' }).waitFor();
  await openPath(page, ['Marketing', 'Documents', 'Campaign assets']);
  await page.click('#picker-select-here');
  assert.equal(await page.locator('#picker-selected').textContent(), 'Selected: Marketing › Documents › Campaign assets');
  await page.click('#picker-confirm');
  const s = row(page, 'Campaign assets');
  await s.waitFor();
  await H.until('the SharePoint import', async () => {
    const list = await api('GET', '/v1/connections?provider=sharepoint');
    const c = list.body.items.find((x) => x.folder_name === 'Campaign assets');
    return c && !c.current_run_id && c.counters.files === 5;
  }, 30_000);
  await s.locator('.count', { hasText: /^5 files · / }).waitFor();
  await H.screenshot(page, 'sharepoint');
  await page.selectOption('#service', 'dropbox');
  await row(page, 'Brand Assets').waitFor();
  ana.check();
});

step('11. at 390 px: stacked cards, no sideways scroll, actions usable', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.reload();
  const r = row(page, 'Brand Assets');
  await r.waitFor();
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth) <= 390, 'no horizontal overflow');
  const box = await page.locator('#add').boundingBox();
  assert.ok(box && box.x >= 0 && box.x + box.width <= 390, 'ADD CONNECTION on screen');
  for (const name of ['Refresh Items of Brand Assets', 'Details for Brand Assets', 'Delete Brand Assets']) {
    const b = await r.getByRole('button', { name }).boundingBox();
    assert.ok(b && b.x >= 0 && b.x + b.width <= 390 && b.width >= 24 && b.height >= 24, `${name} on screen`);
  }
  await H.screenshot(page, 'narrow-390', { fullPage: true });
  await r.getByRole('button', { name: 'Details for Brand Assets' }).click();
  await page.locator('#details .facts').waitFor();
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth) <= 390);
  const d = await page.locator('#details').boundingBox();
  assert.ok(d.x >= 0 && d.x + d.width <= 390, 'the details fit');
  await page.keyboard.press('Escape');
  await page.locator('#details').waitFor({ state: 'hidden' });
  // The picker on a phone.
  await consent(page);
  await page.locator('#picker[open]').waitFor();
  await openPath(page, ['Brand Assets']);
  const pk = await page.locator('#picker').boundingBox();
  assert.ok(pk.x >= 0 && pk.x + pk.width <= 390, 'the picker fits');
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth) <= 390);
  for (const id of ['#picker-select-here', '#picker-confirm', '#picker-cancel', '#picker-back']) {
    const b = await page.locator(id).boundingBox();
    assert.ok(b && b.x >= 0 && b.x + b.width <= 390, `${id} on screen`);
  }
  await H.screenshot(page, 'narrow-390-picker');
  await page.click('#picker-cancel');
  await page.locator('#picker').waitFor({ state: 'hidden' });
  await page.setViewportSize({ width: 1280, height: 800 });
  ana.check();
});

step('12. keyboard: Space toggles the switch; Escape closes the delete dialog and focus returns', async () => {
  const r = row(page, 'Brand Assets');
  const sw = r.getByRole('switch', { name: 'Auto sync for Brand Assets' });
  await sw.focus();
  await page.keyboard.press('Space');
  await page.locator('#messages').getByText('Auto sync turned off for Brand Assets.').last().waitFor();
  await H.until('switch off', async () => (await sw.getAttribute('aria-checked')) === 'false');
  await H.until('switch idle', async () => (await sw.getAttribute('aria-busy')) === null);
  await page.keyboard.press('Enter');
  await H.until('switch on', async () => (await sw.getAttribute('aria-checked')) === 'true');
  assert.equal((await connectionOf('Brand Assets')).auto_sync, true);

  const trash = r.getByRole('button', { name: 'Delete Brand Assets' });
  await trash.focus();
  await page.keyboard.press('Enter');
  const dialog = page.locator('#delete-dialog');
  await dialog.waitFor();
  assert.ok(await page.evaluate(() => document.getElementById('delete-dialog').contains(document.activeElement)), 'focus moves into the dialog');
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  assert.equal(await page.evaluate(() => document.activeElement.getAttribute('aria-label')), 'Delete Brand Assets');
  ana.check();
});

step('5. delete with the confirm dialog: Cancel keeps it, Delete removes it', async () => {
  const r = row(page, 'Brand Assets');
  await r.getByRole('button', { name: 'Delete Brand Assets' }).click();
  const dialog = page.locator('#delete-dialog');
  await dialog.getByText('Delete Brand Assets?').waitFor();
  assert.match(await dialog.locator('#delete-text').textContent(), /“Brand Assets”/);
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await dialog.waitFor({ state: 'hidden' });
  assert.ok(await r.isVisible());
  assert.ok(await connectionOf('Brand Assets'));

  await r.getByRole('button', { name: 'Delete Brand Assets' }).click();
  await dialog.getByRole('button', { name: 'Delete' }).click();
  await page.locator('#messages').getByText('Deleted Brand Assets. Its imported assets stay in the DAM.').waitFor();
  await r.waitFor({ state: 'detached' });
  assert.equal(await connectionOf('Brand Assets'), undefined);
  ana.check();
});

step('6. Vic (not a client admin) sees the explanation and no actions', async () => {
  const vic = await H.newContext(browser, { sandboxUrl: server.sandboxUrl });
  vic.expectStatus(403); // GET /v1/providers answers 403: that is how the page knows
  const p = await vic.newPage();
  await openConsole(p, 'Vic');
  await p.getByText('You need the client admin permission to manage external connections. Ask an admin of your organization.').waitFor();
  assert.equal(await p.locator('button:visible').count(), 0, 'no buttons at all');
  assert.equal(await p.locator('#manage').isVisible(), false);
  await H.screenshot(p, 'non-admin');
  // The choice is kept for the tab.
  await p.reload();
  await p.getByText('You need the client admin permission', { exact: false }).waitFor();
  assert.match(await p.locator('#user option:checked').textContent(), /^Vic/);
  vic.check();
  await vic.close();
}, true);

step('7. Eve (admin of another client) sees none of Ana\'s rows', async () => {
  const eve = await H.newContext(browser, { sandboxUrl: server.sandboxUrl });
  const p = await eve.newPage();
  await openConsole(p, 'Eve');
  await showDropbox(p);
  await p.getByText('No Dropbox folders connected yet.').waitFor();
  assert.equal(await p.locator('#rows tr').count(), 0);
  assert.ok((await connectionOf('Campaign 2026')), 'Ana still has hers');
  eve.check();
  await eve.close();
});
