// <kiln-vtable>: a table that draws only the rows on screen, so a job of
// 100,000 frames scrolls as lightly as one of ten. Rows come from a
// source that loads them from the server a page at a time, ahead of the
// scroll, and may not know them all yet.

import { h, toast } from './dom.js';

const ROW = 30; // px: one row's height (style.css .vt-row)
const OVERSCAN = 10;

/**
 * A source of rows loaded a page at a time, at any position: `count()`
 * rows in all (as the server's counts say), `row(i)` the i-th if loaded,
 * `need(from, to)` loads the pages that range falls in (by offset, so a
 * jump to the end of 100,000 rows costs one page, not all before it) and
 * resolves when they are in.
 */
export class Pager {
  constructor(fetchPage, total = 0, size = 500) {
    this.fetchPage = fetchPage; // (offset, size) => {items}
    this.size = size;
    this.pages = new Map(); // page number → rows
    this.loading = new Map(); // page number → promise
    this.index = new Map(); // id → position, for live updates
    this.total = total;
    this.done = false;
  }
  count() { return this.total; }
  row(i) {
    const p = this.pages.get(Math.floor(i / this.size));
    return p && p[i % this.size];
  }
  get rows() { return [...this.pages.values()].flat(); }
  load(n) {
    if (this.pages.has(n)) return Promise.resolve();
    if (!this.loading.has(n)) {
      this.loading.set(n, this.fetchPage(n * this.size, this.size).then(({ items }) => {
        this.pages.set(n, items);
        items.forEach((r, k) => this.index.set(r.id, n * this.size + k));
        // A short page is the end, whatever the counts said; a full one
        // past the count means more: one row more asks for the next page.
        if (items.length < this.size) this.total = n * this.size + items.length;
        else if (this.total <= (n + 1) * this.size) this.total = (n + 1) * this.size + 1;
        this.loading.delete(n);
        this.done = true;
      }, (e) => { this.loading.delete(n); throw e; }));
    }
    return this.loading.get(n);
  }
  async need(from, to) {
    const first = Math.floor(from / this.size);
    const last = Math.floor(Math.max(from, to - 1) / this.size);
    const want = [];
    for (let n = first; n <= last; n++) want.push(this.load(n));
    if (!this.total) want.push(this.load(0));
    await Promise.all(want);
  }
  /** Changes the loaded row with this id in place (a live update); true if it is loaded. */
  patch(id, change) {
    const i = this.index.get(id);
    if (i === undefined) return false;
    const p = this.pages.get(Math.floor(i / this.size));
    const k = i % this.size;
    if (!p || !p[k] || p[k].id !== id) return false;
    p[k] = { ...p[k], ...change };
    return true;
  }
}

export class VTable extends HTMLElement {
  constructor() {
    super();
    this.columns = [];
    this.source = null;
    this.selectable = false;
    this.selected = new Set();
    this.cursor = -1;
    this.onrow = null;
    this.empty = 'Nothing here.';
    this.pending = false;
  }

  connectedCallback() {
    if (this.viewport) return;
    this.head = h('div', { class: 'vt-head', role: 'row' });
    this.spacer = h('div', { class: 'vt-spacer' });
    this.body = h('div', { class: 'vt-body', role: 'rowgroup' });
    this.viewport = h('div', { class: 'vt-viewport', tabindex: 0, role: 'grid' }, this.spacer, this.body);
    this.viewport.addEventListener('scroll', () => this.refresh(), { passive: true });
    this.viewport.addEventListener('keydown', (e) => this.key(e));
    this.append(this.head, this.viewport);
    new ResizeObserver(() => this.refresh()).observe(this.viewport);
    this.setup();
  }

  /** Sets the columns and source and draws from the top. */
  show(columns, source) {
    this.columns = columns;
    this.source = source;
    this.cursor = -1;
    if (this.viewport) { this.viewport.scrollTop = 0; this.setup(); }
  }

  setup() {
    const cols = (this.selectable ? ['2.2em'] : []).concat(this.columns.map((c) => c.width || '1fr'));
    this.style.setProperty('--vt-cols', cols.join(' '));
    this.head.replaceChildren(
      ...(this.selectable ? [h('span', { class: 'vt-cell' }, h('input', {
        type: 'checkbox', title: 'Select all loaded rows', onchange: (e) => this.selectAll(e.target.checked),
      }))] : []),
      ...this.columns.map((c) => h('span', { class: `vt-cell ${c.cls || ''}`, role: 'columnheader', title: c.title || '' }, c.label)));
    this.refresh();
  }

