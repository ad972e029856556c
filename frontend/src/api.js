/**
 * The HTTP side: Chatsite's JSON API (rooms, token sign-in and refresh).
 *
 * Token mode sends `Authorization: Bearer` and no cookies; session mode (the app served
 * by the Django site itself) sends the session cookie and Django's CSRF token.
 */

export class ApiError extends Error {
  constructor(status, message, body = null) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

function cookie(name) {
  const doc = globalThis.document;
  if (!doc?.cookie) return null;
  for (const part of doc.cookie.split(';')) {
    const [key, ...rest] = part.trim().split('=');
    if (key === name) return decodeURIComponent(rest.join('='));
  }
  return null;
}

export class Api {
  /**
   * base: the API's origin; sameOrigin: whether cookies may be sent;
   * bearer: () => the token for Authorization, or null; onUnauthorized: async () => bool
   * (refresh the token; true to retry once).
   */
  constructor({ base, sameOrigin, bearer = () => null, onUnauthorized = async () => false, fetchImpl }) {
    this.base = base;
    this.sameOrigin = sameOrigin;
    this.bearer = bearer;
    this.onUnauthorized = onUnauthorized;
    this.fetch = fetchImpl ?? ((...args) => globalThis.fetch(...args));
  }

  async request(path, { method = 'GET', body, auth = true, retry = true } = {}) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const token = auth ? this.bearer() : null;
    if (token) headers.Authorization = `Bearer ${token}`;
    if (!token && this.sameOrigin && method !== 'GET') {
      const csrf = cookie('csrftoken');
      if (csrf) headers['X-CSRFToken'] = csrf;
    }
    let response;
    try {
      response = await this.fetch(this.base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: this.sameOrigin && !token ? 'same-origin' : 'omit',
      });
    } catch (error) {
      throw new ApiError(0, 'The server cannot be reached.', { cause: String(error) });
    }
    let data = null;
    if ((response.headers.get('Content-Type') ?? '').includes('json')) {
      data = await response.json().catch(() => null);
    }
    if (response.status === 401 && token && retry && (await this.onUnauthorized())) {
      return this.request(path, { method, body, auth, retry: false });
    }
    if (!response.ok) {
      const message = data?.message || data?.error || data?.detail || `HTTP ${response.status}`;
      throw new ApiError(response.status, message, data);
    }
    return data;
  }

  /** {user: {userId, username}, rooms: [{roomId, name, lastSeq}]} */
  rooms() {
    return this.request('/api/rooms');
  }

  /** Cognito-shaped tokens: {IdToken, AccessToken, RefreshToken, ExpiresIn, TokenType}. */
  token(username, password) {
    return this.request('/api/auth/token', { method: 'POST', body: { username, password }, auth: false });
  }

  refresh(refreshToken) {
    return this.request('/api/auth/refresh', { method: 'POST', body: { refreshToken }, auth: false, retry: false });
  }

  /** End the Django session (session mode). */
  /** The embedded default's demo accounts and their password, for the sign-in form ({accounts: []} when none). */
  demoAccounts() {
    return this.request('/api/auth/demo', { auth: false, retry: false });
  }

  async logoutSession({ everywhere = false } = {}) {
    const csrf = cookie('csrftoken');
    await this.fetch(`${this.base}/accounts/logout/${everywhere ? 'everywhere/' : ''}`, {
      method: 'POST',
      headers: csrf ? { 'X-CSRFToken': csrf } : {},
      credentials: 'same-origin',
      redirect: 'manual',
    }).catch(() => null);
  }

  /** End every sign-in of a token user: all sessions, refresh tokens and sockets (the embedded issuer only). */
  signOutEverywhere() {
    return this.request('/api/auth/signout-everywhere', { method: 'POST', retry: false });
  }
}
