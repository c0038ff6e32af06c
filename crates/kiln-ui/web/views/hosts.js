// The wrangler's hosts table: state, lock, load, frames, tags, allocation
// and memory, with lock, unlock, repair and fixed for those who may.

import { h, fill, confirmAction, toast } from '../dom.js';
import { api, all, follow } from '../api.js';
import { mayWrangleHosts } from '../auth.js';
import { kib, time, fullTime, count } from '../fmt.js';
import { VTable, rowsOf } from '../vtable.js';
import { go, liveState } from '../app.js';
import { runningTable } from './job.js';

export function hostsView() {
  return async (main) => {
    const url = new URLSearchParams(location.search);
    const f = { state: url.get('state') || '', q: url.get('q') || '' };
    const setParam = (k, v) => {
      const u = new URLSearchParams(location.search);
      if (v) u.set(k, v); else u.delete(k);
      const s = u.toString();
      go(location.pathname + (s ? `?${s}` : ''), true);
    };
    const wrangler = mayWrangleHosts();
    const table = new VTable();
    table.empty = 'No hosts yet. Start one with `kiln worker --server URL --join TOKEN` on a render host.';
    const summary = h('span', { class: 'muted' });
    const detail = h('section', { class: 'host-detail' });
    let hosts = [];
    const showRunning = async (name) => {
      const list = (await api(`/running?host=${encodeURIComponent(name)}`)).frames;
      fill(detail, h('h3', {}, `Running on ${name}`), runningTable(list, `${name} runs nothing now.`));
    };
    table.onrow = (x) => {
      setParam('host', x.name);
    };
    const act = async (host, action) => {
      if (action === 'repair' && !(await confirmAction(`Send ${host.name} to repair? It takes no new frames until marked fixed.`, 'Repair'))) return;
      let body;
      if (action === 'tag') {
        const v = prompt(`Tags to add to ${host.name} (comma-separated):`);
        if (!v) return;
        body = { tags: v.split(',').map((t) => t.trim()).filter(Boolean) };
      } else if (action === 'move') {
        const v = prompt(`Move ${host.name} to which allocation (FACILITY.POOL)?`, host.allocation);
        if (!v) return;
        body = { allocation: v.trim() };
      }
      try {
        toast((await api(`/hosts/${encodeURIComponent(host.name)}/${action}`, { method: 'POST', body })).message);
        await refreshOne(host.name);
      } catch (e) { toast(e.message, 'error'); }
    };
    const columns = [
      { label: 'Host', width: 'minmax(8em, 2fr)', key: 'name' },
      { label: 'State', width: '6em', render: (x) => h('span', { class: `badge h-${x.state.toLowerCase()}` }, x.state) },
      { label: 'Lock', width: '6em', render: (x) => x.lock === 'LOCKED' ? h('span', { class: 'badge h-locked' }, 'LOCKED') : '' },
      { label: 'Alloc', width: 'minmax(6em, 1fr)', key: 'allocation' },
      { label: 'Cores', width: '7em', cls: 'num', render: (x) => `${(x.cores_used / 100).toFixed(0)}/${(x.cores / 100).toFixed(0)}` },
      { label: 'Frames', width: '5.5em', cls: 'num', key: 'running' },
      { label: 'Load', width: '4.5em', cls: 'num', render: (x) => x.load.toFixed(2) },
      { label: 'Memory', width: '12em', cls: 'num', render: (x) => `${kib(x.memory_used_kb)} / ${kib(x.total_memory_kb)}` },
      { label: 'Tags', width: 'minmax(8em, 2fr)', render: (x) => x.tags.join(' ') },
      { label: 'Seen', width: '8.5em', render: (x) => h('span', { title: fullTime(x.last_seen) }, time(x.last_seen)) },
      wrangler && { label: '', width: '18em', render: (x) => h('span', { class: 'row-actions' },
        h('button', { onclick: () => act(x, 'tag') }, 'Tag…'),
        h('button', { onclick: () => act(x, 'move') }, 'Move…'),
        x.lock === 'LOCKED' ? h('button', { onclick: () => act(x, 'unlock') }, 'Unlock') : h('button', { onclick: () => act(x, 'lock') }, 'Lock'),
        x.state === 'REPAIR' ? h('button', { onclick: () => act(x, 'fixed') }, 'Fixed') : h('button', { class: 'danger', onclick: () => act(x, 'repair') }, 'Repair')) },
    ].filter(Boolean);
    const shown = () => hosts.filter((x) => (!f.state || x.state === f.state || (f.state === 'LOCKED' && x.lock === 'LOCKED'))
      && (!f.q || x.name.includes(f.q) || x.tags.some((t) => t.includes(f.q)) || x.allocation.includes(f.q)));
    const draw = () => {
      const rows = shown();
      const up = hosts.filter((x) => x.state === 'UP').length;
      fill(summary, `${count(rows.length)} of ${count(hosts.length)} hosts · ${count(up)} up`);
      table.show(columns, rowsOf(rows));
    };
    const refreshOne = async (name) => {
      const x = await api(`/hosts/${encodeURIComponent(name)}`);
      const i = hosts.findIndex((y) => y.name === name);
      if (i >= 0) hosts[i] = x; else hosts.push(x);
      const rows = table.source && table.source.rows;
      const j = rows ? rows.findIndex((y) => y.name === name) : -1;
      if (j >= 0) { rows[j] = x; table.refresh(); } else draw();
    };
    fill(main,
      h('div', { class: 'toolbar' }, h('h2', {}, 'Hosts'),
        h('input', { type: 'search', placeholder: 'Name, tag or allocation  ( / )', value: f.q, 'aria-label': 'Search hosts', onchange: (e) => setParam('q', e.target.value.trim()) }),
        h('label', {}, 'State', h('select', { onchange: (e) => setParam('state', e.target.value) },
          ['', 'UP', 'DOWN', 'REPAIR', 'LOCKED'].map((s) => h('option', { value: s, selected: s === f.state }, s || 'any')))),
        summary),
      table, detail);
    hosts = await all('/hosts', {}, 'hosts');
    draw();
    const picked = url.get('host');
    if (picked) showRunning(picked).catch((e) => fill(detail, h('p', { class: 'form-error' }, e.message)));
    // Live: a host's own events read it again; frames starting and ending
    // move its load, read at most every 5 seconds.
    const busy = new Set();
    const ev = follow({}, (e) => {
      if (!e.host) return;
      if (e.kind.startsWith('host.')) refreshOne(e.host).catch(() => {});
      else busy.add(e.host);
    }, liveState);
    const timer = setInterval(() => {
      const names = [...busy];
      busy.clear();
      if (names.length > 100) all('/hosts', {}, 'hosts').then((x) => { hosts = x; draw(); }, () => {});
      else names.forEach((n) => refreshOne(n).catch(() => {}));
    }, 5000);
    return () => { ev.close(); clearInterval(timer); };
  };
}
