// The admin JSON API: every call sends the token the user gave, from sessionStorage (this tab
// only), as `Authorization: Bearer`; never in a URL. Errors become ApiError with a message a
// person can act on (401 and 403 say what they mean).

const KEY = 'nowatch-ota.console.token';

export function token() { return sessionStorage.getItem(KEY) || ''; }
export function setToken(value) { sessionStorage.setItem(KEY, value.trim()); }
export function clearToken() { sessionStorage.removeItem(KEY); }

/// The token's claims, unverified (the service verifies it): only to show who is signed in.
export function claims() {
  try {
    const part = token().split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part.padEnd(part.length + ((4 - part.length % 4) % 4), '=')));
  } catch {
    return null;
  }
}

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

function detailOf(body) {
  if (body && Array.isArray(body.message)) return body.message.join('; ');
  if (body && typeof body.message === 'string') return body.message;
  return typeof body === 'string' ? body.slice(0, 200) : '';
}

export function errorFor(status, body) {
  const detail = detailOf(body);
  if (status === 401) {
    return new ApiError(401, `401 Unauthorized: the service did not accept this token (missing, expired or signed with another key). Sign in again.${detail ? ` (${detail})` : ''}`, body);
  }
  if (status === 403) {
    return new ApiError(403, '403 Forbidden: this token is valid but not an admin\'s. The console needs a token with the admin role.', body);
  }
  if (status === 0) return new ApiError(0, 'The service cannot be reached.', body);
  const name = body && body.error ? ` ${body.error}` : '';
  return new ApiError(status, `${status}${name}: ${detail || 'the request failed'}`, body);
}

function headers(extra) {
  const h = { Accept: 'application/json', ...extra };
  if (token()) h.Authorization = `Bearer ${token()}`;
  return h;
}

async function parse(response) {
  const text = await response.text();
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return text;
  }
}

/// `method path` with an optional JSON body; resolves to the parsed answer.
export async function api(method, path, body, extraHeaders = {}) {
  const init = { method, headers: headers(extraHeaders), cache: 'no-store', credentials: 'omit' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw errorFor(0, null);
  }
  const data = await parse(response);
  if (!response.ok) throw errorFor(response.status, data);
  return data;
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body ?? {});

/// Uploads a release (the `metadata` part first, then `file`), reporting progress as
/// `onProgress(sentBytes, totalBytes)`; resolves to `{status, body}`.
export function uploadRelease(metadata, file, onProgress) {
  const form = new FormData();
  form.append('metadata', new Blob([JSON.stringify(metadata)], { type: 'application/json' }));
  form.append('file', file, file.name || 'firmware.bin');
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/v1/admin/firmware');
    for (const [name, value] of Object.entries(headers({}))) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded, e.total); };
    xhr.onerror = () => reject(errorFor(0, null));
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { body = xhr.responseText; }
      if (xhr.status >= 200 && xhr.status < 300) resolve({ status: xhr.status, body });
      else reject(errorFor(xhr.status, body));
    };
    xhr.send(form);
  });
}
