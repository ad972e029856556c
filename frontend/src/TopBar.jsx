/**
 * The site's top bar: the same elements and classes as templates/base.html draws for the
 * template UI, styled once in static/chat/design.css, so `/` and `/app/` have one header
 * (issue 20): the brand, who is signed in, Sign out and Sign out everywhere. The brand leads to the app's first room, as the template's leads to its room list.
 */

export default function TopBar({ username = null, onSignOut = null, onSignOutEverywhere = null }) {
  return (
    <header className="topbar">
      <a className="brand" href="#/rooms/general">
        Chatsite
      </a>
      <nav className="topnav" aria-label="Account">
        {username && (
          <>
            <span className="who">
              <span className="who-label">Signed in as </span>
              <strong data-testid="username">{username}</strong>
            </span>
            <button type="button" className="link-button" onClick={onSignOut}>
              Sign out
            </button>
            {onSignOutEverywhere && (
              <button
                type="button"
                className="link-button"
                aria-label="Sign out everywhere"
                title="End every sign-in of yours: other browsers, devices and apps"
                onClick={onSignOutEverywhere}
              >
                <span className="wide-label">Sign out </span>everywhere
              </button>
            )}
          </>
        )}
      </nav>
    </header>
  );
}
