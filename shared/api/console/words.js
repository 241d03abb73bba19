// What the page says: problems (docs/api.md's catalog), file reasons and times in plain words.

export const SERVICE_ORDER = ['google_drive', 'sharepoint', 'dropbox'];
const NAMES = { google_drive: 'Google Drive', sharepoint: 'SharePoint', dropbox: 'Dropbox' };
export const serviceName = (p) => NAMES[p] || p;

/**
 * The outcome of an OAuth callback that came back with `error=<slug>`: what happened and what
 * to do, for a person (never the raw slug alone).
 */
export function oauthErrorText(slug, provider) {
  const svc = serviceName(provider);
  switch (slug) {
    case 'oauth/access-denied':
      return `You declined access at ${svc}; nothing was connected.`;
    case 'oauth/invalid-state':
    case 'oauth/state-expired':
      return 'The sign-in took too long or was started in another browser; try again.';
    case 'oauth/provider-mismatch':
      return `The sign-in came back from another service than ${svc}; nothing was connected. Try again.`;
    case 'oauth/provider-error':
      return `${svc} reported an error during sign-in; nothing was connected. Try again in a moment.`;
    case 'oauth/exchange-failed':
      return `${svc} accepted the sign-in but the connection could not be completed; try again.`;
    case 'provider-unavailable':
      return `${svc} is not responding right now; nothing was connected. Try again in a few minutes.`;
    case 'provider-not-configured':
      return `${svc} is not set up for your organization yet; ask your platform administrator.`;
    default:
      return `Connecting ${svc} did not work (${slug}); nothing was connected. Try again.`;
  }
}

/** A failed API call in plain words; `what` names what was being done ("Refresh Items"). */
export function problemText(p, what) {
  const pre = what ? `${what}: ` : '';
  switch (p.slug) {
    case 'network':
      return `${pre}the server could not be reached. Check your connection and try again.`;
    case 'unauthenticated':
      return `${pre}your session has expired. Sign in again.`;
    case 'forbidden':
      return 'You need the client admin permission to manage external connections. Ask an admin of your organization.';
    case 'not-found':
      return `${pre}it no longer exists (someone may have deleted it). The list has been reloaded.`;
    case 'already-connected':
      return 'This folder is already connected. Pick another folder, or manage the existing connection in the table.';
    case 'auto-sync-off':
      return `${pre}Auto sync is off for this connection; turn it on to refresh.`;
    case 'reauth-required':
      return `${pre}the account's access has to be renewed first: use Reconnect.`;
    case 'needs-review':
      return `${pre}deletions are waiting for your review first: confirm or discard them.`;
    case 'nothing-to-review':
      return `${pre}there are no deletions waiting for review any more.`;
    case 'folder-not-accessible':
      return 'This account cannot read that folder. Pick another folder, or ask its owner to share it.';
    case 'provider-unavailable':
      return `${pre}the service is not responding right now. Try again in a few minutes.`;
    case 'provider-not-configured':
      return `${pre}this service is not set up for your organization yet.`;
    case 'invalid-request':
      return `${pre}${p.detail || 'the request was not accepted.'}`;
    default:
      return `${pre}${p.detail || p.title || 'something went wrong'}${p.status >= 500 ? '. Try again in a moment.' : ''}`;
  }
}

const REASONS = {
  access_denied: 'The account may not read this file.',
  hash_mismatch: 'The downloaded file did not match what the service announced.',
  sink_error: 'The file could not be written to the asset store.',
  store_rejected: 'The file’s record was refused by the database.',
  transfer_deadline: 'The transfer did not finish in time.',
  transfer_resuming: 'A large file still being transferred: the next step of the sync continues it where it stopped.',
  transfer_restarted: 'A resumed transfer had to start over (the file changed, or the stored part was lost) and ran out of tries.',
  rate_limited: 'The service limited the download rate.',
  provider_unavailable: 'The service failed while sending this file.',
  provider_refused: 'The service does not serve this file.',
  shortcut: 'A link to another item; it is imported where it lives.',
  too_large: 'Larger than the maximum file size.',
  deleted_at_source: 'Deleted at the source; the asset stays.',
  export_too_large: 'Too large to export.',
  not_downloadable: 'The file cannot be downloaded.',
};
export const reasonText = (code) => REASONS[code] || (code ? code.replace(/_/g, ' ') : '');

const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;
export const files = (n) => plural(n, 'file', 'files');

/** "3 minutes ago" / "in 2 hours" relative to `now` (ms). */
export function relativeTime(iso, now = Date.now()) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const s = Math.round((now - t) / 1000);
  const a = Math.abs(s);
  const fmt = (n, unit) => {
    const txt = plural(n, unit, unit + 's');
    return s >= 0 ? `${txt} ago` : `in ${txt}`;
  };
  if (a < 45) return s >= 0 ? 'just now' : 'in a moment';
  if (a < 90 * 60) return fmt(Math.max(1, Math.round(a / 60)), 'minute');
  if (a < 36 * 3600) return fmt(Math.round(a / 3600), 'hour');
  return fmt(Math.round(a / 86400), 'day');
}

/** The exact local time, for a tooltip. */
export const exactTime = (iso) =>
  new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

export function bytes(n) {
  if (!n) return '0 B';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${v >= 10 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

const STATUS = {
  active: 'Active',
  syncing: 'Syncing',
  reauth_required: 'Needs reconnecting',
  folder_unavailable: 'Folder unavailable',
  error: 'Error',
  needs_review: 'Needs review',
};
export const statusText = (s) => STATUS[s] || s;

const RUN_STATUS = {
  queued: 'Queued', running: 'Running', succeeded: 'Succeeded', partial: 'Finished with failures',
  failed: 'Failed', reauth_required: 'Needs reconnecting', needs_review: 'Held for review',
};
export const runStatusText = (s) => RUN_STATUS[s] || s;
const TRIGGER = { initial: 'Initial import', manual: 'Refresh Items', schedule: 'Auto sync', webhook: 'Change notification' };
export const triggerText = (t) => TRIGGER[t] || (t ? t.replace(/_/g, ' ') : '');

/** The API's reasons are lowercase clauses ("the account's authorization was revoked…"). */
export const sentence = (s) => (s ? s.charAt(0).toUpperCase() + s.slice(1) + (/[.!?]$/.test(s) ? '' : '.') : '');
