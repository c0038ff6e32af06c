// The app's shell: the header, sign-in, and the router that maps each URL
// to a view, so every view is a link that can be shared.

import { h, fill, link, toast } from './dom.js';
import { api, onUnauthorized } from './api.js';
import { token, setToken, setWhoami, whoami } from './auth.js';
import { loginView } from './views/login.js';
import { jobsView } from './views/jobs.js';
import { jobView } from './views/job.js';
import { frameView } from './views/frame.js';
import { hostsView } from './views/hosts.js';
import { submitView } from './views/submit.js';
import { farmView } from './views/farm.js';

// A view is `(params, main) => cleanup?`: it fills `main` and returns a
// function that stops its live updates when the user leaves.
const ROUTES = [
  [/^\/$/, () => jobsView({ mine: true })],
  [/^\/jobs$/, () => jobsView({ mine: false })],
  [/^\/jobs\/([^/]+)$/, (m) => jobView(decodeURIComponent(m[1]))],
  [/^\/frames\/(\d+)$/, (m) => frameView(Number(m[1]))],
  [/^\/hosts$/, () => hostsView()],
  [/^\/submit$/, () => submitView()],
  [/^\/farm$/, () => farmView()],
  [/^\/login$/, () => loginView()],
];

class KilnApp extends HTMLElement {
  connectedCallback() {
    document.documentElement.dataset.theme = localStorage.getItem('kiln.theme') || 'dark';
    this.main = h('main', { id: 'main' });
    this.nav = h('nav', { class: 'top' });
    this.append(h('header', {}, this.nav), this.main);
    this.addEventListener('click', (e) => {
      const a = e.target.closest('a[data-link]');
      if (!a || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
      e.preventDefault();
      go(a.getAttribute('href'));
    });
    window.addEventListener('popstate', () => this.route());
    onUnauthorized(() => {
      setToken(null);
      if (location.pathname !== '/login') go(`/login?next=${encodeURIComponent(location.pathname + location.search)}`, true);
    });
    document.addEventListener('keydown', (e) => {
      if (e.target.closest('input,textarea,select') || e.ctrlKey || e.metaKey || e.altKey) return;
      const to = { g: '/', a: '/jobs', h: '/hosts', f: '/farm', s: '/submit' }[e.key];
      if (to) go(to);
      if (e.key === '/') { const s = document.querySelector('input[type=search]'); if (s) { s.focus(); e.preventDefault(); } }
    });
    this.route();
  }

  async route() {
    if (this.cleanup) { this.cleanup(); this.cleanup = null; }
    const path = location.pathname;
    if (path !== '/login' && !token()) {
      return go(`/login?next=${encodeURIComponent(path + location.search)}`, true);
    }
    if (path !== '/login' && !whoami()) {
      try {
        setWhoami(await api('/whoami'));
      } catch (e) {
        if (e.status !== 401) this.fail(e);
        return;
      }
    }
    this.header(path);
    for (const [re, view] of ROUTES) {
      const m = path.match(re);
      if (m) {
        fill(this.main);
        try {
          this.cleanup = await view(m)(this.main);
        } catch (e) {
          this.fail(e);
        }
        return;
      }
    }
    fill(this.main, h('div', { class: 'empty' }, h('h2', {}, 'No such page'), h('p', {}, 'Start from ', link('/', 'your jobs'), '.')));
  }

  fail(e) {
    fill(this.main, h('div', { class: 'empty error' }, h('h2', {}, 'Something went wrong'), h('p', {}, e.message),
      h('p', {}, h('button', { onclick: () => this.route() }, 'Try again'))));
  }

  header(path) {
    const me = whoami();
    const tab = (href, text, key) => {
      const a = link(href, text);
      a.title = `${text} (${key})`;
      if (href === path) a.setAttribute('aria-current', 'page');
      return a;
    };
    fill(this.nav,
      h('a', { href: '/', 'data-link': true, class: 'brand' }, h('img', { src: '/ui/icon.svg', alt: '' }), 'Kiln'),
      me && tab('/', 'My jobs', 'g'),
      me && tab('/jobs', 'All jobs', 'a'),
      me && tab('/hosts', 'Hosts', 'h'),
      me && tab('/farm', 'Farm', 'f'),
      me && tab('/submit', 'Submit', 's'),
      h('span', { class: 'grow' }),
      h('span', { id: 'live', class: 'live', title: 'Live updates' }),
      h('button', {
        class: 'ghost', title: 'Light or dark theme',
        onclick: () => {
          const t = document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark';
          document.documentElement.dataset.theme = t;
          localStorage.setItem('kiln.theme', t);
        },
      }, '◐'),
      me && h('span', { class: 'user', title: me.grants.map((g) => g.show ? `${g.right} on ${g.show}` : g.right).join(', ') }, me.user),
      me && h('button', {
        class: 'ghost', onclick: async () => {
          // The token's id is its third word (kiln_api_ID_SECRET): revoked
          // server-side too, so a copy of it is worth nothing.
          const id = (token() || '').split('_')[2];
          try { if (id) await api(`/tokens/${id}`, { method: 'DELETE' }); } catch (e) { /* gone already */ }
          setToken(null);
          go('/login', true);
        },
      }, 'Sign out'));
  }
}

/** Goes to an app URL (in place of the current entry with `replace`). */
export function go(url, replace = false) {
  if (replace) history.replaceState(null, '', url); else history.pushState(null, '', url);
  document.querySelector('kiln-app').route();
}

/** Shows whether live updates flow ('live', 'reconnecting'). */
export function liveState(state) {
  const el = document.getElementById('live');
  if (!el) return;
  el.className = `live ${state}`;
  el.textContent = state === 'live' ? '● live' : '○ reconnecting…';
}

// Uncaught errors are shown, and kept where the browser tests look; so
// are long tasks (over 50 ms), which bench/ui.sh reports.
window.__kilnErrors = [];
window.__kilnLongTasks = [];
try {
  new PerformanceObserver((l) => window.__kilnLongTasks.push(...l.getEntries().map((e) => e.duration)))
    .observe({ type: 'longtask', buffered: true });
} catch (e) { /* a browser without long-task timing */ }
window.addEventListener('error', (e) => window.__kilnErrors.push(String(e.message)));
window.addEventListener('unhandledrejection', (e) => {
  const text = (e.reason && e.reason.message) || String(e.reason);
  window.__kilnErrors.push(text);
  toast(text, 'error');
});
customElements.define('kiln-app', KilnApp);
