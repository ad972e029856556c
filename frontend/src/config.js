/**
 * The runtime configuration: `config.json` next to index.html, read at start-up, so one
 * build runs against any deployment. Empty values mean "the origin that served the app".
 */

export const DEFAULT_CONFIG = Object.freeze({
  // Where the HTTP API lives ("https://chat.example.com"); empty: this page's origin.
  apiBaseUrl: '',
  // The WebSocket URL ("wss://chat.example.com/ws/"); empty: /ws/ on the API's host.
  webSocketUrl: '',
  // The Django site's own sign-in page, for session sign-in when served by the site.
  siteLoginUrl: '/accounts/login/?next=/app/',
  siteSignupUrl: '/accounts/signup/',
  // Which token the socket and the API get: "id" or "access" (what the server verifies).
  socketToken: 'id',
  // Cognito Hosted UI (authorization code flow with PKCE), or null:
  // {"domain": "https://<prefix>.auth.<region>.amazoncognito.com", "clientId": "...",
  //  "redirectUri": "https://app.example.com/", "scopes": "openid email profile",
  //  "logoutUri": "https://app.example.com/"}   (optional: also end the Hosted UI's session)
  cognito: null,
});

export async function loadConfig(fetchImpl = globalThis.fetch, baseUrl = globalThis.document?.baseURI) {
  let loaded = {};
  try {
    const response = await fetchImpl(new URL('config.json', baseUrl).href, { cache: 'no-store' });
    if (response.ok) loaded = await response.json();
  } catch {
    // No config.json: the defaults describe the app served by the Django site itself.
  }
  return { ...DEFAULT_CONFIG, ...(loaded && typeof loaded === 'object' ? loaded : {}) };
}

/** The API base URL and the WebSocket URL for a page at `location`. */
export function endpoints(config, location) {
  const api = (config.apiBaseUrl || location.origin).replace(/\/+$/, '');
  let ws = config.webSocketUrl;
  if (!ws) {
    const url = new URL('/ws/', api);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    ws = url.href;
  }
  return { api, ws, sameOrigin: new URL(api).origin === location.origin };
}
