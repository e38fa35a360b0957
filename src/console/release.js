// A release: what it is, its signed manifest, its rollouts and patches; publish it (with
// stages) and revoke it (with a reason).

import { get, post } from './api.js';
import { badge, bytes, confirm, errorBox, facts, fill, h, percent, section, short, table, when } from './ui.js';

let channelsCache = null;

/// The configured channels, from the OpenAPI document (which needs no token).
export async function channels() {
  if (!channelsCache) {
    try {
      const doc = await (await fetch('/openapi.json', { credentials: 'omit' })).json();
      channelsCache = doc.components.schemas.ChannelName.enum || ['stable'];
    } catch {
      channelsCache = ['stable'];
    }
  }
  return channelsCache;
}

/// The publish fields: channel, stages (percents), stage duration, threshold, minimum reports.
export async function publishFields() {
  return h('fieldset', { class: 'publish' },
    h('legend', {}, 'Rollout'),
    h('label', {}, 'Channel ', h('select', { id: 'channel' }, (await channels()).map((c) => h('option', { value: c }, c)))),
    h('label', {}, 'Stages (percent, in order) ', h('input', { id: 'stages', value: '1, 10, 50, 100', placeholder: '1, 10, 50, 100 (empty: 100 % at once)' })),
    h('label', {}, 'Each stage lasts at least (s) ', h('input', { id: 'stage-duration', type: 'number', min: 0, value: 3600 })),
    h('label', {}, 'Halt above failure rate ', h('input', { id: 'max-failure-rate', type: 'number', min: 0, max: 1, step: 0.01, placeholder: 'default' })),
    h('label', {}, 'Reports needed before halting ', h('input', { id: 'min-reports', type: 'number', min: 0, placeholder: 'default' })));
}

/// The publish request the fields describe.
export function publishBody(root) {
  const value = (id) => root.querySelector(`#${id}`).value.trim();
  const body = { channel: value('channel') };
  const duration = Number(value('stage-duration') || 0);
  const stages = value('stages').split(/[\s,]+/).filter(Boolean).map(Number);
  if (stages.length) body.stages = stages.map((p) => ({ percent: p, min_duration_s: duration }));
  if (value('max-failure-rate')) body.max_failure_rate = Number(value('max-failure-rate'));
  if (value('min-reports')) body.min_reports = Number(value('min-reports'));
  return body;
}

async function manifest(release) {
  if (release.state !== 'published') return h('p', { class: 'muted' }, 'Signed when published.');
  const blocks = await Promise.all(release.hardware.map(async (hw) => {
    try {
      const m = await get(`/v1/firmware/${release.id}/manifest?hardware=${encodeURIComponent(hw)}`);
      return h('div', {}, h('h3', {}, hw), h('pre', { class: 'manifest' }, JSON.stringify(m, null, 2)));
    } catch (error) {
      return h('div', {}, h('h3', {}, hw), errorBox(error));
    }
  }));
  return h('div', {}, blocks);
}

async function deltas(id) {
  try {
    const list = await get(`/v1/admin/firmware/${id}/deltas`);
    return table([
      ['From', (d) => d.from_version],
      ['Devices', (d) => d.devices],
      ['State', (d) => badge(d.state)],
      ['Size', (d) => bytes(d.size)],
      ['Ratio', (d) => (d.ratio === null ? '—' : percent(d.ratio))],
      ['Why', (d) => d.reason || ''],
    ], list.items, 'No patches: none is planned until devices of this hardware report an older version (or deltas are off).');
  } catch (error) {
    return errorBox(error);
  }
}

export async function render({ main, arg: id, signIn }) {
  fill(main, h('p', { class: 'muted' }, 'Loading…'));
  let release;
  let rollouts;
  try {
    [release, rollouts] = await Promise.all([
      get(`/v1/admin/firmware/${id}`),
      get(`/v1/admin/rollouts?firmware_id=${id}`),
    ]);
  } catch (error) {
    fill(main, errorBox(error, signIn));
    return null;
  }
  const status = h('div', { id: 'release-status' });
  const live = rollouts.items.filter((r) => ['active', 'paused', 'halted'].includes(r.state));

  const publishForm = h('form', { id: 'publish-form' }, await publishFields(), h('div', { class: 'actions' }, h('button', { type: 'submit', id: 'publish' }, 'Publish')));
  publishForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = publishBody(publishForm);
    if (!(await confirm(`Publish ${release.version} on ${body.channel}?`, 'Publish'))) return;
    try {
      const rollout = await post(`/v1/admin/firmware/${id}/publish`, body);
      location.hash = `#/rollout/${rollout.id}`;
    } catch (error) {
      fill(status, errorBox(error, signIn));
    }
  });

  const reason = h('textarea', { id: 'revoke-reason', rows: 2, placeholder: 'Why: bricks devices on boot, …', required: true });
  const revokeForm = h('form', { id: 'revoke-form' }, h('label', { for: 'revoke-reason' }, 'Reason'), reason,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'danger', id: 'revoke' }, 'Revoke')));
  revokeForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!(await confirm(`Revoke ${release.version}? It is never offered again and its rollouts abort.`, 'Revoke'))) return;
    try {
      await post(`/v1/admin/firmware/${id}/revoke`, { reason: reason.value.trim() });
      render({ main, arg: id, signIn });
    } catch (error) {
      fill(status, errorBox(error, signIn));
    }
  });

  fill(main,
    h('p', { class: 'crumbs' }, h('a', { href: '#/releases' }, 'Releases'), ' / ', release.version),
    h('h1', {}, `Release ${release.version} `, badge(release.state)),
    status,
    h('div', { class: 'grid' },
      section('Release', facts([
        ['Id', h('code', {}, release.id)],
        ['Hardware', release.hardware.join(', ')],
        ['Channels', release.channels.join(', ') || '—'],
        ['Size', `${bytes(release.size)} (${release.size} bytes)`],
        ['SHA-256', h('code', { class: 'wrap' }, release.sha256)],
        ['Installs from', release.min_from_version || 'any version'],
        ['Mandatory', release.mandatory ? 'yes' : 'no'],
        ['Created', h('span', {}, `${release.created_by}, `, when(release.created_at))],
        ['Published', when(release.published_at)],
        ['Release notes', release.release_notes || h('span', { class: 'muted' }, 'none')],
        ['Release signature', release.release_signature ? short(release.release_signature) : h('span', { class: 'muted' }, 'none')],
        ...(release.state === 'revoked' ? [['Revoked', h('span', {}, `${release.revoked_by}, `, when(release.revoked_at), `: ${release.revoke_reason}`)]] : []),
      ])),
      section('Rollouts', table([
        ['Channel', (r) => h('a', { href: `#/rollout/${r.id}` }, r.channel)],
        ['State', (r) => badge(r.state)],
        ['Stage', (r) => r.stage + 1],
        ['Percent', (r) => `${r.percent} %`],
        ['Started', (r) => when(r.created_at)],
      ], rollouts.items, 'Not published yet.'))),
    h('div', { class: 'grid' },
      section('Manifest', await manifest(release)),
      section('Patches (deltas)', await deltas(id))),
    release.state !== 'revoked' ? h('div', { class: 'grid' },
      section('Publish', live.length ? h('p', { class: 'muted' }, `Live on ${live.map((r) => r.channel).join(', ')}; another channel may be added.`) : null, publishForm),
      section('Revoke', revokeForm)) : null);
  return null;
}
