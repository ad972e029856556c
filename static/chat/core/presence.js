/**
 * presence.js: what the client knows of other users' presence, and what it says of its own.
 * Pure state, no DOM, no React; both UIs render from it. Protocol: docs/protocol.md,
 * "Presence and typing".
 *
 * presenceFrames: a `presence` frame with `users` (a window's changes) as one frame per user.
 *
 * createPresenceBook: `presence` frames in; `of(userId)` -> {status, lastSeenAt} out
 * (offline and never seen for a user no frame has mentioned).
 *
 * watchActivity(connection, win): tells the server "away" while the tab is hidden and
 * "online" when it is visible again, or on input after a quiet spell (at most once a
 * minute), so a user reading along is not shown away. Returns a function that stops it.
 */

export const PresenceStatus = Object.freeze({ ONLINE: 'online', AWAY: 'away', OFFLINE: 'offline' });

export const ACTIVITY_REPORT_MS = 60_000;

export function createPresenceBook({ onChange = () => {} } = {}) {
  const users = new Map();
  return {
    /** A `presence` frame from the server. */
    presence(frame) {
      if (!frame || frame.userId === undefined || !Object.values(PresenceStatus).includes(frame.status)) return;
      const userId = String(frame.userId);
      const before = users.get(userId);
      const after = { status: frame.status, lastSeenAt: frame.lastSeenAt ?? null };
      users.set(userId, after);
      if (!before || before.status !== after.status || before.lastSeenAt !== after.lastSeenAt) onChange(userId, after);
    },
    of(userId) {
      return users.get(String(userId)) ?? { status: PresenceStatus.OFFLINE, lastSeenAt: null };
    },
    /** Every user heard of, {userId: {status, lastSeenAt}}. */
    all() {
      return Object.fromEntries(users);
    },
  };
}

/**
 * The presence frames one server frame stands for: the server sends the changes of a short
 * window together as {type: 'presence', users: [frame, ...]} (docs/protocol.md), and one
 * change as the frame itself. Anything else: itself.
 */
export function presenceFrames(frame) {
  if (frame?.type !== 'presence' || !Array.isArray(frame.users)) return [frame];
  return frame.users.filter((one) => one && typeof one === 'object').map((one) => ({ ...one, type: 'presence' }));
}

/** A person's words for a presence: "online", "away", "offline · last seen 14:05". */
export function presenceText({ status, lastSeenAt }, locale = undefined) {
  if (status !== PresenceStatus.OFFLINE || !lastSeenAt) return status;
  const seen = new Date(lastSeenAt);
  if (Number.isNaN(seen.getTime())) return status;
  const sameDay = seen.toDateString() === new Date().toDateString();
  const when = sameDay
    ? seen.toLocaleTimeString(locale, { hour: '2-digit', minute: '2-digit' })
    : seen.toLocaleString(locale, { dateStyle: 'medium', timeStyle: 'short' });
  return `offline · last seen ${when}`;
}

export function watchActivity(connection, win = globalThis.window, { now = () => Date.now() } = {}) {
  if (!win || typeof win.addEventListener !== 'function') return () => {};
  const doc = win.document;
  let reported = now();
  const hidden = () => doc?.visibilityState === 'hidden';
  const onVisibility = () => {
    reported = now();
    connection.setPresence(hidden() ? PresenceStatus.AWAY : PresenceStatus.ONLINE);
  };
  const onInput = () => {
    if (hidden() || now() - reported < ACTIVITY_REPORT_MS) return;
    reported = now();
    connection.setPresence(PresenceStatus.ONLINE);
  };
  doc?.addEventListener?.('visibilitychange', onVisibility);
  for (const name of ['keydown', 'pointerdown', 'wheel']) win.addEventListener(name, onInput, { passive: true });
  if (hidden()) connection.setPresence(PresenceStatus.AWAY);
  return () => {
    doc?.removeEventListener?.('visibilitychange', onVisibility);
    for (const name of ['keydown', 'pointerdown', 'wheel']) win.removeEventListener(name, onInput);
  };
}
