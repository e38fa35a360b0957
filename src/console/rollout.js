// A rollout: state, stage and percent, the chart of reports over time against the failure
// threshold, the stages with when each was entered, the hash-chained events and whether the
// chain holds, and pause / resume / advance / abort behind a confirmation. While the rollout
// is live the page refreshes itself every 2 s.

import { get, post } from './api.js';
import { badge, bytes, confirm, errorBox, facts, fill, h, percent, section, short, table, when } from './ui.js';
import { STATUSES, chart, legend } from './chart.js';

const POLL_MS = 2000;
const LIVE = ['active', 'paused', 'halted'];
const CONTROLS = [
  ['pause', 'Pause', ['active'], 'Pause this rollout? The ramp stops; devices already admitted stay in.'],
  ['resume', 'Resume', ['paused', 'halted'], 'Resume this rollout? It is offered again and the stage clock restarts.'],
  ['advance', 'Advance', ['active', 'paused'], 'Advance to the next stage now (or complete it after the last)?'],
  ['abort', 'Abort', ['active', 'paused', 'halted'], 'Abort this rollout? It is offered to no one, for good.'],
];

/// An interval that keeps the whole rollout within a few hundred bars (the service allows 1000).
function stepFor(createdAt) {
  const age = Math.max(0, (Date.now() - new Date(createdAt).getTime()) / 1000);
  return Math.max(2, Math.ceil((age * 1.2 + 60) / 300));
}

async function timelineOf(view) {
  try {
    return await get(`/v1/admin/rollouts/${view.id}/timeline?step=${stepFor(view.created_at)}`);
  } catch (error) {
    if (error.status === 400) return get(`/v1/admin/rollouts/${view.id}/timeline`);
    throw error;
  }
}

function eventDetail(e) {
  const d = { ...e.detail };
  const move = d.from_state !== undefined ? `${d.from_state} → ${d.to_state}, stage ${d.from_stage + 1} → ${d.to_stage + 1}` : '';
  for (const k of ['from_state', 'to_state', 'from_stage', 'to_stage']) delete d[k];
  const rest = Object.entries(d).map(([k, v]) => `${k} ${typeof v === 'object' ? JSON.stringify(v) : v}`).join(', ');
  return [move, rest].filter(Boolean).join('; ');
}

