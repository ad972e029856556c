/**
 * Cognito Hosted UI sign-in for the React app: the authorization code flow with PKCE
 * (RFC 7636), as the origin design's app used. Configured in config.json as
 * {"cognito": {"domain", "clientId", "redirectUri", "scopes", "logoutUri"}}.
 */

const PENDING = 'chatsite.cognito.pending';

function base64url(bytes) {
  let text = '';
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function randomString(size = 48) {
  const bytes = new Uint8Array(size);
  globalThis.crypto.getRandomValues(bytes);
  return base64url(bytes);
}

export async function pkceChallenge(verifier) {
  const digest = await globalThis.crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

function domainOf(cognito) {
  return cognito.domain.replace(/\/+$/, '');
}

/** The Hosted UI URL to send the browser to; remembers the verifier and state. */
export async function hostedSignInUrl(cognito, storage = globalThis.sessionStorage) {
  const verifier = randomString();
  const state = randomString(16);
  storage.setItem(PENDING, JSON.stringify({ verifier, state }));
  const params = new URLSearchParams({
    response_type: 'code',
    client_id: cognito.clientId,
    redirect_uri: cognito.redirectUri,
    scope: cognito.scopes || 'openid email profile',
    state,
    code_challenge_method: 'S256',
    code_challenge: await pkceChallenge(verifier),
  });
  return `${domainOf(cognito)}/oauth2/authorize?${params}`;
}

/** The Hosted UI's sign-out URL, when config.json names a `logoutUri` (an allowed sign-out URL). */
export function hostedSignOutUrl(cognito) {
  if (!cognito?.logoutUri) return null;
  const params = new URLSearchParams({ client_id: cognito.clientId, logout_uri: cognito.logoutUri });
  return `${domainOf(cognito)}/logout?${params}`;
}

/** Finish a Hosted UI sign-in if this page load is its redirect; null otherwise. */
export async function finishHostedSignIn(cognito, search, storage = globalThis.sessionStorage, fetchImpl = globalThis.fetch) {
  const params = new URLSearchParams(search);
  const code = params.get('code');
  if (!cognito || !code) return null;
  const pending = JSON.parse(storage.getItem(PENDING) ?? 'null');
  storage.removeItem(PENDING);
  if (!pending || pending.state !== params.get('state')) throw new Error('The sign-in answer does not match this browser. Sign in again.');
  return tokenRequest(cognito, fetchImpl, {
    grant_type: 'authorization_code',
    client_id: cognito.clientId,
    code,
    redirect_uri: cognito.redirectUri,
    code_verifier: pending.verifier,
  });
}

export function refreshWithCognito(cognito, refreshToken, fetchImpl = globalThis.fetch) {
  return tokenRequest(cognito, fetchImpl, {
    grant_type: 'refresh_token',
    client_id: cognito.clientId,
    refresh_token: refreshToken,
  });
}

async function tokenRequest(cognito, fetchImpl, fields) {
  const response = await fetchImpl(`${domainOf(cognito)}/oauth2/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    throw Object.assign(new Error(body?.error_description || body?.error || 'Cognito refused the sign-in'), {
      status: response.status,
    });
  }
  return body; // {id_token, access_token, refresh_token?, expires_in, token_type}
}
