/**
 * Tokens for the token mode: kept in localStorage so a reload stays signed in, refreshed
 * through the API (or Cognito's token endpoint for a Hosted UI sign-in) before they
 * expire. Session mode keeps nothing here: the browser holds the Django session cookie.
 */

import { refreshWithCognito } from './cognito.js';
import { tokenExpiry } from './websocket.js';

const KEY = 'chatsite.auth';

/** Tokens from `POST /api/auth/token` (Cognito's InitiateAuth shape). */
export function fromTokenResponse(body, previous = null, now = Date.now()) {
  const result = body?.AuthenticationResult ?? body ?? {};
  const idToken = result.IdToken ?? result.id_token ?? null;
  const accessToken = result.AccessToken ?? result.access_token ?? null;
  if (!idToken && !accessToken) return null;
  const expiresIn = Number(result.ExpiresIn ?? result.expires_in);
  return {
    idToken,
    accessToken,
    // A refresh answers without a new refresh token: keep the one we have.
    refreshToken: result.RefreshToken ?? result.refresh_token ?? previous?.refreshToken ?? null,
    expiresAt: Number.isFinite(expiresIn) && expiresIn > 0 ? now + expiresIn * 1000 : null,
    source: previous?.source ?? 'chatsite',
  };
}

/** A display name from an ID token's claims, before the server has said who we are. */
export function usernameFromToken(token) {
  try {
    const part = token.split('.')[1];
    const claims = JSON.parse(atob(part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '=')));
    return claims['cognito:username'] ?? claims.preferred_username ?? claims.username ?? claims.sub ?? null;
  } catch {
    return null;
  }
}

export class TokenStore {
  constructor({ storage = globalThis.localStorage, socketToken = 'id', cognito = null } = {}) {
    this.storage = storage;
    this.socketToken = socketToken;
    this.cognito = cognito;
    this.api = null;
    this.refreshing = null;
    this.tokens = this.load();
  }

  load() {
    try {
      const tokens = JSON.parse(this.storage?.getItem(KEY) ?? 'null');
      return tokens && (tokens.idToken || tokens.accessToken) ? tokens : null;
    } catch {
      return null;
    }
  }

  save(tokens) {
    this.tokens = tokens;
    try {
      if (tokens) this.storage?.setItem(KEY, JSON.stringify(tokens));
      else this.storage?.removeItem(KEY);
    } catch {
      // storage full or disabled: the tokens live for this page only
    }
  }

  clear() {
    this.save(null);
  }

  /** The token the server verifies, and when it expires. */
  credential() {
    const t = this.tokens;
    if (!t) return null;
    const token = this.socketToken === 'access' ? (t.accessToken ?? t.idToken) : (t.idToken ?? t.accessToken);
    // expiresAt is stored in epoch milliseconds; a JWT's own exp wins when there is one.
    return { token, expiresAt: tokenExpiry(token) ?? (typeof t.expiresAt === 'number' ? t.expiresAt : null) };
  }

  bearer() {
    return this.credential()?.token ?? null;
  }

  /** Refresh once for every caller that asks at the same time; null when it fails. */
  refresh() {
    if (!this.refreshing) {
      this.refreshing = this.doRefresh().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  async doRefresh() {
    const previous = this.tokens;
    if (!previous?.refreshToken) return null;
    let body;
    try {
      body =
        previous.source === 'cognito' && this.cognito
          ? await refreshWithCognito(this.cognito, previous.refreshToken)
          : await this.api.refresh(previous.refreshToken);
    } catch (error) {
      // A refused refresh token will not work later either; a network error might.
      if (error?.status === 400 || error?.status === 401) this.clear();
      return null;
    }
    const tokens = fromTokenResponse(body, previous);
    if (!tokens) return null;
    this.save(tokens);
    return this.credential();
  }
}
