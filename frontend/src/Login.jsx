/**
 * Login: built-in accounts (username and password, through POST /api/auth/token, which
 * signs in with Cognito's InitiateAuth when the server is configured for Cognito) and
 * Cognito's Hosted UI when config.json names one. Served by the Django site itself, the
 * site's own sign-in page works too (the session cookie then carries the socket).
 */

import { useEffect, useId, useState } from 'react';

import { hostedSignInUrl } from './cognito.js';

export default function Login({ config, urls, api, notice, onSignedIn }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [tokenApiMissing, setTokenApiMissing] = useState(false);
  const errorId = useId();
  const [demo, setDemo] = useState(null);

  // On the embedded default, say which demo accounts exist and their password (never in production).
  useEffect(() => {
    let cancelled = false;
    api
      .demoAccounts()
      .then((body) => {
        if (!cancelled && Array.isArray(body?.accounts) && body.accounts.length > 0) setDemo(body);
      })
      .catch(() => {}); // an older server, or another origin: no hint
    return () => {
      cancelled = true;
    };
  }, [api]);

  async function submit(event) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const body = await api.token(username.trim(), password);
      onSignedIn(body);
    } catch (err) {
      if (err.status === 404 || err.status === 405) {
        setTokenApiMissing(true);
        setError('This server does not sign in apps with a password. Use the site’s sign-in page below.');
      } else if (err.status === 400 || err.status === 401 || err.status === 403) {
        setError('Wrong username or password.');
      } else {
        setError(err.message || 'Sign-in failed. Try again.');
      }
    } finally {
      setBusy(false);
    }
  }

  async function hostedUi() {
    window.location.assign(await hostedSignInUrl(config.cognito));
  }

  return (
    <main className="login" aria-labelledby="login-title">
      <h1 id="login-title">Sign in to Chatsite</h1>
      {notice && (
        <p className="notice" role="status">
          {notice}
        </p>
      )}
      {demo && (
        <p className="demo-hint" data-testid="demo-hint">
          Trying Chatsite? Sign in as{' '}
          {demo.accounts.map((name, i) => (
            <span key={name}>
              {i > 0 && ' or '}
              <strong>{name}</strong>
            </span>
          ))}{' '}
          with the password <code>{demo.password}</code>.
        </p>
      )}
      <form onSubmit={submit} aria-describedby={error ? errorId : undefined}>
        <label htmlFor="login-username">Username</label>
        <input
          id="login-username"
          name="username"
          autoComplete="username"
          autoCapitalize="none"
          spellCheck={false}
          required
          value={username}
          onChange={(e) => setUsername(e.target.value)}
        />
        <label htmlFor="login-password">Password</label>
        <input
          id="login-password"
          name="password"
          type="password"
          autoComplete="current-password"
          required
          value={password}
          onChange={(e) => setPassword(e.target.value)}
        />
        {error && (
          <p id={errorId} className="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
      {config.cognito && (
        <p>
          <button type="button" className="secondary" onClick={hostedUi}>
            Sign in with Amazon Cognito
          </button>
        </p>
      )}
      {urls.sameOrigin && (
        <p className={tokenApiMissing ? 'emphasis' : undefined}>
          Or use the site’s <a href={config.siteLoginUrl}>sign-in page</a>
          {config.siteSignupUrl && (
            <>
              {' '}
              (new here? <a href={config.siteSignupUrl}>create an account</a>)
            </>
          )}
          .
        </p>
      )}
    </main>
  );
}
