// The External Connections page (Client Profile → Settings → External Connections).
//
// How it gets its user (`/console/config.json`, see shared/api/src/console.rs):
// - framed (window.parent !== window), whatever the mode: the DAM's embedded protocol — the
//   page posts `extconn:ready` to each DAM origin and takes the token from
//   `extconn:token` messages of the parent window from one of those origins; the token lives in
//   memory only; a 401 posts `extconn:token-expired` back to that origin;
// - top-level, `local`: a "Signed in as" switch between the dev users (per tab, sessionStorage);
// - top-level, `embedded`: nothing to do but say where the page lives.
//
// OAuth leaves the page (top-level: the tab navigates; framed: a same-origin popup does it,
// because the provider refuses to be framed and a cross-site frame cannot keep the binding
// cookie) and comes back to `/console?provider=P&grant_id=G[&reconnected=1]` or
// `?provider=P&error=<slug>`.

import { createApi, withQuery } from './api.js';
import { $, h, icon, announce, showMessage, openDialog } from './dom.js';
import {
  SERVICE_ORDER, serviceName, oauthErrorText, problemText, relativeTime, exactTime, files, bytes,
  statusText, sentence,
} from './words.js';
import { openPicker } from './picker.js';
import { openDetails } from './details.js';

const POLL_MS = 1500;
const LIST_REFRESH_MS = 30_000;
const K_USER = 'extconn.user';
const K_SERVICE = 'extconn.service';
const K_INTENT = 'extconn.oauth';
const POPUP_NAME = 'extconn-oauth';

const state = {
  config: null,
  framed: window.parent !== window,
  token: null,
  tokenOrigin: null, // the DAM origin the token came from (framed)
  expired: false, // a call answered 401 with the current token
  gen: 0, // bumped on every (re)start: answers of an older start are dropped
  providers: [],
  service: null,
  rows: new Map(), // id → row (or details) as the API answered it
  order: [],
  nextPage: null,
  els: new Map(), // id → the row's elements
  runs: new Map(), // id → the open run (from the details), for progress
  accounts: new Map(), // id → account {name, email}
  rowErrors: new Map(), // id → [texts] shown on the row until dismissed
  polls: new Map(), // id → timer
  popup: null, // framed: the OAuth popup and what it was for
  popupIntent: null,
  pendingReturn: null, // framed: a callback to handle once a token arrived
};

const api = createApi(() => state.token, onUnauthorized);

// ---- storage (private windows and partitioned frames may refuse it: then nothing is kept) ----
function store(kind, key, value) {
  try {
    const s = kind === 'local' ? localStorage : sessionStorage;
    if (value === undefined) s.removeItem(key); else s.setItem(key, value);
  } catch { /* not kept */ }
}
function load(kind, key) {
  try { return (kind === 'local' ? localStorage : sessionStorage).getItem(key); } catch { return null; }
}

// ---- boot ----------------------------------------------------------------------------------

async function boot() {
  const params = new URLSearchParams(location.search);
  try {
    const resp = await fetch('/console/config.json', { credentials: 'same-origin' });
    if (!resp.ok) throw new Error(String(resp.status));
    state.config = await resp.json();
  } catch {
    notice('The page could not load its settings. Reload the page to try again.');
    return;
  }
  if (params.get('popup') === 'authorize') return popupAuthorize(params);
  const returned = takeCallback(params);
  if (returned && returned.intent && returned.intent.popup) return popupReturn(returned);

  if (state.framed) {
    state.pendingReturn = returned;
    embedded();
    return;
  }
  if (state.config.mode !== 'local') {
    notice('Open this page from your DAM: Settings → External Connections.');
    return;
  }
  localUsers();
  await start();
  if (returned) await handleReturn(returned, returned.intent);
}

/** The callback's answer in the URL, if any (removed from the URL at once), with the intent. */
function takeCallback(params) {
  const provider = params.get('provider');
  if (!provider || params.has('popup')) return null;
  const r = {
    provider,
    grant_id: params.get('grant_id'),
    reconnected: params.get('reconnected') === '1',
    error: params.get('error'),
    intent: null,
  };
  history.replaceState(null, '', location.pathname);
  const raw = load('session', K_INTENT);
  store('session', K_INTENT, undefined);
  try {
    const intent = raw && JSON.parse(raw);
    if (intent && intent.provider === provider) r.intent = intent;
  } catch { /* a damaged intent is no intent */ }
  return r;
}

