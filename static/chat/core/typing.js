/**
 * typing.js: who is typing in each room, and when to say that we are. Pure: no DOM, no
 * React; both UIs render from it. Protocol: docs/protocol.md, "Presence and typing".
 *
 * createTypingTracker: `typing` frames in; typists per room out. A typist is dropped 6 s
 * after their last frame, or when their message arrives. `onChange(roomId)` is called when
 * a room's typists change (including an expiry, on a timer of its own).
 *
 * createTypingSender: call `keystroke(roomId)` on every input; it sends one `typing` frame
 * per room per 2 s while keys are pressed (the server drops any more anyway).
 */

export const TYPING_EXPIRY_MS = 6000;
export const TYPING_INTERVAL_MS = 2000;

/** "alice is typing…", "alice and bob are typing…", "several people are typing…", or "". */
export function typingLabel(names) {
  if (names.length === 0) return '';
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return 'several people are typing…';
}

export function createTypingTracker({
  onChange = () => {},
  now = () => Date.now(),
  setTimer = (fn, ms) => setTimeout(fn, ms),
  clearTimer = (id) => clearTimeout(id),
  expiryMs = TYPING_EXPIRY_MS,
} = {}) {
  /** roomId -> Map(userId -> {username, until}) */
  const rooms = new Map();
  let timer = null;

  function schedule() {
    if (timer !== null) clearTimer(timer);
    timer = null;
    let next = Infinity;
    for (const typists of rooms.values()) for (const t of typists.values()) next = Math.min(next, t.until);
    if (next !== Infinity) timer = setTimer(expire, Math.max(0, next - now()));
  }

  function expire() {
    timer = null;
    const at = now();
    for (const [roomId, typists] of rooms) {
      let changed = false;
      for (const [userId, t] of typists) {
        if (t.until <= at) {
          typists.delete(userId);
          changed = true;
        }
      }
      if (typists.size === 0) rooms.delete(roomId);
      if (changed) onChange(roomId);
    }
    schedule();
  }

  return {
    /** A `typing` frame from the server. */
    typing(frame) {
      if (!frame || typeof frame.roomId !== 'string' || frame.userId === undefined) return;
      if (!rooms.has(frame.roomId)) rooms.set(frame.roomId, new Map());
      const typists = rooms.get(frame.roomId);
      const fresh = !typists.has(String(frame.userId));
      typists.set(String(frame.userId), { username: String(frame.username ?? ''), until: now() + expiryMs });
      schedule();
      if (fresh) onChange(frame.roomId);
    },
    /** A message arrived: its author has stopped typing there. */
    message(message) {
      const typists = rooms.get(message?.roomId);
      if (typists?.delete(String(message.userId))) {
        if (typists.size === 0) rooms.delete(message.roomId);
        schedule();
        onChange(message.roomId);
      }
    },
    /** The usernames typing in the room now, in the order they started. */
    names(roomId) {
      const at = now();
      return [...(rooms.get(roomId)?.values() ?? [])].filter((t) => t.until > at).map((t) => t.username);
    },
    label(roomId) {
      return typingLabel(this.names(roomId));
    },
    clear() {
      rooms.clear();
      schedule();
    },
  };
}

/** Sends `typing` for a room at most once per interval; `send(roomId)` does the sending. */
export function createTypingSender(send, { now = () => Date.now(), intervalMs = TYPING_INTERVAL_MS } = {}) {
  const last = new Map();
  return {
    keystroke(roomId) {
      if (!roomId) return false;
      const at = now();
      if (at - (last.get(roomId) ?? -Infinity) < intervalMs) return false;
      last.set(roomId, at);
      send(roomId);
      return true;
    },
    /** The message went out: the next keystroke says "typing" again at once. */
    sent(roomId) {
      last.delete(roomId);
    },
  };
}
