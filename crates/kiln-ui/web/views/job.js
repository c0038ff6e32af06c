// One job: its layers and their dependency graph, its frames in a table
// that loads from the server as it scrolls (or, where layers declare
// outputs, as a contact sheet of their previews), and the actions the user
// may take on the job or on a selection of frames. Kept current by the
// job's events.

import { h, fill, link, confirmAction, toast } from '../dom.js';
import { api, qs, follow } from '../api.js';
import { mayAct } from '../auth.js';
import { duration, kib, time, fullTime, count } from '../fmt.js';
import { VTable, Pager, rowsOf } from '../vtable.js';
import { go, liveState } from '../app.js';
import { progress, eta, stateBadge } from './jobs.js';
import { thumb, flagMark, contactSheet } from './previews.js';

const FRAME_STATES = ['', 'WAITING', 'DEPEND', 'RUNNING', 'SUCCEEDED', 'DEAD', 'EATEN'];

/** A frame's state after one of its events, as the server will report it. */
const AFTER = {
  'frame.started': 'RUNNING', 'frame.succeeded': 'SUCCEEDED', 'frame.failed': 'WAITING',
  'frame.dead': 'DEAD', 'frame.retried': 'WAITING', 'frame.eaten': 'EATEN',
};

export function exitText(f) {
  if (f.outcome === 'OOM') return 'out of memory';
  if (f.exit_signal) return `signal ${f.exit_signal}`;
  if (f.exit_status !== null && f.exit_status !== undefined) return f.outcome && f.outcome !== 'SUCCEEDED' && f.outcome !== 'FAILED' ? `${f.exit_status} (${f.outcome.toLowerCase()})` : String(f.exit_status);
  return f.outcome ? f.outcome.toLowerCase() : '';
}

/** Running frames (`GET /running`) as a table: job, frame, host, times, quiet for. */
export function runningTable(list, empty) {
  const t = new VTable();
  t.classList.add('short');
  t.empty = empty;
  const now = Date.now();
  t.show([
    { label: 'Job', width: 'minmax(10em, 2fr)', render: (r) => link(`/jobs/${encodeURIComponent(r.job)}`, r.job) },
    { label: 'Frame', width: 'minmax(7em, 1fr)', render: (r) => link(`/frames/${r.frame.id}`, `${r.frame.layer}/${r.frame.number}`) },
    { label: 'User', width: '7em', key: 'user' },
    { label: 'Host', width: 'minmax(6em, 1fr)', render: (r) => r.frame.host || '' },
    { label: 'Running for', width: '7em', cls: 'num', render: (r) => runtime(r.frame) },
    { label: 'Last output', width: '8em', cls: 'num', render: (r) => r.last_output_at ? `${duration(now - r.last_output_at)} ago` : 'none yet' },
    { label: 'Memory', width: '6.5em', cls: 'num', render: (r) => r.frame.max_rss_kb ? kib(r.frame.max_rss_kb) : '' },
  ], rowsOf(list.map((r) => ({ ...r, id: r.attempt_id }))));
  return t;
}

export function runtime(f) {
  if (!f.started_at) return '';
  return duration((f.ended_at || Date.now()) - f.started_at);
}

/** A dependency as LayerSummary.depends writes it: `sim` or `sim (per frame)`. */
function depName(x) {
  const s = typeof x === 'string' ? x : x.layer;
  return s.replace(/ \(per frame\)$/, '');
}

/**
 * The layers as boxes in columns by depth, with arrows from what each waits
 * for (dashed: frame by frame); the jobs this one waits for come first, as
 * links, with arrows to the layers that wait for nothing else.
 */