  /** Draws again at the next frame (after data or a scroll). */
  refresh() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.draw(); });
  }

  draw() {
    if (!this.source || !this.viewport) return;
    const n = this.source.count();
    this.spacer.style.height = `${n * ROW}px`;
    const top = this.viewport.scrollTop;
    const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
    const last = Math.min(n, Math.ceil((top + this.viewport.clientHeight) / ROW) + OVERSCAN);
    const gaps = this.missing(first, last);
    const wasDone = this.source.done;
    this.source.need(first, last).then(() => {
      // Drawn with rows still to come, or the count moved: draw again.
      if (gaps || this.source.count() !== n || this.source.done !== wasDone) this.refresh();
    }, (e) => toast(`Could not load the rows: ${e.message}`, 'error'));
    this.body.style.transform = `translateY(${first * ROW}px)`;
    const rows = [];
    for (let i = first; i < last; i++) rows.push(this.rowEl(i, this.source.row(i)));
    // When the first real rows show: bench/ui.sh reads it.
    if (!this.marked && last > first && !gaps && this.id) {
      this.marked = true;
      performance.mark(`kiln:rows:${this.id}`);
    }
    const empty = n === 0 && this.source.done !== false;
    if (empty) rows.push(h('div', { class: 'vt-empty' }, this.empty));
    this.classList.toggle('is-empty', empty);
    this.body.replaceChildren(...rows);
  }

  missing(first, last) {
    for (let i = first; i < last; i++) if (!this.source.row(i)) return true;
    return false;
  }

  rowEl(i, r) {
    if (!r) return h('div', { class: 'vt-row loading', role: 'row' }, h('span', { class: 'vt-cell' }, '…'));
    const id = r.id ?? i;
    const el = h('div', {
      class: `vt-row${i === this.cursor ? ' cursor' : ''}${this.selected.has(id) ? ' selected' : ''}`,
      role: 'row', 'data-index': i, 'data-id': id,
      onclick: (e) => {
        if (e.target.closest('input,button,a')) return;
        this.cursor = i;
        if (this.onrow) this.onrow(r, e);
        this.refresh();
      },
    });
    if (this.selectable) {
      el.append(h('span', { class: 'vt-cell' }, h('input', {
        type: 'checkbox', checked: this.selected.has(id), 'aria-label': 'Select',
        onchange: (e) => { this.toggle(id, e.target.checked); },
      })));
    }
    for (const c of this.columns) {
      const v = c.render ? c.render(r) : r[c.key];
      el.append(h('span', { class: `vt-cell ${c.cls || ''}`, role: 'gridcell', title: typeof v === 'string' ? v : '' }, v));
    }
    return el;
  }

  toggle(id, on) {
    if (on) this.selected.add(id); else this.selected.delete(id);
    this.dispatchEvent(new CustomEvent('selection'));
    this.refresh();
  }

  selectAll(on) {
    this.selected.clear();
    if (on) for (let i = 0; i < this.source.count(); i++) { const r = this.source.row(i); if (r) this.selected.add(r.id ?? i); }
    this.dispatchEvent(new CustomEvent('selection'));
    this.refresh();
  }

  key(e) {
    const n = this.source ? this.source.count() : 0;
    const page = Math.max(1, Math.floor(this.viewport.clientHeight / ROW) - 1);
    const moves = { ArrowDown: 1, ArrowUp: -1, PageDown: page, PageUp: -page, j: 1, k: -1 };
    if (e.key in moves) {
      this.cursor = Math.max(0, Math.min(n - 1, this.cursor + moves[e.key]));
      const y = this.cursor * ROW;
      if (y < this.viewport.scrollTop) this.viewport.scrollTop = y;
      else if (y + ROW > this.viewport.scrollTop + this.viewport.clientHeight) this.viewport.scrollTop = y + ROW - this.viewport.clientHeight;
      this.refresh();
      e.preventDefault();
    } else if (e.key === 'Enter' && this.cursor >= 0) {
      const r = this.source.row(this.cursor);
      if (r && this.onrow) this.onrow(r, e);
    } else if (e.key === ' ' && this.selectable && this.cursor >= 0) {
      const r = this.source.row(this.cursor);
      if (r) this.toggle(r.id ?? this.cursor, !this.selected.has(r.id ?? this.cursor));
      e.preventDefault();
    }
  }
}

customElements.define('kiln-vtable', VTable);

/** A source over rows already in hand. */
export function rowsOf(rows) {
  return { rows, done: true, count: () => rows.length, row: (i) => rows[i], need: async () => {} };
}
