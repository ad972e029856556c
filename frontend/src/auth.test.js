import { describe, expect, it, vi } from 'vitest';

import { TokenStore, fromTokenResponse } from './auth.js';
import { finishHostedSignIn, hostedSignInUrl, hostedSignOutUrl, pkceChallenge } from './cognito.js';

function memoryStorage() {
  const data = new Map();
  return {
    getItem: (k) => (data.has(k) ? data.get(k) : null),
    setItem: (k, v) => data.set(k, String(v)),
    removeItem: (k) => data.delete(k),
  };
}

describe('tokens', () => {
  it('reads Cognito-shaped token responses and keeps the refresh token across a refresh', () => {
    const first = fromTokenResponse(
      { IdToken: 'id1', AccessToken: 'ac1', RefreshToken: 'r1', ExpiresIn: 3600, TokenType: 'Bearer' },
      null,
      1000,
    );
    expect(first).toEqual({ idToken: 'id1', accessToken: 'ac1', refreshToken: 'r1', expiresAt: 3_601_000, source: 'chatsite' });
    const second = fromTokenResponse({ IdToken: 'id2', AccessToken: 'ac2', ExpiresIn: 60 }, first, 2000);
    expect(second.refreshToken).toBe('r1');
    expect(fromTokenResponse({ error: 'nope' })).toBeNull();
  });

  it('refreshes once for concurrent callers and forgets a refused refresh token', async () => {
    const storage = memoryStorage();
    const store = new TokenStore({ storage });
    store.save({ idToken: 'id1', accessToken: 'ac1', refreshToken: 'r1', expiresAt: null, source: 'chatsite' });
    const refresh = vi.fn(async () => ({ IdToken: 'id2', AccessToken: 'ac2', ExpiresIn: 300 }));
    store.api = { refresh };
    const [a, b] = await Promise.all([store.refresh(), store.refresh()]);
    expect(refresh).toHaveBeenCalledTimes(1);
    expect(a.token).toBe('id2');
    expect(b.token).toBe('id2');
    expect(new TokenStore({ storage }).tokens.refreshToken).toBe('r1');

    store.api = { refresh: async () => Promise.reject(Object.assign(new Error('no'), { status: 401 })) };
    expect(await store.refresh()).toBeNull();
    expect(store.tokens).toBeNull();
    expect(new TokenStore({ storage }).tokens).toBeNull();
  });

  it('gives the socket the configured token', () => {
    const store = new TokenStore({ storage: memoryStorage(), socketToken: 'access' });
    store.save({ idToken: 'id1', accessToken: 'ac1', refreshToken: null, expiresAt: 1_800_000_000_000, source: 'chatsite' });
    expect(store.credential()).toEqual({ token: 'ac1', expiresAt: 1_800_000_000_000 });
  });
});

describe('Cognito Hosted UI', () => {
  const cognito = { domain: 'https://pool.auth.test/', clientId: 'client1', redirectUri: 'https://app.test/' };

  it('sends an S256 PKCE challenge and exchanges the code with its verifier', async () => {
    const storage = memoryStorage();
    const url = new URL(await hostedSignInUrl(cognito, storage));
    expect(url.origin + url.pathname).toBe('https://pool.auth.test/oauth2/authorize');
    const { verifier, state } = JSON.parse(storage.getItem('chatsite.cognito.pending'));
    expect(url.searchParams.get('code_challenge')).toBe(await pkceChallenge(verifier));
    expect(url.searchParams.get('code_challenge_method')).toBe('S256');

    const fetchImpl = vi.fn(async () => ({ ok: true, json: async () => ({ id_token: 'i', access_token: 'a', expires_in: 3600 }) }));
    const body = await finishHostedSignIn(cognito, `?code=abc&state=${state}`, storage, fetchImpl);
    expect(body.id_token).toBe('i');
    const [tokenUrl, request] = fetchImpl.mock.calls[0];
    expect(tokenUrl).toBe('https://pool.auth.test/oauth2/token');
    expect(Object.fromEntries(new URLSearchParams(request.body))).toMatchObject({
      grant_type: 'authorization_code',
      code: 'abc',
      code_verifier: verifier,
    });
  });

  it('refuses an answer whose state this browser did not send', async () => {
    const storage = memoryStorage();
    await hostedSignInUrl(cognito, storage);
    await expect(finishHostedSignIn(cognito, '?code=abc&state=forged', storage, vi.fn())).rejects.toThrow('does not match');
  });

  it('signs out of the Hosted UI only when a logout URI is configured', () => {
    expect(hostedSignOutUrl(cognito)).toBeNull();
    const url = new URL(hostedSignOutUrl({ ...cognito, logoutUri: 'https://app.test/signed-out' }));
    expect(url.origin + url.pathname).toBe('https://pool.auth.test/logout');
    expect(Object.fromEntries(url.searchParams)).toEqual({ client_id: 'client1', logout_uri: 'https://app.test/signed-out' });
  });
});
