// The rollout chart, as SVG built here: report counts by status per interval (stacked bars),
// the failure rate so far (a line, right axis) against the rollout's threshold (dashed), and
// when each stage was entered (vertical marks).

const NS = 'http://www.w3.org/2000/svg';
export const STATUSES = ['downloading', 'downloaded', 'installing', 'installed', 'failed'];
const W = 800;
const H = 260;
const PAD = { left: 44, right: 52, top: 14, bottom: 30 };

function s(tag, attrs, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function clock(iso) {
  return new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function chart(timeline) {
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': 'Reports by status over time, and the failure rate against its threshold' });
  const buckets = timeline.buckets;
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const totals = buckets.map((b) => STATUSES.reduce((n, st) => n + (b.counts[st] || 0), 0));
  // An even top, so that the middle grid line is a whole number of devices.
  const top = Math.max(1, ...totals);
  const max = top === 1 ? 1 : Math.ceil(top / 2) * 2;
  const slot = plotW / Math.max(1, buckets.length);
  const y = (n) => PAD.top + plotH - (n / max) * plotH;
  const rateY = (r) => PAD.top + plotH - Math.min(1, r) * plotH;

  // Axes and grid.
  for (const f of [0, 0.5, 1]) {
    const gy = PAD.top + plotH - f * plotH;
    svg.append(s('line', { x1: PAD.left, x2: W - PAD.right, y1: gy, y2: gy, class: 'grid' }));
    if (max > 1 || f !== 0.5) svg.append(s('text', { x: PAD.left - 6, y: gy + 4, class: 'axis', 'text-anchor': 'end' }, f * max));
    svg.append(s('text', { x: W - PAD.right + 6, y: gy + 4, class: 'axis' }, `${Math.round(f * 100)} %`));
  }
  const labels = Math.min(buckets.length, 6);
  for (let i = 0; i < labels; i += 1) {
    const index = Math.round((i * (buckets.length - 1)) / Math.max(1, labels - 1));
    const x = PAD.left + slot * index + slot / 2;
    svg.append(s('text', { x, y: H - 8, class: 'axis', 'text-anchor': 'middle' }, clock(buckets[index].start)));
  }

  // Stacked bars.
  buckets.forEach((b, i) => {
    let below = 0;
    for (const st of STATUSES) {
      const n = b.counts[st] || 0;
      if (!n) continue;
      const top = y(below + n);
      const bar = s('rect', { x: PAD.left + slot * i + slot * 0.1, width: Math.max(1, slot * 0.8), y: top, height: y(below) - top, class: `bar status-${st}` });
      bar.append(s('title', {}, `${clock(b.start)}: ${n} ${st}`));
      svg.append(bar);
      below += n;
    }
  });

  // Stage entries.
  // Stage entries; a label close to the one before it goes one line lower.
  const start = new Date(timeline.started_at).getTime();
  let lastX = -Infinity;
  let line = 0;
  for (const stage of timeline.stages) {
    if (!stage.entered_at) continue;
    const x = PAD.left + ((new Date(stage.entered_at).getTime() - start) / 1000 / timeline.step) * slot;
    if (x < PAD.left || x > W - PAD.right) continue;
    line = x - lastX < 40 ? line + 1 : 0;
    lastX = x;
    svg.append(s('line', { x1: x, x2: x, y1: PAD.top, y2: PAD.top + plotH, class: 'stage-mark' }));
    svg.append(s('text', { x: x + 3, y: PAD.top + 10 + line * 12, class: 'stage-label' }, `${stage.percent} %`));
  }

  // Threshold, then the failure rate so far.
  const ty = rateY(timeline.max_failure_rate);
  svg.append(s('line', { x1: PAD.left, x2: W - PAD.right, y1: ty, y2: ty, class: 'threshold' }));
  svg.append(s('text', { x: W - PAD.right - 4, y: ty - 4, class: 'threshold-label', 'text-anchor': 'end' }, `halt above ${(timeline.max_failure_rate * 100).toFixed(1)} %`));
  const points = buckets
    .map((b, i) => (b.failure_rate === null ? null : `${(PAD.left + slot * i + slot / 2).toFixed(1)},${rateY(b.failure_rate).toFixed(1)}`))
    .filter(Boolean);
  if (points.length) {
    svg.append(s('polyline', { points: points.join(' '), class: 'rate' }));
    const [lx, ly] = points[points.length - 1].split(',');
    svg.append(s('circle', { cx: lx, cy: ly, r: 3.5, class: 'rate-point' }));
  }
  return svg;
}

/// The legend under the chart, as HTML.
export function legend(h) {
  return h('p', { class: 'legend' },
    STATUSES.map((st) => h('span', { class: `key status-${st}` }, st)),
    h('span', { class: 'key rate' }, 'failure rate so far'),
    h('span', { class: 'key threshold' }, 'threshold'));
}
