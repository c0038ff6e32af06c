// Submitting from the browser, as CueSubmit does: compose a job of layers
// in a form, or drop a spec file (Kiln YAML or JSON, or an OpenJD job
// template). The server checks it exactly as `kiln submit`; its message
// names the field, and the form shows it at that field. The spec the form
// makes can be downloaded and submitted again with `kiln submit`.

import { h, fill, toast } from '../dom.js';
import { api, qs } from '../api.js';
import { go } from '../app.js';

/** A text input bound to `path` in the spec, where its errors show. */
function field(label, path, attrs = {}) {
  const input = h('input', { name: path, 'data-path': path, ...attrs });
  return { input, el: h('label', { class: 'field' }, h('span', {}, label), input, h('small', { class: 'field-error', 'data-error-for': path })) };
}

function layerBox(i, onRemove) {
  const p = (k) => `layers[${i}].${k}`;
  const f = {
    name: field('Name', p('name'), { value: i ? `layer${i + 1}` : 'render', required: true }),
    command: field('Command', p('command'), { placeholder: 'render -s #FRAME_START# -e #FRAME_END# scene.ma', class: 'wide' }),
    frames: field('Frames', p('frames'), { value: '1-10', placeholder: '1-100, 1-100x5 or 1,5,9' }),
    chunk: field('Chunk', p('chunk'), { type: 'number', min: 1, value: 1 }),
    cores: field('Cores', p('cores'), { value: '1', placeholder: '4, 0.5, 2-8 or all' }),
    memory: field('Memory', p('memory'), { value: '1G', placeholder: '1G, 512M' }),
    tags: field('Tags', p('tags'), { placeholder: 'linux, nuke' }),
    depends: field('After layers', p('depends'), { placeholder: 'render, sim' }),
    retries: field('Retries', p('retries'), { type: 'number', min: 0, max: 100, value: 3 }),
  };
  const box = h('fieldset', { class: 'layer' }, h('legend', {}, `Layer ${i + 1}`),
    Object.values(f).map((x) => x.el),
    i ? h('button', { type: 'button', class: 'ghost danger', onclick: onRemove }, 'Remove layer') : null);
  return { box, f };
}

const list = (v) => v.split(',').map((s) => s.trim()).filter(Boolean);