function localUsers() {
  const users = state.config.users || [];
  const select = $('user');
  for (const u of users) select.append(h('option', { value: u.id }, u.label));
  const saved = load('session', K_USER);
  const ana = users.find((u) => /^ana\b/i.test(u.label) || /ana/i.test(u.id)) || users[0];
  const chosen = users.find((u) => u.id === saved) || ana;
  if (!chosen) {
    notice('No users are configured for local mode.');
    return;
  }
  select.value = chosen.id;
  state.token = chosen.token;
  $('user-switch').hidden = false;
  select.addEventListener('change', () => {
    const u = users.find((x) => x.id === select.value);
    store('session', K_USER, u.id);
    state.token = u.token;
    clearMessages();
    start();
  });
}

// ---- the embedded protocol -----------------------------------------------------------------

function embedded() {
  const origins = state.config.dam_origins || [];
  if (origins.length === 0) {
    notice('This page may not be embedded here: no DAM origin is configured.');
    return;
  }
  $('loading').textContent = 'Waiting for your DAM to sign you in…';
  window.addEventListener('message', (event) => {
    const msg = event.data;
    if (!msg || typeof msg !== 'object') return;
    if (event.source === window.parent && origins.includes(event.origin)) {
      if (msg.type === 'extconn:token' && typeof msg.token === 'string' && msg.token) {
        // The first token starts the page; a later one replaces it, and starts the page again
        // if the old one had expired on the way.
        const again = !state.token || state.expired;
        state.token = msg.token;
        state.tokenOrigin = event.origin;
        state.expired = false;
        if (again) {
          start().then(() => {
            const r = state.pendingReturn;
            state.pendingReturn = null;
            if (r) handleReturn(r, r.intent);
          });
        }
      }
      return;
    }
    // The OAuth popup: same origin as this page, and the window this page opened.
    if (event.origin !== location.origin || !state.popup || event.source !== state.popup) return;
    if (msg.type === 'extconn:popup-ready') {
      state.popup.postMessage({ type: 'extconn:token', token: state.token }, location.origin);
    } else if (msg.type === 'extconn:authorized') {
      const intent = state.popupIntent;
      state.popup = null;
      state.popupIntent = null;
      handleReturn({
        provider: String(msg.provider || ''),
        grant_id: msg.grant_id ? String(msg.grant_id) : null,
        reconnected: msg.reconnected === true,
        error: msg.error ? String(msg.error) : null,
      }, intent);
    }
  });
  for (const origin of origins) window.parent.postMessage({ type: 'extconn:ready' }, origin);
}

function onUnauthorized() {
  state.expired = true;
  if (state.framed && state.tokenOrigin) {
    window.parent.postMessage({ type: 'extconn:token-expired' }, state.tokenOrigin);
  }
}

// ---- OAuth -----------------------------------------------------------------------------------

/**
 * Starts OAuth for `provider` from a click. `intent` is `add` or `reconnect` (then `account`
 * names the account to reconnect, for the confirmation). Framed, the popup must open
 * synchronously in the click handler (or the browser blocks it).
 */
function startOAuth(provider, intent, account, source) {
  const info = { intent, provider, account: account || null };
  if (state.framed) {
    const url = withQuery('/console/', { popup: 'authorize', provider, intent });
    const w = window.open(url, POPUP_NAME, 'popup,width=600,height=700');
    if (!w) {
      showMessage($('messages'), 'The sign-in window was blocked. Allow pop-ups for this page, then try again.', 'error');
      return;
    }
    state.popup = w;
    state.popupIntent = info;
    return;
  }
  store('session', K_INTENT, JSON.stringify(info));
  if (source) source.disabled = true;
  api.post('/v1/connections/authorize', { provider })
    .then((r) => location.assign(r.authorization_url))
    .catch((p) => {
      store('session', K_INTENT, undefined);
      if (source) source.disabled = false;
      showMessage($('messages'), problemText(p, `Connecting ${serviceName(provider)}`), 'error');
    });
}

