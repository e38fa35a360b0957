// Releases: filter by hardware and state; version, hardware, channels, size, state, who
// created each and when.

import { get } from './api.js';
import { badge, bytes, errorBox, fill, h, table, when } from './ui.js';

const PER_PAGE = 25;

export async function render({ main, query, signIn }) {
  const hardware = query.get('hardware') || '';
  const state = query.get('state') || '';
  const page = Number(query.get('page') || 1);
  const params = new URLSearchParams({ page, per_page: PER_PAGE });
  if (hardware) params.set('hardware', hardware);
  if (state) params.set('state', state);

  const go = (changes) => {
    const next = new URLSearchParams({ hardware, state, page: 1, ...changes });
    for (const [k, v] of [...next]) if (!v) next.delete(k);
    location.hash = `#/releases?${next}`;
  };
  const hardwareInput = h('input', { id: 'filter-hardware', value: hardware, placeholder: 'nw-s1', size: 12 });
  const stateSelect = h('select', { id: 'filter-state' },
    ['', 'draft', 'published', 'revoked'].map((s) => h('option', { value: s, selected: s === state }, s || 'any')));
  const filters = h('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); go({ hardware: hardwareInput.value.trim(), state: stateSelect.value }); } },
    h('label', {}, 'Hardware ', hardwareInput),
    h('label', {}, 'State ', stateSelect),
    h('button', { type: 'submit' }, 'Filter'),
    h('a', { class: 'button secondary', href: '#/upload' }, 'Upload a release'));
  const body = h('div', { id: 'releases' }, h('p', { class: 'muted' }, 'Loading…'));
  fill(main, h('h1', {}, 'Releases'), filters, body);

  let list;
  try {
    list = await get(`/v1/admin/firmware?${params}`);
  } catch (error) {
    fill(body, errorBox(error, signIn));
    return null;
  }
  const pages = Math.max(1, Math.ceil(list.total / list.per_page));
  fill(body,
    table([
      ['Version', (r) => h('a', { href: `#/release/${r.id}`, class: 'version' }, r.version)],
      ['Hardware', (r) => r.hardware.join(', ')],
      ['Channels', (r) => r.channels.length ? r.channels.join(', ') : h('span', { class: 'muted' }, '—')],
      ['Size', (r) => bytes(r.size)],
      ['State', (r) => badge(r.state)],
      ['Created by', (r) => r.created_by],
      ['Created', (r) => when(r.created_at)],
    ], list.items, 'No release matches.'),
    h('p', { class: 'pager' },
      page > 1 ? h('a', { href: '#', onclick: (e) => { e.preventDefault(); go({ page: page - 1 }); } }, '← newer') : null,
      ` page ${page} of ${pages} · ${list.total} release${list.total === 1 ? '' : 's'} `,
      page < pages ? h('a', { href: '#', onclick: (e) => { e.preventDefault(); go({ page: page + 1 }); } }, 'older →') : null));
  return null;
}