export async function render({ main, arg: id, signIn }) {
  const head = h('div', { id: 'rollout-head' }, h('p', { class: 'muted' }, 'Loading…'));
  const status = h('div', { id: 'rollout-status' });
  const controls = h('div', { class: 'controls', id: 'controls' });
  const summary = h('div', { id: 'summary' });
  const chartBox = h('div', { id: 'chart' });
  const stages = h('div', { id: 'stages' });
  const events = h('div', { id: 'events' });
  const refreshed = h('p', { class: 'muted', id: 'refreshed' });
  fill(main, head, status,
    h('div', { class: 'grid' }, section('Progress', summary, controls), section('Stages', stages)),
    section('Reports over time', chartBox, legend(h)),
    section('Events (hash chain)', events), refreshed);

  let version = null;
  let timer = null;
  let stopped = false;
  let busy = false;

  const act = async (command, label, question) => {
    if (busy || !(await confirm(question, label))) return;
    busy = true;
    try {
      show(await post(`/v1/admin/rollouts/${id}/${command}`), null);
      fill(status, h('p', { class: 'ok', role: 'status' }, `${label}: done.`));
      await refresh();
    } catch (error) {
      fill(status, errorBox(error, signIn));
    } finally {
      busy = false;
    }
  };

  const show = (view, timeline) => {
    fill(head,
      h('p', { class: 'crumbs' }, h('a', { href: '#/releases' }, 'Releases'), ' / ',
        h('a', { href: `#/release/${view.firmware_id}` }, version || short(view.firmware_id)), ' / ', view.channel),
      h('h1', {}, `Rollout of ${version || 'release'} on ${view.channel} `, h('span', { id: 'rollout-state' }, badge(view.state))));
    const stageCount = Array.isArray(view.stages) ? view.stages.length : 0;
    const overThreshold = view.failure_rate !== null && view.failure_rate > view.max_failure_rate;
    fill(summary, facts([
      ['State', h('span', { id: 'state-text' }, view.state)],
      ['Stage', h('span', { id: 'stage-text' }, `${view.stage + 1} of ${stageCount}`)],
      ['Offered to', h('span', { id: 'percent-text' }, `${view.percent} % of devices`)],
      ['Failure rate', h('span', { id: 'failure-rate', class: overThreshold ? 'bad' : '' },
        `${percent(view.failure_rate)} (halts above ${percent(view.max_failure_rate)} once ${view.min_reports} outcomes are in)`)],
      ['Reports', h('span', { id: 'counts' }, STATUSES.map((st) => `${view.counts[st] || 0} ${st}`).join(' · '))],
      ['Uncounted', Object.entries(view.uncounted).filter(([, n]) => n).map(([st, n]) => `${n} ${st}`).join(' · ') || 'none'],
      ['Downloads', `${view.downloads.delta} by patch · ${view.downloads.full} full`],
      ['Relayed by phone', h('span', { id: 'relay' }, relayed(view.relay))],
      ['Stage since', when(view.stage_started_at)],
      ['Created', h('span', {}, `${view.created_by}, `, when(view.created_at))],
      ...(view.problem ? [['Problem', h('span', { class: 'bad' }, view.problem)]] : []),
    ]));
    fill(controls, CONTROLS.map(([command, label, states, question]) =>
      h('button', { type: 'button', id: `control-${command}`, class: command === 'abort' ? 'danger' : 'secondary',
        disabled: !states.includes(view.state), onclick: () => act(command, label, question) }, label)));
    fill(events,
      h('p', { id: 'chain', class: view.chain_valid ? 'chain ok' : 'chain bad' },
        view.chain_valid ? `Chain valid: ${view.events.length} events, each linked to the hash of the one before.`
          : 'Chain BROKEN: an event was altered, removed or reordered. Do not trust this history.'),
      table([
        ['#', (e) => e.seq],
        ['When', (e) => when(e.created_at)],
        ['Who', (e) => e.actor],
        ['What', (e) => h('span', { class: 'event-kind' }, e.kind)],
        ['Detail', (e) => h('span', { class: 'detail' }, eventDetail(e))],
        ['Hash', (e) => short(e.hash)],
      ], [...view.events].reverse()));
    if (!timeline) return;
    fill(chartBox, timeline.buckets.length ? chart(timeline) : h('p', { class: 'muted' }, 'No reports yet.'));
    fill(stages, table([
      ['Stage', (st) => h('span', { class: st.stage === view.stage && LIVE.includes(view.state) ? 'current-stage' : '' }, st.stage + 1)],
      ['Percent', (st) => `${st.percent} %`],
      ['Lasts at least', (st) => `${st.min_duration_s} s`],
      ['Entered', (st) => when(st.entered_at)],
    ], timeline.stages));
    refreshed.textContent = `Updated ${new Date().toLocaleTimeString()}${LIVE.includes(view.state) ? ' · refreshing every 2 s' : ''}`;
  };

  const refresh = async () => {
    const view = await get(`/v1/admin/rollouts/${id}`);
    if (!version) version = (await get(`/v1/admin/firmware/${view.firmware_id}`).catch(() => ({}))).version || null;
    show(view, await timelineOf(view));
    return view;
  };

  const tick = async () => {
    if (stopped) return;
    try {
      const view = await refresh();
      if (stopped || !LIVE.includes(view.state)) return;
    } catch (error) {
      fill(status, errorBox(error, signIn));
      if (error.status === 401 || error.status === 403) return;
    }
    if (!stopped) timer = setTimeout(tick, POLL_MS);
  };

  try {
    await refresh();
  } catch (error) {
    fill(head, errorBox(error, signIn));
    return null;
  }
  timer = setTimeout(tick, POLL_MS);
  return () => { stopped = true; clearTimeout(timer); };
}

/** What phones said of their relays to the watches: where relayed updates stall. */
function relayed(relay) {
  if (!relay || !relay.devices) return 'none';
  const waiting = (relay.by_status.downloading || 0) + (relay.by_status.downloaded || 0);
  const devices = relay.devices === 1 ? '1 device' : `${relay.devices} devices`;
  return `${devices} · ${bytes(relay.bytes_delivered)} delivered · `
    + `${relay.chunks_rejected} chunks rejected · ${waiting} not installed yet`;
}