/** The popup (framed flow), opened at `/console/?popup=authorize&provider=P&intent=I`. */
function popupAuthorize(params) {
  const provider = params.get('provider') || '';
  const intent = params.get('intent') === 'reconnect' ? 'reconnect' : 'add';
  document.title = `Connect ${serviceName(provider)}`;
  $('loading').textContent = `Connecting to ${serviceName(provider)}…`;
  if (!window.opener) {
    notice('Open this window from External Connections in your DAM.');
    return;
  }
  let done = false;
  window.addEventListener('message', (event) => {
    const msg = event.data;
    if (done || event.origin !== location.origin || event.source !== window.opener) return;
    if (!msg || msg.type !== 'extconn:token' || typeof msg.token !== 'string') return;
    done = true;
    state.token = msg.token;
    store('session', K_INTENT, JSON.stringify({ intent, provider, popup: true }));
    api.post('/v1/connections/authorize', { provider })
      .then((r) => location.assign(r.authorization_url))
      .catch((p) => {
        store('session', K_INTENT, undefined);
        window.opener.postMessage({ type: 'extconn:authorized', provider, grant_id: null, reconnected: false,
          error: p.slug || 'provider-unavailable' }, location.origin);
        window.close();
      });
  });
  window.opener.postMessage({ type: 'extconn:popup-ready' }, location.origin);
}

/** The popup came back from the callback: hand the outcome to the page that opened it. */
function popupReturn(r) {
  if (!window.opener) {
    notice('The window that started this sign-in is gone. Close this window and start again from your DAM.');
    return;
  }
  window.opener.postMessage({ type: 'extconn:authorized', provider: r.provider, grant_id: r.grant_id,
    reconnected: r.reconnected, error: r.error }, location.origin);
  window.close();
}

/** What the page does with the callback's outcome. */
async function handleReturn(r, intent) {
  const box = $('messages');
  if (r.error || !r.grant_id) {
    showMessage(box, oauthErrorText(r.error || 'oauth/provider-error', r.provider), 'error');
    return;
  }
  if (intent && intent.intent === 'reconnect') {
    const who = intent.account || `your ${serviceName(r.provider)} account`;
    if (r.reconnected) {
      showMessage(box, `Reconnected ${who}: its connections sync again.`, 'success');
    } else {
      showMessage(box, `You signed in to ${serviceName(r.provider)} with another account than ${who}; nothing was reconnected. Use Reconnect again and sign in as ${who}.`, 'warning');
    }
    await loadRows();
    return;
  }
  if (state.providers.includes(r.provider) && state.service !== r.provider) {
    setService(r.provider);
    await loadRows();
  }
  openPicker({
    api, grantId: r.grant_id, provider: r.provider, opener: $('add'),
    onCreated: (details) => {
      upsert(details);
      ensurePolling(details.id);
      showMessage(box, `Connected ${details.folder_name}: the initial import has started.`, 'success');
    },
  });
}

// ---- the page ---------------------------------------------------------------------------------

function notice(text) {
  $('loading').hidden = true;
  $('manage').hidden = true;
  const n = $('notice');
  n.replaceChildren(h('p', {}, text));
  n.hidden = false;
}

function clearMessages() {
  $('messages').replaceChildren();
}

async function start() {
  const gen = ++state.gen;
  for (const t of state.polls.values()) clearTimeout(t);
  state.polls.clear();
  state.rows.clear();
  state.order = [];
  state.runs.clear();
  state.accounts.clear();
  state.rowErrors.clear();
  for (const { tr } of state.els.values()) tr.remove();
  state.els.clear();
  $('notice').hidden = true;
  $('manage').hidden = true;
  $('loading').hidden = false;
  $('loading').textContent = 'Loading…';
  let providers;
  try {
    providers = await api.get('/v1/providers');
  } catch (p) {
    if (gen !== state.gen) return;
    if (p.status === 403) {
      notice('You need the client admin permission to manage external connections. Ask an admin of your organization.');
    } else {
      notice(problemText(p, 'Loading External Connections'));
    }
    return;
  }
  if (gen !== state.gen) return;
  const configured = new Set(providers.providers.filter((p) => p.configured).map((p) => p.provider));
  state.providers = SERVICE_ORDER.filter((p) => configured.has(p));
  $('loading').hidden = true;
  if (state.providers.length === 0) {
    notice('No service is set up for your organization yet; ask your platform administrator.');
    return;
  }
  const select = $('service');
  select.replaceChildren(...state.providers.map((p) => h('option', { value: p }, serviceName(p))));
  const saved = load('local', K_SERVICE);
  setService(state.providers.includes(saved) ? saved : state.providers[0]);
  $('manage').hidden = false;
  await loadRows();
}

