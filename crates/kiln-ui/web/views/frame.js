// One frame: its attempts (host, times, exit, cause), what it rendered
// (its outputs' previews, a flag if they look bad), its memory and CPU
// over time (live while it runs), and its log, which
// follows as it grows while the frame runs, with search, highlighting,
// a jump to the first error, and a download.

import { h, fill, link, toast } from '../dom.js';
import { api, qs, follow } from '../api.js';
import { mayAct } from '../auth.js';
import { duration, kib, time, fullTime } from '../fmt.js';
import { VTable, rowsOf } from '../vtable.js';
import { liveState } from '../app.js';
import { stateBadge } from './jobs.js';
import { exitText, runtime } from './job.js';
import { outputsSection } from './previews.js';
import { lineChart } from '../chart.js';

/** An attempt's memory and CPU (in cores: CPU time over wall time between
 * samples) as two charts. */
function usageCharts(u) {
  const s = u.samples;
  const mem = s.map((p) => [p.t, p.rss_kb]);
  const cpu = s.slice(1).map((p, i) => [p.t, Math.max(0, (p.cpu_ms - s[i].cpu_ms) / Math.max(1, p.t - s[i].t))]);
  const none = u.attempt ? (u.running ? 'No sample yet: the first comes within seconds.' : 'Its worker sent no samples (it ended within a second).') : 'It has not run yet.';
  return [
    lineChart(`Memory, attempt ${u.attempt || '–'}${u.running ? ' (live)' : ''}`, [{ name: 'resident', points: mem }], kib, none),
    lineChart('CPU (cores busy)', [{ name: 'cores', points: cpu, color: '#3fa35b' }], (v) => (v >= 10 ? Math.round(v) : +v.toFixed(2)).toString(), s.length > 1 ? none : 'Too few samples yet to tell.'),
  ];
}

/** Lines that read as errors, for "first error". */
const ERROR = /\b(error|fatal|exception|traceback|segmentation fault|killed)\b/i;
const MAX_LINES = 20000; // drawn at once; the download has everything

