// The artist's view: jobs with their progress, filtered by show, shot,
// user, state and name (all in the URL, so a filtered list can be
// shared), kept current by the event stream.

import { h, fill, link } from '../dom.js';
import { api, all, follow } from '../api.js';
import { whoami } from '../auth.js';
import { duration, time, fullTime, count } from '../fmt.js';
import { VTable, rowsOf } from '../vtable.js';
import { go, liveState } from '../app.js';

const STATES = ['', 'PENDING', 'RUNNING', 'PAUSED', 'FAILED', 'FINISHED', 'KILLED'];

/** A bar of done, running, waiting and dead frames. */
export function progress(c, total) {
  const seg = (n, cls, what) => n ? h('span', { class: cls, style: { flexGrow: n }, title: `${count(n)} ${what}` }) : null;
  const done = c.succeeded + c.eaten;
  return h('span', { class: 'progress', title: `${count(done)} of ${count(total)} done` },
    seg(done, 'p-done', 'done'), seg(c.running, 'p-running', 'running'),
    seg(c.waiting + c.depend, 'p-waiting', 'waiting'), seg(c.dead, 'p-dead', 'dead'));
}

/** How long is left, from the rate frames have finished at so far. */
export function eta(j, now = Date.now()) {
  const c = j.counts;
  const done = c.succeeded + c.eaten;
  const left = j.total - done - c.dead;
  if (j.finished_at || left <= 0 || done === 0) return '';
  const rate = done / Math.max(1, now - j.submitted_at);
  return `~${duration(left / rate)}`;
}

export function stateBadge(s) {
  return h('span', { class: `badge s-${s.toLowerCase()}` }, s);
}

export function jobsView({ mine }) {
  return async (main) => {
    const url = new URLSearchParams(location.search);
    const me = whoami();
    const f = {
      show: url.get('show') || '', shot: url.get('shot') || '', user: mine ? me.user : (url.get('user') || ''),
      state: url.get('state') || '', name: url.get('name') || '', all: url.get('all') === 'true',
    };
    const setParam = (k, v) => {
      const u = new URLSearchParams(location.search);
      if (v) u.set(k, v); else u.delete(k);
      const s = u.toString();
      go(location.pathname + (s ? `?${s}` : ''), true);
    };
    const input = (k, label, extra = {}) => h('label', {}, label, h('input', {
      value: f[k], ...extra, onchange: (e) => setParam(k, e.target.value.trim()),
    }));
    const table = new VTable();
    table.id = 'jobs';
    table.empty = mine ? 'You have no jobs here. Submit one with `kiln submit job.yaml`, or show finished ones too.' : 'No jobs match these filters.';
    const summary = h('span', { class: 'muted' });
    fill(main,
      h('div', { class: 'toolbar' },
        h('h2', {}, mine ? 'My jobs' : 'All jobs'),
        h('input', { type: 'search', placeholder: 'Search names  ( / )', value: f.name, 'aria-label': 'Search job names', onchange: (e) => setParam('name', e.target.value.trim()) }),
        input('show', 'Show'), input('shot', 'Shot'),
        mine ? null : input('user', 'User'),
        h('label', {}, 'State', h('select', { onchange: (e) => setParam('state', e.target.value) },
          STATES.map((s) => h('option', { value: s, selected: s === f.state }, s || 'active')))),
        h('label', { class: 'check' }, h('input', { type: 'checkbox', checked: f.all, onchange: (e) => setParam('all', e.target.checked ? 'true' : '') }), 'finished too'),
        summary),
      table);
    const columns = [
      { label: 'Job', width: 'minmax(14em, 3fr)', render: (j) => link(`/jobs/${encodeURIComponent(j.name)}`, j.name) },
      { label: 'Show', width: '7em', key: 'show' },
      { label: 'Shot', width: '7em', key: 'shot' },
      { label: 'User', width: '7em', key: 'user' },
      { label: 'State', width: '7em', render: (j) => stateBadge(j.paused && j.status !== 'FINISHED' ? 'PAUSED' : j.status) },
      { label: 'Progress', width: 'minmax(8em, 2fr)', render: (j) => progress(j.counts, j.total) },
      { label: 'Frames', width: '6em', cls: 'num', render: (j) => `${count(j.counts.succeeded + j.counts.eaten)}/${count(j.total)}` },
      { label: 'Pri', width: '4em', cls: 'num', key: 'priority' },
      { label: 'Submitted', width: '8em', render: (j) => h('span', { title: fullTime(j.submitted_at) }, time(j.submitted_at)) },
      { label: 'Time', width: '6em', cls: 'num', render: (j) => duration((j.finished_at || Date.now()) - j.submitted_at) },
      { label: 'Left', width: '6em', cls: 'num', render: (j) => eta(j) },
    ];
    table.onrow = (j) => go(`/jobs/${encodeURIComponent(j.name)}`);
    let jobs = [];
    const byId = new Map();
    const matches = (j) => (!f.shot || j.shot === f.shot);
    const load = async () => {
      const list = await all('/jobs', { show: f.show, user: f.user, state: f.state, name: f.name, all: f.all || undefined }, 'jobs');
      jobs = list.filter(matches).reverse();
      byId.clear();
      jobs.forEach((j, i) => byId.set(j.id, i));
      fill(summary, `${count(jobs.length)} jobs`);
      table.show(columns, rowsOf(jobs));
    };
    await load();
    // Live: a change to a job itself re-reads it at once; frame events mark
    // their job stale, and stale jobs are read again at most 50 a second
    // (the rest at the next tick); a new job that passes the filters comes
    // in at the top. No full reload while it runs.
    const stale = new Set();
    const reindex = () => {
      byId.clear();
      jobs.forEach((j, i) => byId.set(j.id, i));
      fill(summary, `${count(jobs.length)} jobs`);
    };
    const passes = (j) => matches(j) && (!f.show || j.show === f.show) && (!f.user || j.user === f.user)
      && (!f.name || j.name.includes(f.name)) && (!f.state || j.status === f.state);
    const now = async (id) => {
      try {
        const d = await api(`/jobs/${id}`);
        const i = byId.get(id);
        if (i !== undefined) { jobs[i] = d.job; table.refresh(); }
      } catch (e) { stale.add(id); }
    };
    const arrived = async (id) => {
      try {
        const d = await api(`/jobs/${id}`);
        if (byId.has(id) || !passes(d.job)) return;
        jobs.unshift(d.job);
        reindex();
        table.refresh();
      } catch (e) { /* gone again, or not ours to read */ }
    };
    const ev = follow({ show: f.show }, (e) => {
      if (e.kind === 'job.submitted') arrived(e.job_id);
      else if (e.kind.startsWith('job.') && byId.has(e.job_id)) now(e.job_id);
      else if (e.job_id && byId.has(e.job_id)) stale.add(e.job_id);
    }, liveState);
    const timer = setInterval(async () => {
      const ids = [...stale].slice(0, 50);
      ids.forEach((id) => stale.delete(id));
      try {
        await Promise.all(ids.map(async (id) => {
          const d = await api(`/jobs/${id}`);
          const i = byId.get(id);
          if (i !== undefined) jobs[i] = d.job;
        }));
        if (ids.length) table.refresh();
      } catch (e) { ids.forEach((id) => stale.add(id)); }
    }, 1000);
    return () => { ev.close(); clearInterval(timer); };
  };
}