function setService(p) {
  state.service = p;
  $('service').value = p;
  store('local', K_SERVICE, p);
  $('empty-text').textContent = `No ${serviceName(p)} folders connected yet.`;
  for (const id of ['add', 'empty-add']) {
    $(id).setAttribute('aria-label', `Add ${serviceName(p)} connection`);
  }
}

/** Loads the first page of the selected service's rows (`append`: the next page). */
async function loadRows(append = false) {
  const gen = state.gen;
  const service = state.service;
  if (!append) $('table-loading').hidden = state.order.length > 0;
  let page;
  try {
    page = await api.get(withQuery('/v1/connections', {
      provider: service, limit: 50, page: append ? state.nextPage : undefined,
    }));
  } catch (p) {
    if (gen !== state.gen) return;
    $('table-loading').hidden = true;
    showMessage($('messages'), problemText(p, 'Loading the connections'), 'error');
    return;
  }
  if (gen !== state.gen || service !== state.service) return;
  $('table-loading').hidden = true;
  if (!append) {
    const keep = new Set(page.items.map((r) => r.id));
    for (const id of [...state.order]) if (!keep.has(id)) forget(id);
    state.order = [];
  }
  for (const row of page.items) {
    if (!state.order.includes(row.id)) state.order.push(row.id);
    const had = state.rows.get(row.id);
    state.rows.set(row.id, had ? { ...had, ...row } : row);
    ensurePolling(row.id);
  }
  state.nextPage = page.next_page;
  render();
}

function forget(id) {
  clearTimeout(state.polls.get(id));
  state.polls.delete(id);
  state.rows.delete(id);
  state.runs.delete(id);
  state.rowErrors.delete(id);
  state.order = state.order.filter((x) => x !== id);
  const els = state.els.get(id);
  if (els) els.tr.remove();
  state.els.delete(id);
}

/** A row or details the API answered (create, toggle, poll): stored and shown. */
function upsert(d) {
  if (d.provider !== state.service) return;
  const had = state.rows.get(d.id);
  state.rows.set(d.id, had ? { ...had, ...d } : d);
  if (d.account) state.accounts.set(d.id, d.account);
  if (Array.isArray(d.recent_runs)) {
    state.runs.set(d.id, d.recent_runs.find((r) => r.id === d.current_run_id) || null);
  }
  if (!state.order.includes(d.id)) state.order.unshift(d.id);
  render();
}

const isOpen = (row) => Boolean(row.current_run_id) || row.status === 'syncing';

/**
 * Keeps a row fresh: while a run is open its details are polled every POLL_MS (the open run's
 * counters are the progress). An idle row is fetched only if it came without its account.
 */
function ensurePolling(id) {
  if (state.polls.has(id)) return;
  const row = state.rows.get(id);
  if (!row) return;
  const open = isOpen(row);
  if (!open && state.accounts.has(id)) return;
  const gen = state.gen;
  state.polls.set(id, setTimeout(() => poll(id, gen), open ? POLL_MS : 0));
}

async function poll(id, gen) {
  let d;
  try {
    d = await api.get(`/v1/connections/${encodeURIComponent(id)}`);
  } catch (p) {
    if (gen !== state.gen) return;
    state.polls.delete(id);
    if (p.status === 404) {
      forget(id);
      render();
    }
    return;
  }
  if (gen !== state.gen || !state.rows.has(id)) return;
  state.polls.delete(id);
  const wasOpen = isOpen(state.rows.get(id));
  upsert(d);
  if (isOpen(d)) ensurePolling(id);
  else if (wasOpen) announce(`${d.folder_name}: sync finished, ${files(d.counters.files)} imported.`);
}

// ---- rendering ------------------------------------------------------------------------------

function render() {
  const tbody = $('rows');
  const empty = state.order.length === 0;
  $('connections').hidden = empty;
  $('empty').hidden = !empty || !$('table-loading').hidden;
  $('more-rows').hidden = !state.nextPage;
  state.order.forEach((id, i) => {
    let els = state.els.get(id);
    if (!els) {
      els = buildRow(id);
      state.els.set(id, els);
    }
    if (tbody.children[i] !== els.tr) tbody.insertBefore(els.tr, tbody.children[i] || null);
    updateRow(id, els);
  });
}

