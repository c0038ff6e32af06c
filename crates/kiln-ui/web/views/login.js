// Sign-in: a user name and password (a local account's, or the
// directory's), or an API token pasted from `kiln token create`.

import { h, fill } from '../dom.js';
import { api } from '../api.js';
import { setToken, setWhoami } from '../auth.js';
import { go } from '../app.js';

export function loginView() {
  return (main) => {
    const next = new URLSearchParams(location.search).get('next') || '/';
    const safeNext = next.startsWith('/') && !next.startsWith('//') ? next : '/';
    const msg = h('p', { class: 'form-error', role: 'alert' });
    const user = h('input', { name: 'user', autocomplete: 'username', autofocus: true });
    const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password' });
    const tokenIn = h('input', { name: 'token', autocomplete: 'off', placeholder: 'kiln_api_…' });
    const done = async (t) => {
      setToken(t);
      setWhoami(await api('/whoami'));
      go(safeNext, true);
    };
    const form = h('form', {
      class: 'login', onsubmit: async (e) => {
        e.preventDefault();
        fill(msg);
        try {
          if (tokenIn.value.trim()) return await done(tokenIn.value.trim());
          if (!user.value.trim()) return fill(msg, 'user: enter your user name (or an API token below)');
          const r = await api('/login', { method: 'POST', body: { user: user.value, password: password.value, token_name: 'web' } });
          await done(r.token);
        } catch (err) {
          setToken(null);
          fill(msg, err.message);
        }
      },
    },
    h('h1', {}, h('img', { src: '/ui/icon.svg', alt: '' }), 'Sign in to Kiln'),
    h('label', {}, 'User', user),
    h('label', {}, 'Password', password),
    h('details', {}, h('summary', {}, 'Use an API token instead'),
      h('label', {}, 'Token', tokenIn),
      h('p', { class: 'hint' }, 'Make one with ', h('code', {}, 'kiln token create --name web'), '.')),
    msg,
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'));
    fill(main, form);
    // A sign-in link (`kiln up` prints one for its local farm) carries the
    // token after `#`, which browsers never send to a server.
    const fromLink = new URLSearchParams(location.hash.slice(1)).get('token');
    if (fromLink) {
      history.replaceState(null, '', location.pathname + location.search);
      tokenIn.value = fromLink;
      form.requestSubmit();
    }
  };
}
