// A person connects a Dropbox folder in the browser, against `extconn-local serve`:
// console → "Add Dropbox connection" → the sandbox's consent page → Allow → the folder picker →
// Brand Assets → Create. Then the files must be under the data folder, by source path.
// Usage: node connect.js <path to the extconn-local binary>
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');

const bin = process.argv[2];
const data = fs.mkdtempSync(path.join(os.tmpdir(), 'extconn-browser-'));
const server = spawn(bin, ['serve', '--port', '0', '--data-dir', data], { stdio: ['ignore', 'pipe', 'inherit'] });
const fail = (msg) => { console.error('browser test FAILED: ' + msg); server.kill(); process.exit(1); };
setTimeout(() => fail('timed out'), 90_000).unref();

let out = '';
server.stdout.on('data', async (chunk) => {
  out += chunk;
  const m = out.match(/Console \(built-in\)\s+(\S+)/);
  if (!m || server.started) return;
  server.started = true;
  try { await run(m[1]); } catch (e) { fail(e.stack || String(e)); }
});

async function run(consoleUrl) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage();
  await page.goto(consoleUrl);
  await page.click('#connect');
  await page.waitForSelector('#allow');            // the sandbox's consent page
  await page.click('#allow');
  await page.waitForURL(/\/console\/connect\?provider=dropbox&grant_id=/);
  await page.waitForSelector('input[name=folder]');
  const folders = await page.$$eval('#folders li', (lis) => lis.map((l) => l.textContent));
  const i = folders.findIndex((f) => f.includes('Brand Assets'));
  if (i < 0) fail('Brand Assets not offered: ' + folders);
  await (await page.$$('input[name=folder]'))[i].check();
  await page.click('#create');
  await page.waitForFunction(() => [...document.querySelectorAll('#rows tr')].some((r) => r.textContent.includes('Brand Assets')));
  // The initial import runs in the background; wait for the files by source path.
  const index = path.join(data, 'index', 'acme');
  for (let t = 0; t < 100; t++) {
    const conns = fs.existsSync(index) ? fs.readdirSync(index) : [];
    const logo = conns.map((c) => path.join(index, c, 'Brand Assets', 'logo.png')).find((p) => fs.existsSync(p));
    const hero = logo && path.join(path.dirname(logo), 'Photos', 'hero-1.jpg');
    if (logo && fs.existsSync(hero) && fs.statSync(logo).size === 48213) {
      await page.waitForFunction(() => [...document.querySelectorAll('#rows tr')].some((r) => r.textContent.includes('active')));
      console.log('browser test: connected in Chromium; files found by source path under ' + path.dirname(logo));
      await browser.close();
      server.kill();
      process.exit(0);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  fail('the files did not appear under ' + index);
}