function buildRow(id) {
  const name = h('span', { class: 'folder-name' });
  const sub = h('div', { class: 'folder-sub' });
  const state_ = h('div', { class: 'row-state' });
  const attention = h('div', { class: 'attention' });
  const msgs = h('div', { class: 'inline-messages' });
  const last = h('span', { class: 'last-synced' });
  const by = h('span', {});
  const sw = h('button', { type: 'button', role: 'switch', class: 'switch', 'aria-checked': 'false' },
    h('span', { class: 'track', 'aria-hidden': 'true' }, h('span', { class: 'thumb' })),
    h('span', { class: 'switch-label' }));
  const refresh = h('button', { type: 'button', class: 'btn btn-secondary btn-small refresh' }, icon('refresh'), 'Refresh Items');
  const details = h('button', { type: 'button', class: 'icon-btn details' }, icon('link'));
  const del = h('button', { type: 'button', class: 'icon-btn delete' }, icon('trash'));
  const tr = h('tr', { 'data-id': id },
    h('td', { class: 'col-folder', 'data-label': 'Folder Name' }, name, sub, state_, attention, msgs),
    h('td', { class: 'col-last', 'data-label': 'Last Synced' }, last),
    h('td', { class: 'col-by', 'data-label': 'Synced by' }, by),
    h('td', { class: 'col-auto', 'data-label': 'Auto sync' }, sw),
    h('td', { class: 'col-actions' }, h('div', { class: 'actions' }, refresh, details, del)));
  sw.addEventListener('click', () => toggleAuto(id, sw));
  refresh.addEventListener('click', () => runAction(id, 'refresh', 'Refresh Items', refresh));
  details.addEventListener('click', () => showDetails(id, details));
  del.addEventListener('click', () => confirmDelete(id, del));
  return { tr, name, sub, state: state_, attention, attentionKey: null, msgs, msgKey: null, last, by, sw, refresh, details, del };
}

function updateRow(id, els) {
  const row = state.rows.get(id);
  const folder = row.folder_name || row.folder_path || 'Folder';
  els.name.textContent = folder;
  const account = state.accounts.get(id);
  const subParts = [row.folder_path];
  if (account) subParts.push(account.email ? `${account.name} (${account.email})` : account.name);
  els.sub.textContent = subParts.filter(Boolean).join(' · ');

  // Status, progress, failures.
  const open = isOpen(row);
  const bits = [];
  if (open) {
    const run = state.runs.get(id);
    const c = run ? run.counters : null;
    const done = c ? c.scanned : 0;
    // Files done of files found so far (the listing is read page by page, so `found` grows).
    const found = c && typeof c.found === 'number' && c.found > 0 ? c.found : null;
    const bar = h('progress', { max: found || undefined, value: found ? done : undefined,
      'aria-label': `Sync progress of ${folder}` });
    const label = row.last_synced_at ? 'Syncing' : 'Importing';
    const text = found ? `${label}: ${done} of ${files(found)}` : `${label}: ${files(done)} done`;
    bits.push(h('span', { class: 'progress' }, bar, h('span', {}, text)));
  } else if (row.status !== 'active') {
    bits.push(h('span', { class: `pill pill-${row.status}` }, statusText(row.status)));
  } else {
    bits.push(h('span', { class: 'count' }, `${files(row.counters.files)} · ${bytes(row.counters.bytes)}`));
  }
  if (row.counters.failed > 0) {
    bits.push(h('span', { class: 'badge badge-failed' }, `${row.counters.failed} failed`));
  }
  els.state.replaceChildren(...bits);

  // What needs the admin: rebuilt only when it changes (its buttons may hold focus).
  const key = `${row.status}|${row.status_reason}|${row.held_deletions}`;
  if (els.attentionKey !== key) {
    els.attentionKey = key;
    els.attention.replaceChildren(...attentionFor(id, row, folder));
  }

  // Last synced.
  if (row.last_synced_at) {
    els.last.textContent = relativeTime(row.last_synced_at);
    els.last.title = exactTime(row.last_synced_at);
  } else {
    els.last.textContent = open ? 'Importing…' : 'Never';
    els.last.removeAttribute('title');
  }
  els.by.textContent = (row.synced_by && (row.synced_by.display_name || row.synced_by.user_id)) || '—';

  els.sw.setAttribute('aria-checked', String(row.auto_sync));
  els.sw.setAttribute('aria-label', `Auto sync for ${folder}`);
  els.sw.querySelector('.switch-label').textContent = row.auto_sync ? 'On' : 'Off';
  // Refresh Items exists only while Auto sync is on (the API refuses it otherwise), and not
  // while the account must be reconnected or deletions wait for review: the row's own action
  // (Reconnect, Confirm deletions) is what unblocks it then.
  els.refresh.hidden = !row.auto_sync || row.status === 'reauth_required' || row.status === 'needs_review';
  els.refresh.setAttribute('aria-label', `Refresh Items of ${folder}`);
  els.details.setAttribute('aria-label', `Details for ${folder}`);
  els.del.setAttribute('aria-label', `Delete ${folder}`);

  const errs = state.rowErrors.get(id) || [];
  const msgKey = errs.join('\n');
  if (els.msgKey !== msgKey) {
    els.msgKey = msgKey;
    els.msgs.replaceChildren();
    for (const text of errs) {
      showMessage(els.msgs, text, 'error', () => {
        const list = state.rowErrors.get(id) || [];
        const at = list.indexOf(text);
        if (at >= 0) list.splice(at, 1);
        els.msgKey = list.join('\n');
      });
    }
  }
}

