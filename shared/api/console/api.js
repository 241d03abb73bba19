// The API client of the console: every call is same-origin `/v1/…` with the current user's
// bearer token, and every failure becomes a `Problem` (the API answers problem+json, RFC 9457;
// a network failure or a non-problem answer is turned into one so callers handle one shape).

/** A failed call: `slug` is the problem type after `/problems/` (`already-connected`, …). */
export class Problem extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.title)) || `HTTP ${status}`);
    this.status = status;
    this.type = (body && body.type) || '';
    this.slug = this.type.replace(/^.*\/problems\//, '');
    this.title = (body && body.title) || '';
    this.detail = (body && body.detail) || '';
    this.invalidParams = (body && Array.isArray(body.invalid_params)) ? body.invalid_params : [];
  }
}

/**
 * `getToken()` returns the bearer token (or null: nothing is sent and the call fails as
 * `unauthenticated` without reaching the network); `onUnauthorized()` runs on every 401, so the
 * embedded page can ask its DAM for a fresh token.
 */
export function createApi(getToken, onUnauthorized) {
  async function call(method, path, body) {
    const token = getToken();
    if (!token) throw new Problem(401, { type: '/problems/unauthenticated', title: 'Not signed in' });
    const headers = { Authorization: 'Bearer ' + token, Accept: 'application/json' };
    const init = { method, credentials: 'same-origin', headers };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch {
      throw new Problem(0, { type: '/problems/network', title: 'The server could not be reached' });
    }
    if (resp.status === 401) onUnauthorized();
    if (resp.status === 204) return null;
    const kind = resp.headers.get('Content-Type') || '';
    const json = kind.includes('json') ? await resp.json().catch(() => null) : null;
    if (!resp.ok) throw new Problem(resp.status, json);
    return json;
  }
  return {
    get: (path) => call('GET', path),
    post: (path, body) => call('POST', path, body),
    patch: (path, body) => call('PATCH', path, body),
    del: (path) => call('DELETE', path),
  };
}

/** `/v1/…?a=b` from a path and the defined parameters of `params`. */
export function withQuery(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}