function graph(layers, jobs = []) {
  const byName = new Map(layers.map((l) => [l.name, l]));
  const depth = new Map();
  const d = (l, seen = new Set()) => {
    if (depth.has(l.name)) return depth.get(l.name);
    if (seen.has(l.name)) return 0;
    seen.add(l.name);
    const deps = (l.depends || []).map((x) => byName.get(depName(x))).filter(Boolean);
    const v = deps.length ? 1 + Math.max(...deps.map((x) => d(x, seen))) : 0;
    depth.set(l.name, v);
    return v;
  };
  layers.forEach((l) => d(l));
  const shift = jobs.length ? 1 : 0;
  const cols = jobs.length ? [jobs.map((j) => ({ job: j }))] : [];
  for (const l of layers) (cols[depth.get(l.name) + shift] ||= []).push(l);
  const W = 150, H = 34, GX = 60, GY = 14;
  const pos = new Map();
  cols.forEach((c, x) => c.forEach((l, y) => pos.set(l.job ? `job:${l.job.id}` : l.name, { x: 10 + x * (W + GX), y: 10 + y * (H + GY) })));
  const width = 20 + cols.length * (W + GX) - GX;
  const height = 20 + Math.max(...cols.map((c) => c.length)) * (H + GY) - GY;
  const ns = 'http://www.w3.org/2000/svg';
  const el = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const svg = el('svg', { class: 'graph', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'Layer and job dependencies' });
  const edge = (from, to, perFrame) => {
    if (!from || !to) return;
    svg.append(el('path', { class: `edge${perFrame ? ' per-frame' : ''}`, d: `M${from.x + W},${from.y + H / 2} C${from.x + W + GX / 2},${from.y + H / 2} ${to.x - GX / 2},${to.y + H / 2} ${to.x},${to.y + H / 2}` }));
  };
  for (const l of layers) {
    for (const dep of l.depends || []) edge(pos.get(depName(dep)), pos.get(l.name), /per frame/.test(typeof dep === 'string' ? dep : ''));
    if (!(l.depends || []).length) jobs.forEach((j) => edge(pos.get(`job:${j.id}`), pos.get(l.name), false));
  }
  for (const j of jobs) {
    const p = pos.get(`job:${j.id}`);
    const a = el('a', { href: `/jobs/${encodeURIComponent(j.name)}`, 'data-link': '', class: `node job${j.status === 'FINISHED' ? ' done' : j.status === 'FAILED' ? ' dead' : ''}` });
    a.append(el('rect', { x: p.x, y: p.y, width: W, height: H, rx: 5 }));
    a.append(el('text', { x: p.x + 8, y: p.y + 14 }, j.name.length > 20 ? `${j.name.slice(0, 19)}…` : j.name));
    a.append(el('text', { x: p.x + 8, y: p.y + 28, class: 'sub' }, `job · ${j.status.toLowerCase()}`));
    a.append(el('title', {}, `waits for job ${j.name}`));
    svg.append(a);
  }
  for (const l of layers) {
    const p = pos.get(l.name);
    const c = l.counts;
    const done = c.succeeded + c.eaten;
    const g = el('g', { class: `node${c.dead ? ' dead' : done === l.total ? ' done' : c.running ? ' running' : ''}` });
    g.append(el('rect', { x: p.x, y: p.y, width: W, height: H, rx: 5 }));
    g.append(el('text', { x: p.x + 8, y: p.y + 14 }, l.name));
    g.append(el('text', { x: p.x + 8, y: p.y + 28, class: 'sub' }, `${count(done)}/${count(l.total)}${c.dead ? ` · ${c.dead} dead` : ''}`));
    g.append(el('title', {}, `${l.name}: ${l.command}`));
    svg.append(g);
  }
  return svg;
}

