// A device: its owner, hardware, version and channel, and its latest report per release.

import { get } from './api.js';
import { badge, errorBox, fill, h, short, table, when } from './ui.js';

export async function render({ main, arg, signIn }) {
  const input = h('input', { id: 'device-id', value: arg, placeholder: 'watch-0001', required: true });
  const result = h('div', { id: 'device' });
  const form = h('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); location.hash = `#/device/${encodeURIComponent(input.value.trim())}`; } },
    h('label', {}, 'Device id ', input), h('button', { type: 'submit' }, 'Look up'));
  fill(main, h('h1', {}, 'Devices'), form, result);
  if (!arg) return null;
  let device;
  try {
    device = await get(`/v1/admin/devices/${encodeURIComponent(arg)}`);
  } catch (error) {
    fill(result, errorBox(error, signIn));
    return null;
  }
  fill(result,
    h('section', { class: 'card' },
      h('h2', {}, device.device_id),
      h('dl', { class: 'facts' },
        h('dt', {}, 'Owner'), h('dd', {}, device.owner || h('span', { class: 'muted' }, 'none (released or never bound)')),
        h('dt', {}, 'Hardware'), h('dd', {}, device.hardware),
        h('dt', {}, 'Version'), h('dd', {}, device.version),
        h('dt', {}, 'Channel'), h('dd', {}, device.channel || '—'),
        h('dt', {}, 'Last report'), h('dd', {}, when(device.last_report_at)))),
    h('section', { class: 'card' },
      h('h2', {}, 'Latest reports'),
      table([
        ['Release', (r) => h('a', { href: `#/release/${r.firmware_id}` }, short(r.firmware_id))],
        ['Rollout', (r) => (r.rollout_id ? h('a', { href: `#/rollout/${r.rollout_id}` }, short(r.rollout_id)) : '—')],
        ['Status', (r) => badge(r.status)],
        ['Error', (r) => r.error || ''],
        ['Reports', (r) => r.report_count],
        ['Via', (r) => r.via || '—'],
        ['Counted', (r) => (r.counted ? 'yes' : 'no')],
        ['Failures', (r) => r.failures],
        ['When', (r) => when(r.updated_at)],
      ], device.reports, 'No reports.')));
  return null;
}
