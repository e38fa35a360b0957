// The console's shell: the sign-in page, the hash router (#/releases, #/release/ID,
// #/rollout/ID, #/upload, #/device/ID) and who is signed in. Tokens live in sessionStorage.

import { ApiError, claims, clearToken, setToken, token } from './api.js';
import { errorBox, fill, h } from './ui.js';
import * as releases from './releases.js';
import * as release from './release.js';
import * as rollout from './rollout.js';
import * as upload from './upload.js';
import * as device from './device.js';

const pages = { releases, release, rollout, upload, device };
const main = document.getElementById('main');
let stop = null;

function signOut() {
  clearToken();
  location.hash = '#/sign-in';
}

function showWho() {
  const who = document.getElementById('who');
  const c = claims();
  who.textContent = token() ? `Signed in${c && c.sub ? ` as ${c.sub}` : ''}` : '';
  document.getElementById('sign-out').hidden = !token();
  document.getElementById('nav').hidden = !token();
}

async function backendLogin(email, password, xAuthToken) {
  const headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
  if (xAuthToken) headers['x-auth-token'] = xAuthToken;
  const response = await fetch('/v2/auth/login/admin', {
    method: 'POST', headers, body: JSON.stringify({ email, password }), cache: 'no-store', credentials: 'omit',
  });
  const body = await response.json().catch(() => null);
  if (response.status === 503) throw new ApiError(503, 'Sign-in through the backend is not available here (no upstream is configured): paste a token instead.');
  if (!response.ok) throw new ApiError(response.status, `${response.status}: ${(body && [].concat(body.message || []).join('; ')) || 'sign-in refused'}`);
  const access = body && (body.access || body.accessToken || body.access_token);
  if (!access) throw new ApiError(response.status, 'The backend answered without an access token.');
  return access;
}

function signInPage() {
  const status = h('div', { id: 'sign-in-status' });
  const textarea = h('textarea', { id: 'token', rows: 5, placeholder: 'eyJhbGciOi…', autocomplete: 'off', spellcheck: 'false', required: true });
  const useToken = (e) => {
    e.preventDefault();
    if (!textarea.value.trim()) return;
    setToken(textarea.value);
    location.hash = '#/releases';
  };
  const email = h('input', { id: 'email', type: 'email', autocomplete: 'username' });
  const password = h('input', { id: 'password', type: 'password', autocomplete: 'current-password' });
  const xat = h('input', { id: 'x-auth-token', type: 'text', autocomplete: 'off' });
  const login = async (e) => {
    e.preventDefault();
    fill(status, h('p', { class: 'muted' }, 'Signing in…'));
    try {
      setToken(await backendLogin(email.value, password.value, xat.value.trim()));
      location.hash = '#/releases';
    } catch (error) {
      fill(status, errorBox(error));
    }
  };
  return h('div', { class: 'sign-in' },
    h('section', { class: 'card' },
      h('h1', {}, 'Sign in'),
      h('p', {}, 'Paste an admin token (a JWT the NOWATCH backend issued, or ', h('code', {}, 'nowatch-ota dev-token --admin'),
        ' in development). It is kept in this tab only (sessionStorage) and sent as ', h('code', {}, 'Authorization: Bearer'), '.'),
      h('form', { id: 'token-form', onsubmit: useToken },
        h('label', { for: 'token' }, 'Admin token'), textarea,
        h('div', { class: 'actions' }, h('button', { type: 'submit', id: 'use-token' }, 'Use this token')))),
    h('section', { class: 'card' },
      h('details', {},
        h('summary', {}, 'Or sign in through the backend (admin login)'),
        h('form', { id: 'login-form', onsubmit: login },
          h('label', { for: 'email' }, 'Email'), email,
          h('label', { for: 'password' }, 'Password'), password,
          h('label', { for: 'x-auth-token' }, 'x-auth-token (if the backend asks for one)'), xat,
          h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Sign in'))))),
    status);
}

/** Pages whose argument is a release or rollout id: only a UUID goes into their API paths. */
const ID_PAGES = new Set(['release', 'rollout']);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function route() {
  const [path, query = ''] = location.hash.replace(/^#\/?/, '').split('?');
  const [name, ...rest] = path.split('/');
  let arg = '';
  try { arg = rest.map(decodeURIComponent).join('/'); } catch { arg = '\u0000'; }
  return { name: name || 'releases', arg, query: new URLSearchParams(query) };
}

async function render() {
  if (stop) { stop(); stop = null; }
  showWho();
  const { name, arg, query } = route();
  for (const link of document.querySelectorAll('#nav a')) link.classList.toggle('current', link.dataset.nav === name);
  if (name === 'sign-in' || !token()) {
    fill(main, signInPage());
    return;
  }
  const page = pages[name];
  if (!page || (ID_PAGES.has(name) && !UUID.test(arg))) {
    fill(main, errorBox(new ApiError(404, page ? `No ${name} “${arg}”.` : `No page “${name}”.`)));
    return;
  }
  const ctx = { main, arg, query, signIn: signOut };
  try {
    stop = (await page.render(ctx)) || null;
  } catch (error) {
    fill(main, errorBox(error, signOut));
  }
}

document.getElementById('sign-out').addEventListener('click', signOut);
window.addEventListener('hashchange', render);
render();