export function frameView(id) {
  return async (main) => {
    let d = await api(`/frames/${id}`);
    const head = h('section', { class: 'job-head' });
    const outBox = h('div', {});
    const usageBox = h('div', { class: 'charts usage' });
    const attempts = new VTable();
    attempts.classList.add('short');
    const logBox = h('pre', { class: 'log', tabindex: 0, 'aria-label': 'Log' });
    const search = h('input', { type: 'search', placeholder: 'Search the log (regex)', 'aria-label': 'Search the log' });
    const found = h('span', { class: 'muted' });
    const which = h('span', { class: 'muted' });
    const follows = h('input', { type: 'checkbox', checked: true });
    let attempt = null; // null: the latest
    let text = '';
    let offset = 0;
    let complete = false;
    let job = null;

    const drawHead = () => {
      const f = d.frame;
      fill(head,
        h('div', { class: 'title' }, h('h2', {}, link(`/jobs/${encodeURIComponent(d.job)}`, d.job), ' / ', `${f.layer}/${f.number}`), stateBadge(f.state)),
        h('div', { class: 'facts' },
          f.host && h('span', {}, 'host ', h('b', {}, f.host)),
          h('span', {}, 'tries ', h('b', {}, f.attempts)),
          f.started_at && h('span', { title: fullTime(f.started_at) }, 'started ', h('b', {}, time(f.started_at))),
          f.started_at && h('span', {}, 'runtime ', h('b', {}, runtime(f))),
          f.max_rss_kb ? h('span', {}, 'peak memory ', h('b', {}, kib(f.max_rss_kb))) : null,
          exitText(f) && h('span', {}, 'exit ', h('b', {}, exitText(f))),
          f.why && h('span', {}, 'waiting: ', h('b', {}, f.why.text)),
          f.reason && h('span', {}, 'cause: ', h('b', {}, f.reason))),
        job && mayAct(job) && h('div', { class: 'actions' },
          ['retry', 'eat', 'kill'].map((a) => h('button', { class: a === 'retry' ? '' : 'danger', onclick: async () => {
            try { toast((await api(`/frames/${id}/${a}`, { method: 'POST' })).message); } catch (e) { toast(e.message, 'error'); }
          } }, a[0].toUpperCase() + a.slice(1)))));
      fill(outBox, outputsSection(f));
    };

    const drawLog = () => {
      let lines = text.split('\n');
      if (lines.length > MAX_LINES) lines = lines.slice(-MAX_LINES);
      let re = null;
      try { re = search.value ? new RegExp(search.value, 'gi') : null; } catch (e) { fill(found, `not a regular expression: ${e.message}`); }
      let hits = 0;
      const nodes = lines.map((line) => {
        const el = h('span', { class: ERROR.test(line) ? 'line err' : 'line' });
        if (re) {
          let at = 0;
          for (const m of line.matchAll(re)) {
            if (!m[0]) break;
            el.append(line.slice(at, m.index), h('mark', {}, m[0]));
            at = m.index + m[0].length;
            hits++;
          }
          el.append(line.slice(at));
        } else el.append(line);
        return [el, '\n'];
      });
      fill(logBox, nodes.flat());
      if (re) fill(found, `${hits} matches`);
      else if (!text) fill(found, complete ? 'The log is empty.' : 'No output yet.');
      else fill(found);
      if (follows.checked) logBox.scrollTop = logBox.scrollHeight;
    };

    const readUsage = async () => {
      const asked = attempt;
      try {
        const u = await api(`/frames/${id}/usage${qs({ attempt: asked })}`);
        // Another attempt was chosen meanwhile: its own read draws it.
        if (asked === attempt) fill(usageBox, usageCharts(u));
      } catch (e) {
        if (asked === attempt) fill(usageBox, h('p', { class: 'muted' }, `Memory and CPU: ${e.message}`));
      }
    };

    const readLog = async () => {
      for (;;) {
        const a = await api(`/frames/${id}/log${qs({ offset, attempt })}`);
        if (a.data) text += a.data;
        offset = a.next_offset;
        complete = a.complete;
        fill(which, `attempt ${a.attempt}${complete ? '' : ', still writing'}`);
        if (!a.data || complete) break;
      }
      drawLog();
    };

    const drawAttempts = async () => {
      const list = (await api(`/frames/${id}/attempts`)).attempts;
      attempts.show([
        { label: '#', width: '3em', cls: 'num', key: 'attempt' },
        { label: 'Host', width: 'minmax(6em, 1fr)', key: 'host' },
        { label: 'Started', width: '8em', render: (a) => h('span', { title: fullTime(a.started_at) }, time(a.started_at)) },
        { label: 'Runtime', width: '6em', cls: 'num', render: (a) => duration(a.runtime_ms) },
        { label: 'Peak mem', width: '6.5em', cls: 'num', render: (a) => a.max_rss_kb ? kib(a.max_rss_kb) : '' },
        { label: 'CPU', width: '6em', cls: 'num', render: (a) => duration(a.cpu_ms) },
        { label: 'Exit', width: '7em', render: exitText },
        { label: 'Cause', width: 'minmax(10em, 3fr)', render: (a) => a.reason || '' },
      ], rowsOf(list.slice().reverse()));
      attempts.onrow = async (a) => {
        attempt = a.attempt; text = ''; offset = 0;
        await Promise.all([readLog(), readUsage()]);
      };
    };

    search.addEventListener('input', () => drawLog());
    fill(main, head, outBox,
      h('section', {}, h('h3', {}, 'Attempts'), attempts),
      h('section', {}, h('h3', {}, 'Memory and CPU'), usageBox),
      h('section', { class: 'log-section' },
        h('div', { class: 'toolbar' }, h('h3', {}, 'Log'), which, search, found,
          h('button', { onclick: () => {
            const i = text.split('\n').findIndex((l) => ERROR.test(l));
            const el = logBox.querySelector('.line.err');
            if (i < 0 || !el) return toast('No line reads as an error.');
            follows.checked = false;
            el.scrollIntoView({ block: 'center' });
            el.classList.add('flash');
          } }, 'First error'),
          h('label', { class: 'check' }, follows, 'follow'),
          h('button', { onclick: () => {
            const a = h('a', { href: URL.createObjectURL(new Blob([text], { type: 'text/plain' })), download: `${d.job}-${d.frame.layer}-${d.frame.number}.log` });
            a.click();
            setTimeout(() => URL.revokeObjectURL(a.href), 1000);
          } }, 'Download')),
        logBox));
    try { job = (await api(`/jobs/${d.job_id}`)).job; } catch (e) { job = null; }
    drawHead();
    await drawAttempts();
    await Promise.all([readLog(), readUsage()]);

    // The log grows while the frame runs: read what is new every second.
    // Its state changes come as events.
    const ev = follow({ job: String(d.job_id) }, async (e) => {
      if (e.frame_id !== id) return;
      d = await api(`/frames/${id}`);
      drawHead();
      drawAttempts();
      if (e.kind === 'frame.started') { attempt = null; text = ''; offset = 0; complete = false; }
      readUsage();
    }, liveState);
    let ticks = 0;
    const timer = setInterval(() => {
      if (!complete && attempt === null) readLog().catch(() => {});
      // The live series grows with each heartbeat (every few seconds).
      if (++ticks % 5 === 0 && d.frame.state === 'RUNNING' && attempt === null) readUsage();
    }, 1000);
    return () => { ev.close(); clearInterval(timer); };
  };
}
