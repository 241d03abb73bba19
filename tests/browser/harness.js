// What the console's browser tests share: a fresh `extconn-local serve` per run (its banner
// gives the console and sandbox URLs), the sandbox's control API (called from node, never from
// the page), Chromium launched as scripts/test expects, pages that fail on any console error,
// warning or page error, and bounded waits.
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');

const ARTIFACTS = path.resolve(__dirname, '..', '..', 'target', 'browser-artifacts');

/**
 * Starts `bin serve --port 0` on a fresh data folder; resolves with its URLs once the banner
 * is printed. `EXTCONN_*` provider settings are dropped: every provider is the sandbox.
 */
function startServer(bin, extraArgs = []) {
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'extconn-browser-'));
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('EXTCONN_')));
  // Auto sync every hour: no scheduled run starts in the middle of a scenario.
  const args = ['serve', '--port', '0', '--data-dir', data, '--sync-every', '3600', ...extraArgs];
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  // However this process ends, the server ends with it.
  process.on('exit', () => child.kill());
  let stderr = '';
  child.stderr.on('data', (c) => { stderr = (stderr + c).slice(-20000); });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => { child.kill(); reject(new Error('serve printed no banner within 30 s')); }, 30_000);
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`serve exited (${code}): ${stderr.slice(-2000)}`)); });
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const console_ = out.match(/Console\s+(http:\/\/\S+\/console)\b/);
      const sandbox = out.match(/Sandbox\s+(http:\/\/\S+)/);
      if (!console_ || !sandbox || !/Dev tokens/.test(out)) return;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      resolve({
        consoleUrl: console_[1],
        origin: new URL(console_[1]).origin,
        sandboxUrl: sandbox[1].replace(/\/$/, ''),
        data,
        logs: () => stderr,
        // Stops the server and removes its data folder (imported files included).
        stop: async () => {
          if (child.exitCode === null) await new Promise((r) => { child.once('exit', r); child.kill(); });
          fs.rmSync(data, { recursive: true, force: true });
        },
      });
    });
  });
}

/** POST `{sandbox}/_control/<provider>/<op>` with a JSON body; the JSON answer. */
async function control(sandboxUrl, provider, op, body = {}) {
  const resp = await fetch(`${sandboxUrl}/_control/${provider}/${op}`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const json = await resp.json();
  if (!resp.ok) throw new Error(`sandbox control ${provider}/${op}: ${resp.status} ${JSON.stringify(json)}`);
  return json;
}

/** The API as a user of config.json (`Ana`, `Vic`, `Eve` by label), from node. */
async function apiAs(server, who) {
  const cfg = await (await fetch(`${server.origin}/console/config.json`)).json();
  const user = cfg.users.find((u) => u.label.startsWith(who));
  if (!user) throw new Error(`no user ${who} in config.json`);
  return async (method, p, body) => {
    const resp = await fetch(server.origin + p, {
      method,
      headers: { Authorization: `Bearer ${user.token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(10_000),
    });
    const text = await resp.text();
    return { status: resp.status, body: text ? JSON.parse(text) : null };
  };
}

function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/**
 * Every console message of type error or warning and every page error of `page` is collected
 * (every page of a context is watched, popups included); `check()` throws if any is left after removing the ones the
 * test expected. Chromium logs an HTTP error answer of a `fetch` as a console error ("Failed to
 * load resource: … status of 403"): a test that provokes one on purpose (Vic's 403) names that
 * status with `expectStatus`.
 */
function watch(page, problems) {
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') {
      problems.push(`${m.type()}: ${m.text()} (${m.location().url || page.url()})`);
    }
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message} (${page.url()})`));
}

/**
 * A browser context whose pages' console problems are collected (see `watch`). `sandboxUrl`:
 * the provider's pages there (the sandbox's consent page, not ours) have no favicon, and
 * Chromium logs the 404 of its automatic /favicon.ico request: that one line is not counted.
 */
async function newContext(browser, { sandboxUrl, ...opts } = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...opts });
  context.setDefaultTimeout(10_000);
  context.setDefaultNavigationTimeout(15_000);
  const problems = [];
  context.on('page', (p) => watch(p, problems));
  context.expected = [];
  context.expectStatus = (status) => context.expected.push(`status of ${status}`);
  context.check = () => {
    const sandboxFavicon = sandboxUrl && `(${sandboxUrl}/favicon.ico)`;
    const left = problems.filter((p) => !(sandboxFavicon && p.endsWith(sandboxFavicon) && p.includes('status of 404'))
      && !context.expected.some((e) => p.includes('Failed to load resource') && p.includes(e)));
    problems.length = 0;
    if (left.length) throw new Error('browser console problems:\n  ' + left.join('\n  '));
  };
  return context;
}

async function screenshot(page, name, opts = {}) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), ...opts });
}

/** Polls `fn` (async, truthy = done) every 100 ms for at most `ms`. */
async function until(what, fn, ms = 10_000) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) { last = e; }
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A stand-in for the DAM: an http server on http://localhost:<port> whose page frames the
 * console and answers its `extconn:ready` with a token: first `firstToken` when set (say an
 * expired one), then `token`, also whenever the console says `extconn:token-expired`.
 */
function startDam() {
  const state = { consoleUrl: null, token: null, firstToken: null };
  const server = http.createServer((req, res) => {
    if (req.url === '/dam.js') {
      res.writeHead(200, { 'Content-Type': 'text/javascript', 'Cache-Control': 'no-store' });
      res.end(`
        const frame = document.getElementById('console');
        const origin = new URL(frame.src).origin;
        const tokens = ${JSON.stringify([state.firstToken, state.token].filter(Boolean))};
        window.addEventListener('message', (e) => {
          if (e.source !== frame.contentWindow || e.origin !== origin) return;
          if (e.data && (e.data.type === 'extconn:ready' || e.data.type === 'extconn:token-expired')) {
            document.body.dataset[e.data.type === 'extconn:ready' ? 'ready' : 'expired'] = 'yes';
            const token = tokens.length > 1 ? tokens.shift() : tokens[0];
            frame.contentWindow.postMessage({ type: 'extconn:token', token }, origin);
          }
        });`);
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
    res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>DAM</title><link rel="icon" href="data:,"></head>
      <body><h1>DAM — Settings</h1>
      <iframe id="console" title="External Connections" src="${state.consoleUrl}" width="1200" height="700"></iframe>
      <script src="/dam.js"></script></body></html>`);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      state.origin = `http://localhost:${server.address().port}`;
      state.close = () => new Promise((r) => server.close(r));
      resolve(state);
    });
  });
}

module.exports = { startServer, control, apiAs, launch, newContext, screenshot, until, startDam, ARTIFACTS };