export function submitView() {
  return (main) => {
    const job = {
      name: field('Job name', 'name', { required: true, placeholder: 'sh010-lighting' }),
      show: field('Show', 'show', { placeholder: 'default' }),
      shot: field('Shot', 'shot', { placeholder: 'default' }),
      priority: field('Priority', 'priority', { type: 'number', min: 0, max: 1000000, placeholder: "the show's" }),
    };
    const layersEl = h('div', { class: 'layers-form' });
    let layers = [];
    const general = h('p', { class: 'form-error', role: 'alert' });
    const renumber = () => {
      const kept = layers.map(({ f }) => Object.fromEntries(Object.entries(f).map(([k, x]) => [k, x.input.value])));
      layers = [];
      fill(layersEl);
      kept.forEach((values) => addLayer(values));
    };
    const addLayer = (values) => {
      const i = layers.length;
      const l = layerBox(i, () => { layers.splice(i, 1); renumber(); });
      if (values) for (const [k, v] of Object.entries(values)) l.f[k].input.value = v;
      layers.push(l);
      layersEl.append(l.box);
    };
    addLayer();

    /** The spec the form describes, as JSON `kiln submit` reads. */
    const spec = () => {
      const s = { name: job.name.input.value.trim() };
      for (const k of ['show', 'shot']) if (job[k].input.value.trim()) s[k] = job[k].input.value.trim();
      if (job.priority.input.value !== '') s.priority = Number(job.priority.input.value);
      s.layers = layers.map(({ f }) => {
        const l = { name: f.name.input.value.trim(), command: f.command.input.value, frames: f.frames.input.value.trim() };
        if (Number(f.chunk.input.value) > 1) l.chunk = Number(f.chunk.input.value);
        if (f.cores.input.value.trim()) l.cores = f.cores.input.value.trim();
        if (f.memory.input.value.trim()) l.memory = f.memory.input.value.trim();
        if (list(f.tags.input.value).length) l.tags = list(f.tags.input.value);
        if (list(f.depends.input.value).length) l.depends = list(f.depends.input.value);
        if (f.retries.input.value !== '') l.retries = Number(f.retries.input.value);
        return l;
      });
      return s;
    };

    const clearErrors = () => {
      main.querySelectorAll('.field-error').forEach((e) => fill(e));
      main.querySelectorAll('.invalid').forEach((e) => e.classList.remove('invalid'));
      fill(general);
    };
    /** Shows the server's message at the field it names (`layers[1].frames: …`). */
    const showError = (msg) => {
      const m = msg.match(/^([A-Za-z_][\w.[\]]*?)(\[\d+\])?: /);
      const path = m ? m[1] + (m[2] || '') : null;
      const candidates = path ? [path, path.replace(/\[\d+\]$/, '')] : [];
      for (const p of candidates) {
        const slot = main.querySelector(`[data-error-for="${CSS.escape(p)}"]`);
        if (slot) {
          fill(slot, msg.slice(msg.indexOf(': ') + 2));
          const input = main.querySelector(`[data-path="${CSS.escape(p)}"]`);
          if (input) { input.classList.add('invalid'); input.focus(); }
          return;
        }
      }
      fill(general, msg);
    };
    const send = async (body, params = {}, type = 'application/json') => {
      clearErrors();
      try {
        const r = await api(`/jobs${qs(params)}`, { method: 'POST', body, headers: { 'Content-Type': type } });
        toast(`Submitted ${r.name}: ${r.frames} frames`);
        go(`/jobs/${encodeURIComponent(r.name)}`);
      } catch (e) {
        showError(e.message);
      }
    };

    const download = (name, text, type) => {
      const a = h('a', { href: URL.createObjectURL(new Blob([text], { type })), download: name });
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 1000);
    };
    const composed = h('form', {
      class: 'submit', novalidate: true,
      onsubmit: (e) => { e.preventDefault(); send(JSON.stringify(spec())); },
    },
    h('div', { class: 'row' }, Object.values(job).map((x) => x.el)),
    layersEl,
    h('div', { class: 'buttons' },
      h('button', { type: 'button', onclick: () => addLayer() }, 'Add layer'),
      h('button', { type: 'button', onclick: () => download(`${spec().name || 'job'}.json`, `${JSON.stringify(spec(), null, 2)}\n`, 'application/json') }, 'Download spec'),
      h('button', { type: 'submit', class: 'primary' }, 'Submit')));

    // A spec file: dropped or picked, shown for a last edit, sent as is.
    const text = h('textarea', { class: 'spec-text', rows: 16, spellcheck: false, 'aria-label': 'Job spec', placeholder: 'Drop a .yaml, .json or OpenJD template here, or paste one.' });
    const params = h('input', { placeholder: 'Frame=1-100 SceneFile=/shows/x/scene.blend', class: 'wide', 'aria-label': 'OpenJD parameters' });
    const pick = h('input', { type: 'file', accept: '.yaml,.yml,.json,.txt' });
    const load = async (file) => { text.value = await file.text(); };
    pick.addEventListener('change', () => pick.files[0] && load(pick.files[0]));
    const drop = h('div', { class: 'drop' }, text);
    drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
    drop.addEventListener('dragleave', () => drop.classList.remove('over'));
    drop.addEventListener('drop', (e) => {
      e.preventDefault();
      drop.classList.remove('over');
      if (e.dataTransfer.files[0]) load(e.dataTransfer.files[0]);
    });
    const fromFile = h('form', {
      class: 'submit', onsubmit: (e) => {
        e.preventDefault();
        const p = {};
        for (const kv of params.value.split(/\s+/).filter(Boolean)) {
          const at = kv.indexOf('=');
          if (at < 1) return showError(`parameters: ${kv} is not NAME=VALUE`);
          p[`param.${kv.slice(0, at)}`] = kv.slice(at + 1);
        }
        send(text.value, p, 'application/yaml');
      },
    },
    h('label', { class: 'field' }, h('span', {}, 'File'), pick),
    drop,
    h('label', { class: 'field' }, h('span', {}, 'OpenJD parameters'), params, h('small', { class: 'field-error', 'data-error-for': 'parameters' })),
    h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary' }, 'Submit file')));

    const tabs = h('div', { class: 'tabs', role: 'tablist' });
    const body = h('div', {});
    const show = (which) => {
      clearErrors();
      fill(tabs,
        h('button', { role: 'tab', 'aria-selected': String(which === 'form'), onclick: () => show('form') }, 'Compose'),
        h('button', { role: 'tab', 'aria-selected': String(which === 'file'), onclick: () => show('file') }, 'From a file'));
      fill(body, which === 'form' ? composed : fromFile);
    };
    fill(main, h('div', { class: 'toolbar' }, h('h2', {}, 'Submit a job'), tabs), general, body);
    show('form');
  };
}