function attentionFor(id, row, folder) {
  const reason = row.status_reason ? h('p', {}, sentence(row.status_reason)) : null;
  switch (row.status) {
    case 'reauth_required': {
      const btn = h('button', { type: 'button', class: 'btn btn-primary btn-small' }, 'Reconnect');
      btn.setAttribute('aria-label', `Reconnect the ${serviceName(row.provider)} account of ${folder}`);
      btn.addEventListener('click', () => {
        const a = state.accounts.get(id);
        startOAuth(row.provider, 'reconnect', a ? a.name : null, btn);
      });
      return [h('div', { class: 'attention-box attention-warn' },
        reason || h('p', {}, `The ${serviceName(row.provider)} account's access was revoked or expired.`),
        h('p', { class: 'muted' }, 'Nothing syncs until the account is reconnected.'),
        h('div', { class: 'attention-actions' }, btn))];
    }
    case 'needs_review': {
      const n = row.held_deletions || 0;
      const apply = h('button', { type: 'button', class: 'btn btn-primary btn-small' }, 'Confirm deletions');
      const discard = h('button', { type: 'button', class: 'btn btn-secondary btn-small' }, 'Discard');
      apply.addEventListener('click', () => runAction(id, 'confirm-deletions', 'Confirm deletions', apply, { action: 'apply' }));
      discard.addEventListener('click', () => runAction(id, 'confirm-deletions', 'Discard', discard, { action: 'discard' }));
      return [h('div', { class: 'attention-box attention-warn' },
        h('p', { class: 'strong' }, `${files(n)} would be marked deleted.`),
        reason,
        h('p', { class: 'muted' }, 'Nothing syncs until you answer. Confirm applies the deletions (the assets stay); Discard lists the folder again in full.'),
        h('div', { class: 'attention-actions' }, apply, discard))];
    }
    case 'error':
      return [h('div', { class: 'attention-box attention-error' },
        reason || h('p', {}, 'The last sync failed.'),
        h('p', { class: 'muted' }, 'The next sync tries again.'))];
    case 'folder_unavailable':
      return [h('div', { class: 'attention-box attention-error' },
        reason || h('p', {}, 'The connected folder is gone or can no longer be read.'),
        h('p', { class: 'muted' }, 'Restore the folder or its sharing, then use Refresh Items.'))];
    default:
      return [];
  }
}

function rowError(id, text) {
  const list = state.rowErrors.get(id) || [];
  list.push(text);
  state.rowErrors.set(id, list);
  render();
}

// ---- actions -------------------------------------------------------------------------------

