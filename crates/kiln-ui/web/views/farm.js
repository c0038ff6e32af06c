// The wrangler's farm: allocations with their cores in use and what
// waiting work could use (the autoscaling signal), shows against their
// subscriptions (entitlement and burst), limits in use against their
// maximum, and services. Read again when events say something moved.

import { h, fill } from '../dom.js';
import { api, follow } from '../api.js';
import { kib, count } from '../fmt.js';
import { VTable, rowsOf } from '../vtable.js';
import { liveState, go } from '../app.js';
import { runningTable } from './job.js';
import { lineChart, PALETTE } from '../chart.js';

const cores = (c) => (c / 100).toLocaleString(undefined, { maximumFractionDigits: 2 });

/** A bar of `used` against `of`, with a mark at `line` (an entitlement). */
function meter(used, of, line) {
  const pct = (v) => `${Math.min(100, of ? (100 * v) / of : 0)}%`;
  return h('span', { class: 'meter', title: `${cores(used)} of ${cores(of)}` },
    h('span', { class: `fill${used > of ? ' over' : ''}`, style: { width: pct(used) } }),
    line !== undefined ? h('span', { class: 'line', style: { left: pct(line) } }) : null);
}

function table(columns, rows, empty) {
  const t = new VTable();
  t.classList.add('short');
  t.empty = empty;
  t.show(columns, rowsOf(rows));
  return t;
}

/** The last day as time series: cores by show against entitlement, backlog by reason, hosts by state. */
function charts(samples) {
  const series = (keyOf, valueOf, rows) => {
    const by = new Map();
    for (const s of samples) {
      for (const r of rows(s)) {
        const k = keyOf(r);
        if (!by.has(k)) by.set(k, []);
        by.get(k).push([s.at, valueOf(r)]);
      }
    }
    return [...by.entries()].map(([name, points]) => ({ name, points }));
  };
  // Each show one colour: its cores in use solid, its entitlement dashed.
  const showLines = series((r) => r.show, (r) => r.busy / 100, (s) => s.shows).flatMap((line, i) => {
    const color = PALETTE[(i + 1) % PALETTE.length];
    const target = samples.flatMap((s) => s.shows.filter((x) => x.show === line.name && x.entitlement > 0)
      .map((x) => [s.at, x.entitlement / 100]));
    return [{ ...line, color }, ...(target.length ? [{ name: `${line.name} entitled`, points: target, color, dashed: true }] : [])];
  });
  const total = { name: 'busy, all shows', points: samples.map((s) => [s.at, s.cores_busy / 100]), color: PALETTE[0] };
  return [
    lineChart('Cores busy by show (dashed: entitlement)', [total, ...showLines]),
    lineChart('Frames waiting, by reason', series((r) => r.reason.replace(/_/g, ' '), (r) => r.frames, (s) => s.waiting)),
    lineChart('Hosts by state', series((r) => r.state, (r) => r.count, (s) => s.hosts)),
  ];
}

