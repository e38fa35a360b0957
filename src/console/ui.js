// DOM helpers shared by the pages: element building (text only, never HTML strings), formats,
// the confirmation dialog and error boxes.

/// `h('a', {href: '#/x', class: 'c'}, 'text', child)`: an element; strings become text nodes.
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, '');
    else node.setAttribute(name, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/// Replaces what `node` holds.
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

export function bytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let value = Number(n);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export function percent(rate) {
  return rate === null || rate === undefined ? '—' : `${(rate * 100).toFixed(1)} %`;
}

/// An instant as local date and time, with how long ago in its title.
export function when(iso) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  const date = new Date(iso);
  return h('time', { datetime: iso, title: iso }, `${date.toLocaleString([], { dateStyle: 'medium', timeStyle: 'medium' })} (${ago(date)})`);
}

export function ago(date) {
  const s = Math.round((Date.now() - date.getTime()) / 1000);
  if (s < 5) return 'just now';
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 129600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

export function badge(state) {
  return h('span', { class: `badge state-${state}` }, state);
}

export function short(hash) {
  return hash ? h('code', { title: hash }, `${hash.slice(0, 12)}…`) : '—';
}

/// A table: `columns` are `[heading, (row) => cell]`.
export function table(columns, rows, empty = 'Nothing yet.') {
  if (!rows.length) return h('p', { class: 'muted empty' }, empty);
  return h('div', { class: 'scroll' }, h('table', {},
    h('thead', {}, h('tr', {}, columns.map(([name]) => h('th', {}, name)))),
    h('tbody', {}, rows.map((row) => h('tr', {}, columns.map(([, cell]) => h('td', {}, cell(row))))))));
}

/// A definition list of `[term, value]` pairs.
export function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.flatMap(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]));
}

/// An error box; 401 and 403 offer to sign in with another token.
export function errorBox(error, onSignIn) {
  const box = h('div', { class: `error status-${error.status ?? 'x'}`, role: 'alert' }, h('strong', {}, error.message));
  if ((error.status === 401 || error.status === 403) && onSignIn) {
    box.append(' ', h('button', { type: 'button', class: 'link', onclick: onSignIn }, 'Sign in with another token'));
  }
  return box;
}

/// Asks for a confirmation in the page's dialog; resolves true on Confirm.
export function confirm(message, confirmLabel = 'Confirm') {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = message;
  document.getElementById('confirm-ok').textContent = confirmLabel;
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.returnValue = '';
    dialog.showModal();
  });
}

export function section(title, ...children) {
  return h('section', { class: 'card' }, h('h2', {}, title), ...children);
}
