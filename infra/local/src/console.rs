//! A minimal built-in console for local mode, until the real admin console exists: start a
//! connection, pick a folder after the provider's consent, and see the management table. It
//! talks to the same API as everything else, with the dev admin token (editable on the page).

use axum::Router;
use axum::response::Html;
use axum::routing::get;

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>External Connections (local)</title>
<meta name="referrer" content="no-referrer">
<style>
 body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;color:#222}
 table{border-collapse:collapse;width:100%} td,th{border-bottom:1px solid #ddd;padding:.4rem;text-align:left}
 button{padding:.35rem .8rem} .muted{color:#777} .err{color:#b00} code{background:#f4f4f4;padding:0 .2rem}
 input[type=text]{width:100%;font-family:monospace;font-size:12px}
</style></head><body>
<h1>External Connections <span class="muted">— local mode</span></h1>
<p class="muted">State lives in memory and is gone when <code>extconn-local serve</code> stops.</p>
<details><summary>Dev token (Ana, client admin of <code>acme</code>)</summary><input type="text" id="token" value="__TOKEN__"></details>
<p id="msg" class="err"></p>
<section id="picker" hidden>
 <h2>Pick a folder</h2>
 <p id="where" class="muted"></p>
 <ul id="folders"></ul>
 <label><input type="checkbox" id="auto" checked> Auto sync</label>
 <button id="create" disabled>Create connection</button>
</section>
<section>
 <h2>Connections</h2>
 <button id="connect">Add Dropbox connection</button> <button id="connect-drive">Add Google Drive connection</button> <button id="connect-sharepoint">Add SharePoint connection</button> <button id="reload">Reload</button>
 <table><thead><tr><th>Provider</th><th>Folder Name</th><th>Last Synced</th><th>Synced by</th><th>Auto sync</th><th>Status</th><th>Files</th><th></th></tr></thead>
 <tbody id="rows"></tbody></table>
</section>
<script>
const $ = id => document.getElementById(id);
const api = async (method, path, body) => {
  const r = await fetch(path, {method, credentials: 'same-origin', headers: {
    'Authorization': 'Bearer ' + $('token').value.trim(), ...(body ? {'Content-Type': 'application/json'} : {})},
    body: body ? JSON.stringify(body) : undefined});
  const data = r.status === 204 ? null : await r.json();
  if (!r.ok) { $('msg').textContent = (data && (data.detail || data.title)) || r.statusText; throw data; }
  $('msg').textContent = ''; return data;
};
const text = s => document.createTextNode(s == null ? '—' : String(s));
const when = t => t ? new Date(t).toLocaleString() : null;
const PROVIDERS = {dropbox: 'Dropbox', google_drive: 'Google Drive', sharepoint: 'SharePoint'};
async function rows() {
  const pages = await Promise.all(Object.keys(PROVIDERS).map(p => api('GET', '/v1/connections?provider=' + p)));
  const body = $('rows'); body.replaceChildren();
  for (const c of pages.flatMap(p => p.items)) {
    const tr = document.createElement('tr');
    for (const v of [PROVIDERS[c.provider] || c.provider, c.folder_name, when(c.last_synced_at), c.synced_by.display_name]) { const td = document.createElement('td'); td.append(text(v)); tr.append(td); }
    const tog = document.createElement('input'); tog.type = 'checkbox'; tog.checked = c.auto_sync;
    tog.onchange = () => api('PATCH', '/v1/connections/' + c.id, {auto_sync: tog.checked}).then(rows);
    const t = document.createElement('td'); t.append(tog); tr.append(t);
    const status = c.status_reason ? c.status + ': ' + c.status_reason : c.status;
    const files = c.counters.failed ? c.counters.files + ' (' + c.counters.failed + ' failed)' : c.counters.files;
    for (const v of [status, files]) { const td = document.createElement('td'); td.append(text(v)); tr.append(td); }
    const act = document.createElement('td');
    const refresh = document.createElement('button'); refresh.textContent = 'Refresh Items';
    refresh.onclick = () => api('POST', '/v1/connections/' + c.id + '/refresh').then(rows);
    const del = document.createElement('button'); del.textContent = 'Delete';
    del.onclick = () => confirm('Delete this connection? Imported assets stay.') && api('DELETE', '/v1/connections/' + c.id).then(rows);
    act.append(refresh, ' ', del); tr.append(act); body.append(tr);
  }
}
const connect = provider => async () => {
  const r = await api('POST', '/v1/connections/authorize', {provider});
  location.href = r.authorization_url;
};
$('connect').onclick = connect('dropbox');
$('connect-drive').onclick = connect('google_drive');
$('connect-sharepoint').onclick = connect('sharepoint');
$('reload').onclick = rows;
const params = new URLSearchParams(location.search);
let chosen = null;
// A picker entry's locator (id + drive id) goes back unchanged as parent/drive or into the new connection.
async function folders(grant, parent, label) {
  $('picker').hidden = false; $('where').textContent = label;
  const q = new URLSearchParams();
  if (parent) { q.set('parent', parent.id); if (parent.drive_id) q.set('drive', parent.drive_id); }
  const page = await api('GET', '/v1/grants/' + grant + '/folders' + (parent ? '?' + q : ''));
  const ul = $('folders'); ul.replaceChildren();
  for (const f of page.items) {
    const li = document.createElement('li');
    const pick = document.createElement('input'); pick.type = 'radio'; pick.name = 'folder';
    pick.disabled = !f.selectable;
    pick.onchange = () => { chosen = f; $('create').disabled = false; };
    const open = document.createElement('a'); open.href = '#'; open.textContent = ' open';
    open.onclick = e => { e.preventDefault(); folders(grant, f, f.path || f.name); };
    li.append(pick, text(' ' + f.name), open); ul.append(li);
  }
}
if (params.get('grant_id')) {
  const grant = params.get('grant_id');
  folders(grant, null, 'Top level');
  $('create').onclick = async () => {
    const body = {grant_id: grant, folder_id: chosen.id, auto_sync: $('auto').checked};
    if (chosen.drive_id) body.drive_id = chosen.drive_id;
    await api('POST', '/v1/connections', body);
    history.replaceState(null, '', '/console'); $('picker').hidden = true; rows();
  };
}
rows(); setInterval(rows, 3000);
</script></body></html>"#;

/// `/console` (the table) and `/console/connect` (where the OAuth callback lands).
pub fn router<S: Clone + Send + Sync + 'static>(admin_token: String) -> Router<S> {
    let page = PAGE.replace("__TOKEN__", &admin_token);
    let serve = move || {
        let page = page.clone();
        async move { Html(page) }
    };
    Router::new().route("/console", get(serve.clone())).route("/console/connect", get(serve))
}