async function toggleAuto(id, sw) {
  const row = state.rows.get(id);
  if (!row || sw.getAttribute('aria-busy') === 'true') return;
  const on = !row.auto_sync;
  sw.setAttribute('aria-busy', 'true');
  try {
    const d = await api.patch(`/v1/connections/${encodeURIComponent(id)}`, { auto_sync: on });
    upsert(d);
    showMessage($('messages'), `Auto sync turned ${on ? 'on' : 'off'} for ${d.folder_name}.`, 'success');
  } catch (p) {
    if (p.status === 404) return gone(id);
    rowError(id, problemText(p, `Turning Auto sync ${on ? 'on' : 'off'}`));
  } finally {
    sw.removeAttribute('aria-busy');
  }
}

/** POST …/{op} (refresh, retry-failed, confirm-deletions): 202 and a run to watch. */
async function runAction(id, op, what, button, body) {
  const row = state.rows.get(id);
  if (!row) return;
  button.disabled = true;
  try {
    await api.post(`/v1/connections/${encodeURIComponent(id)}/${op}`, body);
    const words = {
      refresh: `Refreshing ${row.folder_name}.`,
      'retry-failed': `Retrying the failed files of ${row.folder_name}.`,
      'confirm-deletions': body && body.action === 'discard'
        ? `Discarded the held deletions of ${row.folder_name}; the folder is listed again in full.`
        : `Confirmed the deletions of ${row.folder_name}; they are applied now.`,
    }[op];
    if (op === 'refresh') announce(words); else showMessage($('messages'), words, 'success');
    clearTimeout(state.polls.get(id));
    state.polls.delete(id);
    await poll(id, state.gen);
  } catch (p) {
    if (p.status === 404) return gone(id);
    rowError(id, problemText(p, what));
  } finally {
    button.disabled = false;
  }
}

function gone(id) {
  const row = state.rows.get(id);
  forget(id);
  render();
  showMessage($('messages'), `${row ? row.folder_name : 'That connection'} no longer exists (someone may have deleted it).`, 'info');
}

function confirmDelete(id, opener) {
  const row = state.rows.get(id);
  if (!row) return;
  const dialog = $('delete-dialog');
  $('delete-title').textContent = `Delete ${row.folder_name}?`;
  $('delete-text').textContent = `The connection of “${row.folder_name}” (${row.folder_path}) stops syncing and is removed. Files already imported stay in the DAM as assets.`;
  $('delete-error').replaceChildren();
  const confirm = $('delete-confirm');
  confirm.disabled = false;
  confirm.onclick = async () => {
    confirm.disabled = true;
    try {
      await api.del(`/v1/connections/${encodeURIComponent(id)}`);
      forget(id);
      render();
      dialog.close();
      showMessage($('messages'), `Deleted ${row.folder_name}. Its imported assets stay in the DAM.`, 'success');
    } catch (p) {
      confirm.disabled = false;
      if (p.status === 404) { dialog.close(); return gone(id); }
      showMessage($('delete-error'), problemText(p, 'Deleting'), 'error');
    }
  };
  $('delete-cancel').onclick = () => dialog.close();
  openDialog(dialog, opener, () => $('add'));
  $('delete-cancel').focus();
}

function showDetails(id, opener) {
  const row = state.rows.get(id);
  if (!row) return;
  openDetails({
    api, id, folder: row.folder_name, opener,
    fallback: () => $('add'),
    onRow: (d) => { upsert(d); ensurePolling(id); },
    onGone: () => gone(id),
  });
}

// ---- wiring ----------------------------------------------------------------------------------

$('service').addEventListener('change', () => {
  setService($('service').value);
  for (const t of state.polls.values()) clearTimeout(t);
  state.polls.clear();
  for (const id of [...state.order]) forget(id);
  render();
  loadRows();
});
for (const id of ['add', 'empty-add']) {
  $(id).addEventListener('click', (e) => startOAuth(state.service, 'add', null, e.currentTarget));
}
$('more-rows').addEventListener('click', () => loadRows(true));

// Relative times age, and Auto sync changes rows in the background: the list is read again
// now and then while the page is visible.
setInterval(() => {
  if (document.visibilityState !== 'visible' || !state.service || $('manage').hidden) return;
  loadRows();
}, LIST_REFRESH_MS);

// Back from the provider through the browser's back/forward cache: the buttons were disabled.
window.addEventListener('pageshow', (e) => {
  if (e.persisted) for (const id of ['add', 'empty-add']) $(id).disabled = false;
});

boot();
