/**
 * App: loads the runtime config, finds out who the user is (stored tokens, a Cognito
 * Hosted UI redirect, or the Django session cookie when the site serves the app), owns
 * the one ChatConnection, and routes between Login and Chat (`#/rooms/<roomId>`).
 */

import { useCallback, useEffect, useMemo, useState } from 'react';

import { Api } from './api.js';
import { TokenStore, fromTokenResponse, usernameFromToken } from './auth.js';
import Chat from './Chat.jsx';
import { finishHostedSignIn, hostedSignOutUrl } from './cognito.js';
import { endpoints, loadConfig } from './config.js';
import Login from './Login.jsx';
import TopBar from './TopBar.jsx';
import { ChatConnection, ConnectionState, clearOutboxes, localOutboxStore, watchBrowser } from './websocket.js';

const DEFAULT_ROOM = 'general';

function roomFromHash(hash) {
  const match = /^#\/rooms\/([a-z0-9][a-z0-9_-]{0,63})$/.exec(hash);
  return match ? match[1] : DEFAULT_ROOM;
}

function useHashRoom() {
  const [roomId, setRoomId] = useState(() => roomFromHash(window.location.hash));
  useEffect(() => {
    const onHash = () => setRoomId(roomFromHash(window.location.hash));
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);
  return roomId;
}

export default function App() {
  const [setup, setSetup] = useState(null); // {config, urls, store, api}
  // checking | signedOut | token | session
  const [mode, setMode] = useState('checking');
  const [user, setUser] = useState(null);
  const [notice, setNotice] = useState(null);
  const roomId = useHashRoom();

  // Config, then who the user is.
  useEffect(() => {
    let cancelled = false;
    (async () => {
      const config = await loadConfig();
      const urls = endpoints(config, window.location);
      const store = new TokenStore({ socketToken: config.socketToken, cognito: config.cognito });
      const api = new Api({
        base: urls.api,
        sameOrigin: urls.sameOrigin,
        bearer: () => store.bearer(),
        onUnauthorized: async () => (await store.refresh()) !== null,
      });
      store.api = api;
      if (cancelled) return;
      setSetup({ config, urls, store, api });

      try {
        const body = await finishHostedSignIn(config.cognito, window.location.search);
        if (body) {
          store.save({ ...fromTokenResponse(body), source: 'cognito' });
          window.history.replaceState(null, '', window.location.pathname + window.location.hash);
        }
      } catch (error) {
        setNotice(error.message);
      }
      if (store.tokens) {
        if (!cancelled) {
          setUser({ userId: null, username: usernameFromToken(store.bearer()) });
          setMode('token');
        }
        return;
      }
      if (urls.sameOrigin) {
        try {
          const body = await api.rooms();
          if (!cancelled && body?.user) {
            setUser(body.user);
            setMode('session');
            return;
          }
        } catch {
          // not signed in on the site
        }
      }
      if (!cancelled) setMode('signedOut');
    })();
    return () => {
      cancelled = true;
    };
  }, []);

  // One connection while signed in. Its outbox is kept per user in this browser (keyed by
  // the username known at sign-in, as the template page does), so what was typed survives
  // a reload. Only a new sign-in makes a new connection: the server's answer to
  // `authenticate` renaming the user must not tear the socket down.
  const username = user?.username ?? null;
  const connection = useMemo(() => {
    if (!setup || (mode !== 'token' && mode !== 'session')) return null;
    const { store, urls } = setup;
    return new ChatConnection({
      url: urls.ws,
      auth:
        mode === 'token'
          ? { getToken: async () => store.credential(), refresh: () => store.refresh() }
          : null,
      outboxStore: username ? localOutboxStore(username) : null,
      presence: true, // presence dots and typing (Presence.jsx)
    });
    // eslint-disable-next-line react-hooks/exhaustive-deps -- see above
  }, [setup, mode]);

  useEffect(() => {
    if (!connection) return undefined;
    const offAuth = connection.on('authenticated', (who) =>
      setUser({ userId: who.userId, username: who.username, moderator: who.moderator === true }),
    );
    const offState = connection.on('state', ({ state }) => {
      if (state === ConnectionState.UNAUTHORIZED) {
        setup.store.clear();
        setNotice('Your sign-in has ended. Sign in again.');
        setMode('signedOut');
      }
    });
    const unwatch = watchBrowser(connection, window);
    connection.connect();
    return () => {
      offAuth();
      offState();
      unwatch();
      connection.close();
    };
  }, [connection, setup]);

  const signedIn = useCallback(
    (body) => {
      setup.store.save(fromTokenResponse(body));
      setNotice(null);
      setUser({ userId: null, username: usernameFromToken(setup.store.bearer()) });
      setMode('token');
    },
    [setup],
  );

  // "Sign out everywhere" (the template's header has it too): every sign-in of this user ends,
  // here and on other browsers and devices. A Cognito sign-in ends at Cognito (GlobalSignOut),
  // not here, so that header has no such button.
  const signOut = useCallback(async ({ everywhere = false } = {}) => {
    if (mode === 'session') await setup.api.logoutSession({ everywhere });
    else if (everywhere) await setup.api.signOutEverywhere().catch(() => null);
    const viaHostedUi = setup.store.tokens?.source === 'cognito';
    setup.store.clear();
    clearOutboxes(); // nothing of this user's unsent messages stays in the browser
    const logout = viaHostedUi ? hostedSignOutUrl(setup.config.cognito) : null;
    if (logout) {
      // End the Hosted UI's own session too, or its next sign-in would skip the password.
      window.location.assign(logout);
      return;
    }
    setUser(null);
    setNotice('You are signed out.');
    setMode('signedOut');
  }, [mode, setup]);

  if (mode === 'checking' || !setup) {
    return (
      <>
        <TopBar />
        <main className="centered" aria-busy="true">
          <p role="status">Loading Chatsite…</p>
        </main>
      </>
    );
  }
  if (mode === 'signedOut') {
    return (
      <>
        <TopBar />
        <Login config={setup.config} urls={setup.urls} api={setup.api} notice={notice} onSignedIn={signedIn} />
      </>
    );
  }
  return (
    <>
      <TopBar
        username={user?.username ?? ''}
        onSignOut={() => signOut()}
        onSignOutEverywhere={setup.store.tokens?.source === 'cognito' ? null : () => signOut({ everywhere: true })}
      />
      <Chat key={mode} connection={connection} api={setup.api} user={user} roomId={roomId} />
    </>
  );
}