export function jobView(key) {
  return async (main) => {
    const url = new URLSearchParams(location.search);
    const filter = { state: url.get('state') || '', layer: url.get('layer') || '', host: url.get('host') || '' };
    const sheetView = url.get('view') === 'sheet';
    let detail = await api(`/jobs/${encodeURIComponent(key)}`);
    const id = detail.job.id;
    const head = h('section', { class: 'job-head' });
    const layersBox = h('section', {});
    const frames = new VTable();
    frames.id = 'frames';
    frames.selectable = true;
    frames.empty = 'No frames match these filters.';
    const selBar = h('span', { class: 'selection' });
    const setParam = (k, v) => {
      const u = new URLSearchParams(location.search);
      if (v) u.set(k, v); else u.delete(k);
      const s = u.toString();
      go(location.pathname + (s ? `?${s}` : ''), true);
    };

    const act = async (action, body = {}, what = 'the job') => {
      const destructive = action === 'kill' || action === 'eat';
      if (destructive && !(await confirmAction(`${action[0].toUpperCase() + action.slice(1)} ${what}? This cannot be undone.`, action))) return;
      try {
        const r = await api(`/jobs/${id}/${action}`, { method: 'POST', body });
        toast(r.message);
      } catch (e) { toast(e.message, 'error'); }
    };
    const setting = async (path, field, ask, parse) => {
      const v = prompt(ask);
      if (v === null) return;
      try {
        const r = await api(`/jobs/${id}/${path}`, { method: 'POST', body: { [field]: parse(v) } });
        toast(r.message);
      } catch (e) { toast(e.message, 'error'); }
    };

    const drawHead = () => {
      const j = detail.job;
      const allowed = mayAct(j);
      const paused = j.paused && j.status !== 'FINISHED';
      const ended = ['FINISHED', 'KILLED'].includes(j.status);
      fill(head,
        h('div', { class: 'title' }, h('h2', {}, j.name), stateBadge(paused ? 'PAUSED' : j.status)),
        h('div', { class: 'facts' },
          h('span', {}, 'show ', h('b', {}, j.show)), j.shot && h('span', {}, 'shot ', h('b', {}, j.shot)),
          h('span', {}, 'user ', h('b', {}, j.user)), h('span', {}, 'priority ', h('b', {}, j.priority)),
          h('span', { title: fullTime(j.submitted_at) }, 'submitted ', h('b', {}, time(j.submitted_at))),
          h('span', {}, 'time ', h('b', {}, duration((j.finished_at || Date.now()) - j.submitted_at))),
          eta(j) && h('span', {}, 'left ', h('b', {}, eta(j))),
          h('span', {}, 'cores in use ', h('b', {}, (detail.cores_used / 100).toFixed(detail.cores_used % 100 ? 2 : 0))),
          detail.depends_on_jobs.length ? h('span', {}, 'after jobs ', detail.depends_on_jobs.map((d, i) => [i ? ', ' : '', link(`/jobs/${d}`, String(d))])) : null),
        h('div', { class: 'bar-row' }, progress(j.counts, j.total),
          h('span', { class: 'counts' }, ['succeeded', 'running', 'waiting', 'depend', 'dead', 'eaten']
            .filter((k) => j.counts[k]).map((k) => h('span', { class: `c-${k}` }, `${count(j.counts[k])} ${k}`)))),
        allowed && !ended && h('div', { class: 'actions' },
          paused ? h('button', { onclick: () => act('resume') }, 'Resume') : h('button', { onclick: () => act('pause') }, 'Pause'),
          j.counts.dead ? h('button', { onclick: () => act('retry', { state: 'DEAD' }, 'the dead frames') }, `Retry ${count(j.counts.dead)} dead`) : null,
          j.counts.dead ? h('button', { onclick: () => act('eat', { state: 'DEAD' }, `${count(j.counts.dead)} dead frames`) }, 'Eat dead') : null,
          h('button', { onclick: () => setting('priority', 'priority', `Priority of ${j.name} (now ${j.priority}):`, Number) }, 'Priority…'),
          h('button', { onclick: () => setting('max-cores', 'max_cores', 'Most cores at once (empty: no cap):', (v) => v.trim() ? Math.round(Number(v) * 100) : null) }, 'Max cores…'),
          h('button', { class: 'danger', onclick: () => act('kill') }, 'Kill job')));
    };

    const drawLayers = () => {
      const t = new VTable();
      t.classList.add('short');
      fill(layersBox, h('h3', {}, 'Layers'), h('div', { class: 'layers' }, t, h('div', { class: 'graph-box' }, graph(detail.layers, upstream))));
      t.show([
        { label: 'Layer', width: 'minmax(8em, 2fr)', render: (l) => h('a', { href: '#', onclick: (e) => { e.preventDefault(); setParam('layer', l.name); } }, l.name) },
        { label: 'Progress', width: 'minmax(6em, 2fr)', render: (l) => progress(l.counts, l.total) },
        { label: 'Frames', width: '6em', cls: 'num', render: (l) => `${count(l.counts.succeeded + l.counts.eaten)}/${count(l.total)}` },
        { label: 'Cores', width: '4em', cls: 'num', key: 'cores_request' },
        { label: 'Memory', width: '6em', cls: 'num', render: (l) => kib(l.memory_kb) },
        { label: 'Waiting because', width: 'minmax(10em, 3fr)', render: (l) => (l.why && l.why.text) || '' },
      ], rowsOf(detail.layers));
    };

    const previews = detail.layers.some((l) => l.outputs && l.outputs.length);
    const frameColumns = [
      ...(previews ? [{ label: 'Preview', width: '4.5em', render: (f) => thumb(f) }] : []),
      { label: 'Frame', width: 'minmax(7em, 1.5fr)', render: (f) => [flagMark(f), link(`/frames/${f.id}`, `${f.layer}/${f.number}`)] },
      { label: 'State', width: '7em', render: (f) => stateBadge(f.state) },
      { label: 'Host', width: 'minmax(6em, 1fr)', render: (f) => f.host || '' },
      { label: 'Tries', width: '3.5em', cls: 'num', key: 'attempts' },
      { label: 'Runtime', width: '6em', cls: 'num', render: runtime },
      { label: 'Peak mem', width: '6.5em', cls: 'num', render: (f) => f.max_rss_kb ? kib(f.max_rss_kb) : '' },
      { label: 'Exit', width: '7em', render: exitText },
      { label: previews ? 'Why waiting, or flagged' : 'Why waiting', width: 'minmax(10em, 3fr)', render: (f) => (f.why && f.why.text) || f.flag || f.reason || '' },
    ];
    let pager;
    const loadFrames = () => {
      // As many rows as the counts say (by host: unknown until read; the
      // first page tells).
      const c = filter.host ? 0 : detail.layers.filter((l) => !filter.layer || l.name === filter.layer)
        .reduce((n, l) => n + (filter.state ? (l.counts[filter.state.toLowerCase()] || 0) : l.total), 0);
      pager = new Pager(async (offset, size) => {
        const a = await api(`/jobs/${id}/frames${qs({ ...filter, offset, page_size: size })}`);
        return { items: a.frames };
      }, c);
      frames.selected.clear();
      frames.show(frameColumns, pager);
    };
    frames.onrow = (f) => go(`/frames/${f.id}`);
    frames.addEventListener('selection', () => {
      const n = frames.selected.size;
      const chosen = () => pager.rows.filter((f) => frames.selected.has(f.id)).map((f) => `${f.layer}/${f.number}`);
      fill(selBar, n ? [`${count(n)} selected`,
        mayAct(detail.job) && ['retry', 'eat', 'kill'].map((a) => h('button', { class: a === 'retry' ? '' : 'danger', onclick: async () => {
          await act(a, { targets: chosen() }, `${count(n)} selected frames`);
          frames.selected.clear();
          frames.dispatchEvent(new CustomEvent('selection'));
        } }, `${a[0].toUpperCase() + a.slice(1)} selected`))] : []);
    });

    const sheet = previews && sheetView ? contactSheet(id, filter) : null;
    fill(main, head, layersBox,
      h('section', { class: 'frames' },
        h('div', { class: 'toolbar' }, h('h3', {}, 'Frames'),
          previews && h('div', { class: 'tabs', role: 'tablist' },
            h('button', { role: 'tab', 'aria-selected': String(!sheet), onclick: () => setParam('view', '') }, 'Table'),
            h('button', { role: 'tab', 'aria-selected': String(!!sheet), onclick: () => setParam('view', 'sheet') }, 'Contact sheet')),
          h('label', {}, 'State', h('select', { onchange: (e) => setParam('state', e.target.value) },
            FRAME_STATES.map((s) => h('option', { value: s, selected: s === filter.state }, s || 'any')))),
          h('label', {}, 'Layer', h('select', { onchange: (e) => setParam('layer', e.target.value) },
            [''].concat(detail.layers.map((l) => l.name)).map((s) => h('option', { value: s, selected: s === filter.layer }, s || 'any')))),
          h('label', {}, 'Host', h('input', { value: filter.host, placeholder: 'any', style: { width: '9em' }, onchange: (e) => setParam('host', e.target.value.trim()) })),
          selBar),
        sheet ? sheet.el : frames));
    // The jobs this one waits for, for the graph (a few at most, usually).
    const upstream = (await Promise.all(detail.depends_on_jobs.slice(0, 12).map((d) => api(`/jobs/${d}`)
      .then((x) => ({ id: x.job.id, name: x.job.name, status: x.job.status }), () => null)))).filter(Boolean);
    drawHead();
    drawLayers();
    if (!sheet) loadFrames();

    // Live: frame events change their rows in place; the job's counts and
    // layers are read again at most once a second while events come, and
    // at once after a change to the job itself (paused, killed, finished).
    let dirty = false;
    let soon = null;
    // Frames whose previews changed, read again together a moment later
    // (a few at a time: in a fill, only those the table has loaded).
    const stale = { ids: new Set(), timer: null };
    const refreshFrame = (fid) => {
      if (!sheet && !pager.index.has(fid)) return;
      stale.ids.add(fid);
      const flush = async () => {
        const ids = [...stale.ids].slice(0, 50);
        ids.forEach((i) => stale.ids.delete(i));
        // The rest in the next round, a moment later.
        stale.timer = stale.ids.size ? setTimeout(flush, 300) : null;
        for (const fid of ids) {
          if (sheet) { sheet.update(fid).catch(() => {}); continue; }
          try {
            const f = (await api(`/frames/${fid}`)).frame;
            if (pager.patch(fid, { outputs: f.outputs, flag: f.flag, attempts: f.attempts, state: f.state })) frames.refresh();
          } catch (e) { /* gone: the next page read has it */ }
        }
      };
      stale.timer = stale.timer || setTimeout(flush, 300);
    };
    const reread = async () => {
      try {
        detail = await api(`/jobs/${id}`);
        drawHead();
        drawLayers();
      } catch (e) { dirty = true; }
    };
    const ev = follow({ job: String(id) }, (e) => {
      if (e.kind.startsWith('job.')) {
        if (!soon) soon = setTimeout(() => { soon = null; reread(); }, 20);
        return;
      }
      dirty = true;
      const state = AFTER[e.kind];
      // An ended frame has new previews and perhaps a flag: read it again
      // (on the contact sheet, any change to a frame redraws its card).
      if (e.frame_id && (sheet || (previews && ['frame.succeeded', 'frame.failed', 'frame.dead'].includes(e.kind)))) {
        refreshFrame(e.frame_id);
        // A frame that ends may make one beside it a flicker (or not).
        if (!sheet && e.kind === 'frame.succeeded') {
          const i = pager.index.get(e.frame_id);
          for (const j of [i - 1, i + 1]) {
            const r = i === undefined ? null : pager.row(j);
            if (r && r.layer === e.layer && r.state === 'SUCCEEDED') refreshFrame(r.id);
          }
        }
      }
      if (sheet) return;
      if (state && e.frame_id && pager.patch(e.frame_id, {
        state, ...(e.kind === 'frame.started' ? { host: e.host, started_at: e.at, ended_at: null, ...(e.attempt ? { attempts: e.attempt } : {}) } : {}),
        ...(e.kind !== 'frame.started' && e.kind !== 'frame.retried' ? { ended_at: e.at } : {}),
      })) frames.refresh();
    }, liveState);
    const timer = setInterval(() => {
      if (!dirty) return;
      dirty = false;
      reread();
    }, 1000);
    return () => { ev.close(); clearInterval(timer); clearTimeout(soon); clearTimeout(stale.timer); if (sheet) sheet.close(); };
  };
}