export function farmView() {
  return async (main) => {
    const quietMin = Number(new URLSearchParams(location.search).get('quiet') || 10);
    const draw = async () => {
      const [alloc, scale, shows, subs, limits, services, stuck, history] = await Promise.all([
        api('/allocations'), api('/autoscale'), api('/shows'), api('/subscriptions'), api('/limits'), api('/services'),
        api(`/running?quiet_s=${Math.round(quietMin * 60)}`), api('/farm/history'),
      ]);
      const wanted = new Map(scale.allocations.map((a) => [a.allocation, a]));
      const subsOf = new Map();
      for (const s of subs.subscriptions) (subsOf.get(s.show) || subsOf.set(s.show, []).get(s.show)).push(s);
      fill(main,
        h('div', { class: 'toolbar' }, h('h2', {}, 'Farm')),
        h('section', { class: 'charts' }, ...charts(history.samples)),
        h('section', {}, h('h3', {}, 'Allocations'), table([
          { label: 'Allocation', width: 'minmax(8em, 1fr)', key: 'name' },
          { label: 'Hosts up', width: '7em', cls: 'num', render: (a) => `${count(a.hosts_up)}/${count(a.hosts)}` },
          { label: 'Cores in use', width: 'minmax(10em, 2fr)', render: (a) => meter(a.cores_used, a.cores) },
          { label: 'Cores', width: '9em', cls: 'num', render: (a) => `${cores(a.cores_used)}/${cores(a.cores)}` },
          { label: 'Waiting work could use', width: '11em', cls: 'num', render: (a) => {
            const w = wanted.get(a.name);
            return w ? `${w.wanted_cores.toLocaleString()} cores` : '';
          } },
          { label: 'Tags', width: 'minmax(8em, 1fr)', render: (a) => a.tags.join(' ') },
        ], alloc.allocations, 'No allocations.')),
        h('section', {}, h('h3', {}, 'Shows and subscriptions'), table([
          { label: 'Show', width: 'minmax(8em, 1fr)', render: (r) => r.show },
          { label: 'Allocation', width: 'minmax(8em, 1fr)', render: (r) => r.allocation || '' },
          { label: 'In use against entitlement (line) and burst', width: 'minmax(12em, 3fr)', render: (r) => r.allocation ? meter(r.used, r.burst ?? (Math.max(r.size, r.used) * 1.25 || 100), r.size) : '' },
          { label: 'Used', width: '7em', cls: 'num', render: (r) => r.allocation ? cores(r.used) : cores(r.cores_used) },
          { label: 'Size', width: '6em', cls: 'num', render: (r) => r.allocation ? cores(r.size) : '' },
          { label: 'Burst', width: '6em', cls: 'num', render: (r) => r.allocation && r.burst !== null && r.burst !== undefined ? cores(r.burst) : '' },
          { label: 'Jobs', width: '5em', cls: 'num', render: (r) => r.jobs ?? '' },
          { label: '', width: '6em', render: (r) => r.enabled === false ? h('span', { class: 'badge s-paused' }, 'DISABLED') : '' },
        ], shows.shows.flatMap((s) => {
          const list = subsOf.get(s.name) || [];
          return list.length ? list.map((x, i) => ({ ...x, id: `${s.name}/${x.allocation}`, jobs: i ? undefined : s.jobs, enabled: i ? undefined : s.enabled }))
            : [{ id: s.name, show: s.name, cores_used: s.cores_used, jobs: s.jobs, enabled: s.enabled }];
        }), 'No shows yet: a job names its show, and the show is made.')),
        h('section', {}, h('div', { class: 'toolbar' }, h('h3', {}, 'Stuck frames'),
          h('label', {}, 'no log output for', h('input', {
            type: 'number', min: 0, step: 'any', value: quietMin, style: { width: '5em' }, 'aria-label': 'Minutes without output',
            onchange: (e) => go(`/farm?quiet=${encodeURIComponent(e.target.value)}`, true),
          }), 'minutes')),
        runningTable(stuck.frames, 'No running frame has been quiet that long.')),
        h('div', { class: 'two' },
          h('section', {}, h('h3', {}, 'Limits'), table([
            { label: 'Limit', width: 'minmax(8em, 1fr)', key: 'name' },
            { label: 'In use', width: 'minmax(8em, 2fr)', render: (l) => meter(l.used * 100, l.max * 100) },
            { label: '', width: '8em', cls: 'num', render: (l) => `${count(l.used)}/${count(l.max)}` },
          ], limits.limits, 'No limits. `kiln limit set NAME --max N` makes one (licences, say).')),
          h('section', {}, h('h3', {}, 'Services'), table([
            { label: 'Service', width: 'minmax(8em, 1fr)', key: 'name' },
            { label: 'Show', width: '7em', render: (s) => s.show || 'all' },
            { label: 'Cores', width: '5em', cls: 'num', render: (s) => s.cores ?? '' },
            { label: 'Memory', width: '7em', cls: 'num', render: (s) => s.memory_kb ? kib(s.memory_kb) : '' },
            { label: 'Tags', width: 'minmax(6em, 1fr)', render: (s) => (s.tags || []).join(' ') },
          ], services.services, 'No services. `kiln service set NAME` makes one.'))));
    };
    await draw();
    let dirty = false;
    const ev = follow({ kinds: 'show.changed,limit.changed,host.up,host.down,host.locked,host.unlocked,host.repair,frame.started,frame.succeeded,frame.failed,frame.dead' }, () => { dirty = true; }, liveState);
    const timer = setInterval(() => {
      if (!dirty) return;
      dirty = false;
      const y = main.scrollTop;
      draw().then(() => { main.scrollTop = y; }, () => { dirty = true; });
    }, 3000);
    return () => { ev.close(); clearInterval(timer); };
  };
}
