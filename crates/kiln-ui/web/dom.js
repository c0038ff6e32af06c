// Building the page's elements: text is always set as text, never parsed
// as HTML, so a job or host name can never inject markup.

/** An element: h('a', {href: '/x', class: 'y', onclick: f}, 'text', child). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A link inside the app: followed without reloading the page. */
export function link(href, ...children) {
  return h('a', { href, 'data-link': true }, ...children);
}

/** Asks before a destructive action; resolves true if confirmed. */
export function confirmAction(text, verb = 'Confirm') {
  return new Promise((resolve) => {
    const dlg = h('dialog', { class: 'confirm' },
      h('p', {}, text),
      h('div', { class: 'buttons' },
        h('button', { value: 'no', class: 'ghost', onclick: () => dlg.close('no') }, 'Cancel'),
        h('button', { value: 'yes', class: 'danger', 'data-confirm': true, onclick: () => dlg.close('yes') }, verb)));
    dlg.addEventListener('close', () => { dlg.remove(); resolve(dlg.returnValue === 'yes'); });
    document.body.append(dlg);
    dlg.showModal();
  });
}

/** A short message at the bottom of the screen. */
export function toast(text, kind = 'info') {
  let box = document.querySelector('.toasts');
  if (!box) { box = h('div', { class: 'toasts', role: 'status' }); document.body.append(box); }
  const t = h('div', { class: `toast ${kind}` }, text);
  box.append(t);
  setTimeout(() => t.remove(), kind === 'error' ? 8000 : 4000);
}
