// Small DOM helpers: element building (no innerHTML of data: every text goes through
// textContent), icons, messages that stay until dismissed, and modal dialogs that give focus
// back to what opened them.

/** `h('button', {class: 'btn', onclick: f}, 'text', child)`; `hidden`/boolean attrs by value. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export const $ = (id) => document.getElementById(id);

const SVG = 'http://www.w3.org/2000/svg';
const PATHS = {
  link: ['M10 14a4 4 0 0 0 5.7 0l3-3a4 4 0 0 0-5.7-5.7l-1 1', 'M14 10a4 4 0 0 0-5.7 0l-3 3a4 4 0 0 0 5.7 5.7l1-1'],
  trash: ['M4 7h16', 'M10 11v6', 'M14 11v6', 'M6 7l1 12a2 2 0 0 0 2 2h6a2 2 0 0 0 2-2l1-12', 'M9 7V4h6v3'],
  close: ['M6 6l12 12', 'M18 6L6 18'],
  folder: ['M3 7a2 2 0 0 1 2-2h4l2 2h8a2 2 0 0 1 2 2v8a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2z'],
  drive: ['M3 15h18', 'M5 15l3-9h8l3 9v4H5z', 'M16 17.5h.01'],
  site: ['M4 20V6l8-3 8 3v14', 'M9 20v-5h6v5', 'M8 9h.01M12 9h.01M16 9h.01'],
  chevron: ['M9 6l6 6-6 6'],
  refresh: ['M20 12a8 8 0 1 1-2.3-5.6', 'M20 4v5h-5'],
};

/** An inline SVG icon (decorative: the button around it carries the accessible name). */
export function icon(name) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  for (const d of PATHS[name]) {
    const p = document.createElementNS(SVG, 'path');
    p.setAttribute('d', d);
    svg.append(p);
  }
  return svg;
}

/** Announces `text` in the page's polite live region (re-announced even if unchanged). */
export function announce(text) {
  const live = $('live');
  live.textContent = '';
  // A separate task, so assistive technology notices the change even for the same text.
  setTimeout(() => { live.textContent = text; }, 50);
}

/**
 * Shows `text` in `container` (kind: `error`, `success`, `warning`, `info`) with a close
 * button; it stays until dismissed (`onClose` runs then) and is announced. Returns the element.
 */
export function showMessage(container, text, kind = 'error', onClose) {
  const close = h('button', { type: 'button', class: 'icon-btn msg-close', 'aria-label': 'Dismiss message' }, icon('close'));
  const msg = h('div', { class: `msg msg-${kind}`, 'data-kind': kind }, h('p', {}, text), close);
  close.addEventListener('click', () => {
    msg.remove();
    if (onClose) onClose();
  });
  // A confirmation replaces the previous ones of its container (they are history by then);
  // errors and warnings stay until dismissed.
  if (kind === 'success' || kind === 'info') {
    for (const old of container.querySelectorAll(':scope > .msg-success, :scope > .msg-info')) old.remove();
  }
  container.append(msg);
  announce(text);
  return msg;
}

/**
 * Opens `dialog` modally. When it closes (button, Esc), focus goes back to `opener`, or, when
 * that element was replaced meanwhile, to what `fallback()` returns.
 */
export function openDialog(dialog, opener, fallback) {
  const back = opener || document.activeElement;
  dialog.addEventListener('close', () => {
    const target = back && back.isConnected ? back : (fallback && fallback());
    if (target) target.focus();
  }, { once: true });
  dialog.showModal();
}
