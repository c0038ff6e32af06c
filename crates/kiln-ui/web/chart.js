// Small SVG line charts of the farm over time: one line per series, a
// dashed one for a target (an entitlement), times along the bottom in the
// viewer's zone, values at the left, a legend with each line's last value.

import { h } from './dom.js';

const NS = 'http://www.w3.org/2000/svg';
export const PALETTE = ['#3b82d9', '#3fa35b', '#e8743b', '#8d6fc9', '#d9a53b', '#d9463b', '#2bb3b3', '#c94f8d'];

function el(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

/** 12,345, or 0.5 for small values. */
export function number(v) {
  return v >= 10 ? Math.round(v).toLocaleString() : String(+v.toFixed(1));
}

const clock = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const clockSeconds = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });

/**
 * `series`: [{ name, points: [[at_ms, value], …], dashed?, color? }];
 * `format(v)` writes a value; `empty` says what to do when there is no
 * point yet. Returns a figure with the chart and legend.
 */
export function lineChart(title, series, format = number, empty = 'None over the last day so far (a sample every 15 s).') {
  const W = 520, H = 150, L = 44, R = 8, T = 8, B = 20;
  const all = series.flatMap((s) => s.points);
  const fig = h('figure', { class: 'chart' }, h('figcaption', {}, title));
  if (all.length === 0) {
    fig.append(h('p', { class: 'muted' }, empty));
    return fig;
  }
  const t0 = Math.min(...all.map((p) => p[0])), t1 = Math.max(...all.map((p) => p[0]));
  const vmax = Math.max(1, ...all.map((p) => p[1]));
  const x = (t) => L + (t1 === t0 ? (W - L - R) : ((t - t0) / (t1 - t0)) * (W - L - R));
  const y = (v) => T + (1 - v / vmax) * (H - T - B);
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart-svg', role: 'img', 'aria-label': title });
  for (const f of [0, 0.5, 1]) {
    svg.append(el('line', { x1: L, x2: W - R, y1: y(vmax * f), y2: y(vmax * f), class: 'grid' }));
    svg.append(el('text', { x: L - 4, y: y(vmax * f) + 4, class: 'axis', 'text-anchor': 'end' }, format(vmax * f)));
  }
  const c = t1 - t0 < 3600e3 ? clockSeconds : clock;
  svg.append(el('text', { x: L, y: H - 4, class: 'axis' }, c.format(new Date(t0))));
  svg.append(el('text', { x: W - R, y: H - 4, class: 'axis', 'text-anchor': 'end' }, c.format(new Date(t1))));
  const legend = h('div', { class: 'legend' });
  series.forEach((s, i) => {
    const color = s.color || PALETTE[i % PALETTE.length];
    const pts = s.points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    const line = el('polyline', { points: pts, fill: 'none', stroke: color, 'stroke-width': s.dashed ? 1.5 : 2, class: s.dashed ? 'dashed' : '' });
    line.append(el('title', {}, s.name));
    svg.append(line);
    // A line needs two points; one alone is shown as a dot.
    if (s.points.length === 1) svg.append(el('circle', { cx: x(s.points[0][0]), cy: y(s.points[0][1]), r: 3, fill: color }));
    const last = s.points.length ? s.points[s.points.length - 1][1] : 0;
    legend.append(h('span', { class: 'key' }, h('i', { style: { background: color }, class: s.dashed ? 'dashed' : '' }), `${s.name} ${format(last)}`));
  });
  fig.append(svg, legend);
  return fig;
}
