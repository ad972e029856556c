/**
 * display.js: how both UIs show a message line, as pure rules (no DOM): avatars (initials
 * on a colour derived from the user id) and grouping (one sender's consecutive messages
 * within five minutes share one name and avatar).
 */

export const GROUP_WINDOW_MS = 5 * 60 * 1000;

/** One or two capital letters for an avatar: "alice" -> "A", "Ada Lovelace" -> "AL". */
export function initials(name) {
  const words = String(name ?? '')
    .trim()
    .split(/[\s._-]+/u)
    .filter(Boolean);
  if (words.length === 0) return '?';
  const first = Array.from(words[0])[0] ?? '?';
  const second = words.length > 1 ? (Array.from(words[words.length - 1])[0] ?? '') : '';
  return (first + second).toUpperCase();
}

/**
 * A hue (0-359) from a user id: stable across pages, sessions and both UIs. The design's
 * avatar colour is `hsl(hue, 45%, 38%)` behind white text (contrast above 4.5:1 for every hue).
 */
export function avatarHue(userId) {
  let hash = 2166136261;
  for (const ch of String(userId ?? '')) {
    hash ^= ch.codePointAt(0);
    hash = Math.imul(hash, 16777619) >>> 0;
  }
  return hash % 360;
}

export function avatarColor(userId) {
  return `hsl(${avatarHue(userId)} 45% 38%)`;
}

function time(value) {
  const t = new Date(value).getTime();
  return Number.isNaN(t) ? null : t;
}

function localDay(t) {
  const d = new Date(t);
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

/**
 * Whether message `m` continues `previous`'s group: same sender, neither removed, the
 * same local day, and at most five minutes apart. `m` and `previous` need `userId`,
 * `timestamp` and `removed` (stored messages, or outbox items shaped alike).
 */
export function continuesGroup(previous, m) {
  if (!previous || !m) return false;
  if (previous.removed || m.removed) return false;
  if (String(previous.userId) !== String(m.userId)) return false;
  const a = time(previous.timestamp);
  const b = time(m.timestamp);
  if (a === null || b === null) return false;
  return b - a >= 0 && b - a <= GROUP_WINDOW_MS && localDay(a) === localDay(b);
}
