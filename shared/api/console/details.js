// A connection's details: `GET /v1/connections/{id}` (account, status, counters, settings,
// recent runs) and its files by state (`/items?state=failed|skipped|imported`), with Retry
// failed. Shown in a modal dialog; read again after an action, and every few seconds while a
// run is open.

import { withQuery } from './api.js';
import { $, h, showMessage, openDialog } from './dom.js';
import {
  serviceName, problemText, reasonText, relativeTime, exactTime, files, bytes, statusText,
  runStatusText, triggerText, sentence,
} from './words.js';

const POLL_MS = 1500;

export function openDetails({ api, id, folder, opener, fallback, onRow, onGone }) {
  const dialog = $('details');
  const body = $('details-body');
  const base = `/v1/connections/${encodeURIComponent(id)}`;
  let timer = null;
  let closed = false;
  const messages = h('div', { class: 'inline-messages' });

  $('details-title').textContent = `Details of ${folder}`;
  body.replaceChildren(h('p', { class: 'loading' }, 'Loading details…'));
  dialog.addEventListener('close', () => { closed = true; clearTimeout(timer); }, { once: true });
  openDialog(dialog, opener, fallback);

  async function itemsOf(stateName, limit = 50) {
    return api.get(withQuery(`${base}/items`, { state: stateName, limit }));
  }

  async function refresh() {
    clearTimeout(timer);
    let d;
    let failed;
    let skipped;
    let imported;
    try {
      [d, failed, skipped, imported] = await Promise.all([
        api.get(base), itemsOf('failed'), itemsOf('skipped'), itemsOf('imported', 200),
      ]);
    } catch (p) {
      if (closed) return;
      if (p.status === 404) { dialog.close(); onGone(); return; }
      body.replaceChildren(messages);
      showMessage(messages, problemText(p, 'Loading the details'), 'error');
      return;
    }
    if (closed) return;
    onRow(d);
    render(d, failed, skipped, imported.items.filter((i) => i.warning));
    if (d.current_run_id || d.status === 'syncing') timer = setTimeout(refresh, POLL_MS);
  }

  function render(d, failed, skipped, warned) {
    const keepFocus = document.activeElement && body.contains(document.activeElement)
      ? document.activeElement.dataset.focusKey : null;
    const acct = d.account
      ? `${d.account.name}${d.account.email ? ` (${d.account.email})` : ''}`
      : 'Unknown (the account was disconnected)';
    const dl = (pairs) => h('dl', { class: 'facts' }, ...pairs.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
    const status = [h('span', { class: `pill pill-${d.status}` }, statusText(d.status))];
    if (d.status_reason) status.push(' ', sentence(d.status_reason));
    if (d.status === 'needs_review') status.push(` (${files(d.held_deletions || 0)} would be marked deleted)`);

    const summary = dl([
      [`${serviceName(d.provider)} account`, acct],
      ['Folder', d.folder_path],
      ['Status', h('span', {}, ...status)],
      ['Imported', `${files(d.counters.files)} · ${bytes(d.counters.bytes)}`],
      ['Failed', files(d.counters.failed)],
      ['Last synced', d.last_synced_at ? h('span', { title: exactTime(d.last_synced_at) }, relativeTime(d.last_synced_at)) : 'Never'],
      ['Auto sync', d.auto_sync ? `On, every ${every(d.settings.sync_interval_secs)}` : 'Off'],
      ['Subfolders', d.settings.include_subfolders ? 'Included' : 'Not included'],
      ['Largest file', bytes(d.settings.max_file_size)],
    ]);

    const runs = d.recent_runs.length
      ? h('table', { class: 'mini' },
        h('thead', {}, h('tr', {}, ...['Run', 'Status', 'When', 'Imported', 'Updated', 'Skipped', 'Failed', 'Deleted'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, ...d.recent_runs.map((r) => {
          const when = r.finished_at || r.started_at || r.queued_at;
          return h('tr', {},
            h('td', { 'data-label': 'Run' }, triggerText(r.trigger) + (r.retry_failed ? ' (retry failed)' : '')),
            h('td', { 'data-label': 'Status' }, runStatusText(r.status), r.error ? h('div', { class: 'muted' }, r.error) : null),
            h('td', { 'data-label': 'When' }, h('span', { title: exactTime(when) }, relativeTime(when))),
            ...['imported', 'updated', 'skipped', 'failed', 'source_deleted'].map((k, i) =>
              h('td', { 'data-label': ['Imported', 'Updated', 'Skipped', 'Failed', 'Deleted'][i] }, String(r.counters[k]))));
        })))
      : h('p', { class: 'muted' }, 'No runs yet.');

    // A large file cut by a worker's time limit is recorded as failed with this reason and
    // continued first by the run's next step: it is shown apart, as not failed.
    const moving = failed.items.filter((i) => i.reason === 'transfer_resuming');
    const failing = failed.items.filter((i) => i.reason !== 'transfer_resuming');
    const retry = h('button', { type: 'button', class: 'btn btn-secondary btn-small', 'data-focus-key': 'retry' }, 'Retry failed');
    retry.disabled = failing.length === 0 || d.status === 'reauth_required' || d.status === 'needs_review';
    retry.addEventListener('click', async () => {
      retry.disabled = true;
      try {
        await api.post(`${base}/retry-failed`);
        showMessage(messages, `Retrying the failed files of ${d.folder_name}.`, 'success');
        await refresh();
      } catch (p) {
        retry.disabled = false;
        if (p.status === 404) { dialog.close(); onGone(); return; }
        showMessage(messages, problemText(p, 'Retry failed'), 'error');
      }
    });

    // A file: its path, why in plain words, the service's or our error text (technical,
    // smaller), and for a failed file how often it was tried and when it is tried again.
    const fileList = (items, empty, why) => (items.length
      ? h('ul', { class: 'file-list' }, ...items.map((i) => h('li', {},
        h('span', { class: 'file-name' }, i.path || i.name),
        ...why(i))))
      : h('p', { class: 'muted' }, empty));
    const reasonLines = (i) => [
      h('span', { class: 'file-why' }, reasonText(i.reason) || 'No reason was recorded.'),
      i.error ? h('span', { class: 'file-error' }, i.error) : null,
    ];
    const more = (page) => (page.next_page ? h('p', { class: 'muted' }, 'Showing the first 50.') : null);

    body.replaceChildren(...[
      messages,
      summary,
      h('section', { class: 'detail-section' },
        h('div', { class: 'section-head' }, h('h3', {}, `Failed files (${failing.length}${failed.next_page ? '+' : ''})`), retry),
        fileList(failing, 'No failed files.', (i) => [
          ...reasonLines(i),
          h('span', { class: 'file-when' }, [
            i.attempts === 1 ? 'Tried once' : `Tried ${i.attempts} times`,
            i.next_attempt_at ? `; tried again automatically ${relativeTime(i.next_attempt_at)}` : '',
          ].join('') + '.'),
        ]),
        more(failed)),
      moving.length ? h('section', { class: 'detail-section' },
        h('h3', {}, `Being transferred (${moving.length})`),
        fileList(moving, '', reasonLines)) : null,
      h('section', { class: 'detail-section' },
        h('h3', {}, `Skipped files (${skipped.items.length}${skipped.next_page ? '+' : ''})`),
        fileList(skipped.items, 'No skipped files.', reasonLines),
        more(skipped)),
      warned.length ? h('section', { class: 'detail-section' },
        h('h3', {}, `Imported with a warning (${warned.length})`),
        fileList(warned, '', (i) => [h('span', { class: 'file-why' }, i.warning)])) : null,
      h('section', { class: 'detail-section' }, h('h3', {}, 'Recent runs'), runs),
    ].filter(Boolean));
    if (keepFocus) {
      const again = body.querySelector(`[data-focus-key="${keepFocus}"]`);
      if (again && !again.disabled) again.focus(); else dialog.focus();
    }
  }

  refresh();
}

function every(secs) {
  if (secs % 3600 === 0) return secs === 3600 ? 'hour' : `${secs / 3600} hours`;
  if (secs % 60 === 0) return secs === 60 ? 'minute' : `${secs / 60} minutes`;
  return `${secs} seconds`;
}
