// The folder picker: a lazy browser over `GET /v1/grants/{grant}/folders` — one level at a time
// (`parent` + `drive` = an entry's `id` + `drive_id`, unchanged; none = the top level), paged
// by `next_page`. Entries are folders, drives (My Drive, shared drives, a OneDrive) or sites;
// only those marked `selectable` can be connected, the others can only be opened. The folder
// that is open can itself be selected. Confirm → `POST /v1/connections`.

import { withQuery } from './api.js';
import { $, h, icon, showMessage, openDialog } from './dom.js';
import { serviceName, problemText } from './words.js';

const KIND = { folder: 'Folder', drive: 'Drive', site: 'Site' };

/** Opens the picker for `grantId`; `onCreated(details)` gets the new connection. */
export function openPicker({ api, grantId, provider, opener, onCreated }) {
  const dialog = $('picker');
  const svc = serviceName(provider);
  // The path opened so far: the top level, then each entry opened.
  const stack = [{ name: svc, id: null, drive_id: null, selectable: false }];
  let selected = null; // {id, drive_id, label}
  let nextPage = null;
  let loadSeq = 0;

  const list = $('picker-list');
  const errors = $('picker-error');
  const confirmErrors = $('picker-confirm-error');
  const auto = $('picker-auto');
  const confirm = $('picker-confirm');

  $('picker-title').textContent = `Choose a ${svc} folder`;
  $('picker-account').textContent = `Open a folder, then select it. Its files, and those of its subfolders, are imported as assets.`;
  auto.setAttribute('aria-checked', 'true');
  errors.replaceChildren();
  confirmErrors.replaceChildren();
  confirm.textContent = 'Connect folder';

  const here = () => stack[stack.length - 1];
  const labelOf = (depth) => stack.slice(1, depth + 1).map((s) => s.name).join(' › ');

  function renderSelection() {
    $('picker-selected').textContent = selected
      ? `Selected: ${selected.label}`
      : 'No folder selected yet.';
    confirm.disabled = !selected;
  }

  function renderNav() {
    const crumbs = $('picker-crumbs');
    crumbs.replaceChildren(...stack.map((s, i) => {
      if (i === stack.length - 1) return h('li', {}, h('span', { 'aria-current': 'location' }, s.name));
      const b = h('button', { type: 'button', class: 'crumb' }, s.name);
      b.addEventListener('click', () => go(i));
      return h('li', {}, b);
    }));
    $('picker-back').disabled = stack.length === 1;
    const cur = here();
    $('picker-here').textContent = stack.length === 1 ? `Top level of ${svc}` : cur.name;
    const selHere = $('picker-select-here');
    selHere.hidden = stack.length === 1;
    const chosen = selected && selected.id === cur.id && (selected.drive_id || null) === (cur.drive_id || null);
    selHere.disabled = !cur.selectable || chosen;
    selHere.textContent = !cur.selectable ? 'This cannot be connected; open a folder in it'
      : chosen ? 'Selected' : 'Select this folder';
  }

  function select(entry, label) {
    selected = { id: entry.id, drive_id: entry.drive_id || null, label };
    confirmErrors.replaceChildren();
    renderSelection();
    renderNav();
  }

  function entryRow(entry) {
    const depth = stack.length;
    const open = h('button', { type: 'button', class: 'folder-open' },
      icon(entry.kind === 'drive' ? 'drive' : entry.kind === 'site' ? 'site' : 'folder'),
      h('span', { class: 'folder-open-name' }, entry.name),
      entry.kind !== 'folder' ? h('span', { class: 'kind' }, KIND[entry.kind] || entry.kind) : null,
      icon('chevron'));
    open.setAttribute('aria-label', `Open ${entry.name}`);
    open.addEventListener('click', () => {
      stack.push({ name: entry.name, id: entry.id, drive_id: entry.drive_id || null, selectable: entry.selectable });
      go(stack.length - 1);
    });
    let pick = null;
    if (entry.selectable) {
      pick = h('button', { type: 'button', class: 'btn btn-quiet btn-small' }, 'Select');
      pick.setAttribute('aria-label', `Select ${entry.name}`);
      pick.addEventListener('click', () => {
        select(entry, [labelOf(depth - 1), entry.name].filter(Boolean).join(' › '));
      });
    }
    return h('li', {}, open, pick);
  }

  /** Shows level `depth` of the stack (dropping deeper ones) and loads its first page. */
  async function go(depth) {
    stack.length = depth + 1;
    renderNav();
    list.replaceChildren();
    nextPage = null;
    await loadPage(false);
    // Focus stays in the browser: on the first entry if any, else on the path.
    const first = list.querySelector('button');
    (first || $('picker-back')).focus();
  }

  async function loadPage(append) {
    const seq = ++loadSeq;
    const cur = here();
    const status = $('picker-status');
    status.hidden = false;
    status.textContent = 'Loading folders…';
    $('picker-more').hidden = true;
    errors.replaceChildren();
    let page;
    try {
      page = await api.get(withQuery(`/v1/grants/${encodeURIComponent(grantId)}/folders`, {
        parent: cur.id, drive: cur.id ? cur.drive_id : undefined, page: append ? nextPage : undefined,
      }));
    } catch (p) {
      if (seq !== loadSeq) return;
      status.hidden = true;
      const again = h('button', { type: 'button', class: 'btn btn-quiet btn-small' }, 'Try again');
      const m = showMessage(errors, problemText(p, 'Listing the folders'), 'error');
      again.addEventListener('click', () => { m.remove(); loadPage(append); });
      m.querySelector('p').append(' ', again);
      return;
    }
    if (seq !== loadSeq) return;
    list.append(...page.items.map(entryRow));
    nextPage = page.next_page;
    $('picker-more').hidden = !nextPage;
    const none = list.children.length === 0;
    status.hidden = !none;
    status.textContent = none ? 'No folders in here.' : '';
  }

  $('picker-back').onclick = () => go(stack.length - 2);
  $('picker-more').onclick = () => loadPage(true);
  $('picker-select-here').onclick = () => {
    const cur = here();
    if (cur.selectable) select(cur, labelOf(stack.length - 1));
  };
  auto.onclick = () => auto.setAttribute('aria-checked', String(auto.getAttribute('aria-checked') !== 'true'));
  $('picker-cancel').onclick = () => dialog.close();
  confirm.onclick = async () => {
    if (!selected) return;
    confirm.disabled = true;
    confirm.textContent = 'Connecting…';
    confirmErrors.replaceChildren();
    const body = { grant_id: grantId, folder_id: selected.id, auto_sync: auto.getAttribute('aria-checked') === 'true' };
    if (selected.drive_id) body.drive_id = selected.drive_id;
    try {
      const details = await api.post('/v1/connections', body);
      dialog.close();
      onCreated(details);
    } catch (p) {
      confirm.disabled = false;
      confirm.textContent = 'Connect folder';
      const fields = { '/folder_id': 'The folder', '/drive_id': 'The drive', '/grant_id': 'The account', '/auto_sync': 'Auto sync' };
      if (p.invalidParams.length) {
        for (const ip of p.invalidParams) {
          showMessage(confirmErrors, `${fields[ip.name] || ip.name}: ${ip.reason}`, 'error');
        }
      } else {
        showMessage(confirmErrors, problemText(p, 'Connecting the folder'), 'error');
      }
    }
  };

  renderSelection();
  openDialog(dialog, opener, () => $('add'));
  go(0);
}
