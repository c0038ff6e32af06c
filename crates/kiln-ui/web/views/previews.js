// What frames rendered: thumbnails of their outputs in the frames table and
// the frame's page, and a contact sheet of a layer's frames, flagged frames
// marked (missing, empty, black or unreadable outputs, flickers).

import { h, fill } from '../dom.js';
import { api, showImage, qs } from '../api.js';
import { kib } from '../fmt.js';
import { stateBadge } from './jobs.js';

/** Path of a frame's output preview; by attempt, so it is cached for good. */
export function thumbPath(f, n = 0) {
  return `/frames/${f.id}/outputs/${n}/thumbnail${qs({ attempt: f.attempts || undefined })}`;
}

/** An <img> of output `n` of frame `f`, filled in when it has loaded; a
 * placeholder naming what is wrong where there is no preview. */
export function thumb(f, n = 0, cls = 'thumb') {
  const o = (f.outputs || [])[n];
  if (!o || !o.thumbnail) {
    return h('span', { class: `${cls} none`, title: o ? `${o.path}: ${o.state}` : 'no preview yet' }, o ? o.state : '');
  }
  const img = h('img', { class: cls, alt: `${f.layer}/${f.number}: ${o.path}`, title: o.path, decoding: 'async' });
  showImage(img, thumbPath(f, n)).catch(() => img.classList.add('broken'));
  return img;
}

/** The flag of a bad frame, as a small marker that says why on hover. */
export function flagMark(f) {
  return f.flag ? h('span', { class: 'flag', title: f.flag, 'aria-label': `flagged: ${f.flag}` }, '⚑') : null;
}

/** A frame's outputs, each with its preview, state and figures. */
export function outputsSection(f) {
  const outs = f.outputs || [];
  if (!outs.length) return null;
  return h('section', { class: 'outputs' },
    h('h3', {}, 'Outputs'),
    f.flag && h('p', { class: 'flag-line' }, '⚑ ', f.flag),
    h('div', { class: 'output-list' }, outs.map((o, n) => h('figure', { class: `output s-${o.state}` },
      thumb(f, n, 'preview'),
      h('figcaption', {},
        h('code', {}, o.path), ' ', h('span', { class: `badge o-${o.state}` }, o.state.toUpperCase()),
        h('div', { class: 'muted' }, [
          o.width ? `${o.width}×${o.height}` : null,
          o.size ? kib(o.size / 1024) : null,
          o.brightness !== undefined ? `brightness ${Math.round(o.brightness * 100)} %` : null,
          o.detail || null,
        ].filter(Boolean).join(' · ')))))));
}

/**
 * A contact sheet: the frames of the job (of one layer, in one state) as a
 * grid of previews, loaded a page at a time as the sheet is scrolled.
 */
export function contactSheet(jobId, filter) {
  const grid = h('div', { class: 'sheet', role: 'list' });
  const more = h('div', { class: 'sheet-more muted' }, 'Loading…');
  const box = h('div', { class: 'sheet-box' }, grid, more);
  let offset = 0;
  let loading = false;
  let ended = false;
  const cards = new Map(); // frame id → card, for live updates
  const card = (f) => h('a', {
    href: `/frames/${f.id}`, 'data-link': true, role: 'listitem',
    class: `card${f.flag ? ' flagged' : ''}`, title: f.flag || `${f.layer}/${f.number}`,
  }, thumb(f, 0, 'sheet-img'), h('span', { class: 'card-label' }, flagMark(f), `${f.layer}/${f.number}`, ' ', stateBadge(f.state)));
  const loadMore = async () => {
    if (loading || ended) return;
    loading = true;
    try {
      const a = await api(`/jobs/${jobId}/frames${qs({ ...filter, offset, page_size: 200 })}`);
      for (const f of a.frames) {
        const c = card(f);
        cards.set(f.id, c);
        grid.append(c);
      }
      offset += a.frames.length;
      ended = a.frames.length < 200;
      fill(more, ended ? (offset ? '' : 'No frames to show: change the filters above.') : 'Scroll for more…');
    } catch (e) {
      fill(more, `Cannot load the frames: ${e.message}`);
    } finally {
      loading = false;
    }
  };
  // More as the end of the sheet comes into view.
  const seen = new IntersectionObserver((es) => { if (es.some((e) => e.isIntersecting)) loadMore(); }, { root: null, rootMargin: '400px' });
  seen.observe(more);
  loadMore();
  return {
    el: box,
    /** Draws a frame again after it changed (its preview is new). */
    async update(id) {
      const old = cards.get(id);
      if (!old) return;
      const f = (await api(`/frames/${id}`)).frame;
      const c = card(f);
      cards.set(id, c);
      old.replaceWith(c);
    },
    close() { seen.disconnect(); },
  };
}

