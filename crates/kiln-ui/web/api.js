// The REST API and the event stream, as the UI uses them: the same calls
// any script makes (docs/rest.md).

import { token } from './auth.js';

export class ApiError extends Error {
  constructor(status, detail, problem) {
    super(detail);
    this.status = status;
    this.problem = problem;
  }
}

/** Listeners told when the server refuses the session (401). */
const unauthorized = new Set();
export function onUnauthorized(f) { unauthorized.add(f); }

function headers(extra) {
  const h = { ...extra };
  const t = token();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

/** Calls `/api/v1{path}`; the answer's JSON, or an ApiError with the server's words. */
export async function api(path, { method = 'GET', body, headers: extra = {} } = {}) {
  const h = headers(extra);
  if (body !== undefined && typeof body !== 'string') {
    body = JSON.stringify(body);
    h['Content-Type'] = 'application/json';
  }
  let r;
  try {
    r = await fetch(`/api/v1${path}`, { method, body, headers: h });
  } catch (e) {
    throw new ApiError(0, 'The server cannot be reached. Is it running? Retrying shortly…');
  }
  const type = r.headers.get('content-type') || '';
  const data = type.includes('json') ? await r.json() : await r.text();
  if (!r.ok) {
    if (r.status === 401) unauthorized.forEach((f) => f());
    const detail = (data && (data.detail || data.title)) || `${r.status} ${r.statusText}`;
    throw new ApiError(r.status, detail, data);
  }
  return data;
}

/**
 * Shows an image from the API in `img`: fetched with the token (an <img
 * src> cannot send it). The most recent few hundred are kept as blobs, so
 * a table redrawn on scroll asks for none twice; each <img> gets an object
 * URL of its own, let go once it has drawn.
 */
const images = new Map(); // path → Promise<Blob>
const KEEP_IMAGES = 400;
export function showImage(img, path) {
  let p = images.get(path);
  if (p) {
    images.delete(path); // most recently used last
  } else {
    p = fetch(`/api/v1${path}`, { headers: headers() }).then(async (r) => {
      if (!r.ok) throw new ApiError(r.status, `${r.status} ${r.statusText}`);
      return r.blob();
    });
    // A failed one is asked for again next time (only if still this one).
    p.catch(() => { if (images.get(path) === p) images.delete(path); });
  }
  images.set(path, p);
  while (images.size > KEEP_IMAGES) images.delete(images.keys().next().value);
  return p.then((blob) => {
    const url = URL.createObjectURL(blob);
    const done = () => URL.revokeObjectURL(url);
    img.addEventListener('load', done, { once: true });
    img.addEventListener('error', done, { once: true });
    img.src = url;
  });
}

/** `?a=1&b=x`, leaving out empty values. */
export function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') p.set(k, v);
  }
  const s = p.toString();
  return s ? `?${s}` : '';
}

/** Every page of a list, `key` naming the array in each answer. */
export async function all(path, params, key) {
  const out = [];
  let page_token;
  do {
    const a = await api(path + qs({ ...params, page_size: 1000, page_token }));
    out.push(...a[key]);
    page_token = a.next_page_token;
  } while (page_token);
  return out;
}

/**
 * Follows `GET /events` with the filters in `params`, calling `onEvent`
 * with each event; after a dropped connection it resumes from the last
 * event seen (`Last-Event-ID`), so nothing is missed. `onState` hears
 * 'live' or 'reconnecting'. Read with fetch rather than EventSource,
 * which cannot send the token.
 */
export function follow(params, onEvent, onState = () => {}) {
  let last = null;
  let stopped = false;
  let ctrl = null;
  let wait = 500;
  async function run() {
    while (!stopped) {
      ctrl = new AbortController();
      try {
        const h = headers(last === null ? {} : { 'Last-Event-ID': String(last) });
        const r = await fetch(`/api/v1/events${qs(params)}`, { headers: h, signal: ctrl.signal });
        if (r.status === 401) { unauthorized.forEach((f) => f()); return; }
        if (!r.ok) throw new Error(`${r.status}`);
        onState('live');
        wait = 500;
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          const msgs = (buf + value).split('\n\n');
          buf = msgs.pop(); // the part of a message still to come
          let start = performance.now();
          for (const msg of msgs) {
            // A burst (a fill starts tens of thousands of frames) is taken
            // in slices of a few milliseconds, so the page stays responsive.
            if (performance.now() - start > 8) {
              await new Promise((res) => setTimeout(res, 0));
              if (stopped) return;
              start = performance.now();
            }
            let id = null, kind = 'message', data = '';
            for (const line of msg.split('\n')) {
              if (line.startsWith('id:')) id = line.slice(3).trim();
              else if (line.startsWith('event:')) kind = line.slice(6).trim();
              else if (line.startsWith('data:')) data += line.slice(5).trimStart();
            }
            // The first message is only an id: where the stream starts.
            if (id !== null && kind !== 'error') last = Number(id);
            if (!data) continue;
            if (kind === 'error') throw new Error(data);
            // Counted for bench/ui.sh, which checks the page keeps up.
            window.__kilnEvents = (window.__kilnEvents || 0) + 1;
            try { onEvent(JSON.parse(data)); } catch (e) { console.error(e); }
          }
        }
      } catch (e) {
        if (stopped) return;
      }
      if (stopped) return;
      onState('reconnecting');
      await new Promise((res) => setTimeout(res, wait));
      wait = Math.min(wait * 2, 10000);
    }
  }
  run();
  return { close() { stopped = true; if (ctrl) ctrl.abort(); } };
}
