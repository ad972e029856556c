/**
 * words.js: what both UIs say about an error, in words a person reads, never the code
 * (chat/errors.py ErrorCode). Pure: no DOM, no React, tested in frontend/src/words.test.js.
 *
 * A code stays machine-readable on the wire and in data attributes; a person reads
 * `errorText(code, message)`, and for a message waiting out a limit, `waitingText(item, now)`,
 * a live countdown ("Slow mode: you can post again in 23 s").
 */

const TEXT = Object.freeze({
  invalid_json: 'The app sent something the server could not read. Reload the page.',
  binary_frame: 'The app sent something the server could not read. Reload the page.',
  frame_too_large: 'That was too large to send.',
  invalid_frame: 'The app sent something the server could not read. Reload the page.',
  unknown_action: 'This page is out of date. Reload it.',
  invalid_field: 'That could not be sent as it is.',
  empty_message: 'An empty message cannot be sent.',
  message_too_long: 'This message is too long.',
  invalid_room: 'That is not a valid room name.',
  unknown_room: 'This room does not exist, or is private: members only.',
  not_joined: 'Not in this room yet: joining again…',
  forbidden: 'You may not do that here.',
  invalid_token: 'Your sign-in has ended. Sign in again.',
  rate_limited: 'You are sending too fast.',
  quota_exceeded: 'You have reached your limit for now.',
  room_archived: 'This room is archived: it takes no new messages.',
  read_only: 'This room is read-only: only moderators post here.',
  slow_mode: 'Slow mode is on in this room.',
  muted: 'You are muted here for now.',
  unknown_message: 'That message no longer exists.',
  storage_unavailable: 'The server is having trouble storing messages.',
  internal_error: 'Something went wrong on the server.',
  timeout: 'The server did not answer in time.', // the client's own codes (core/client.js)
  not_sent: 'It failed too many times.',
  error: 'Something went wrong.',
});

/** What to say for an error `code` (falls back to the server's message, then a plain sentence). */
export function errorText(code, message) {
  if (code && Object.hasOwn(TEXT, code)) return TEXT[code];
  if (message && typeof message === 'string') return message.charAt(0).toUpperCase() + message.slice(1);
  return TEXT.error;
}

const WAITING = Object.freeze({
  slow_mode: (s) => `Slow mode: you can post again in ${s} s`,
  rate_limited: (s) => `Sending too fast: trying again in ${s} s`,
  quota_exceeded: (s) => `Limit reached: trying again in ${s} s`,
  muted: (s) => `Muted: this goes out in ${s} s if you may post again`,
  storage_unavailable: (s) => `The server is busy: trying again in ${s} s`,
  internal_error: (s) => `The server had a problem: trying again in ${s} s`,
});

/** Whole seconds from `now` until `at` (ms since the epoch), never below 0. */
export function secondsUntil(at, now = Date.now()) {
  return typeof at === 'number' ? Math.max(0, Math.ceil((at - now) / 1000)) : 0;
}

/**
 * How an unsent message of yours is doing, in words: "Sending…", a countdown while it waits
 * out a limit (`item.retrying` is the code, `item.retryAt` when it goes again), or why it failed.
 */
export function pendingText(item, now = Date.now()) {
  if (item.status === 'failed') return `Not sent: ${errorText(item.code, item.error)}`;
  if (item.retrying) {
    const seconds = secondsUntil(item.retryAt, now);
    const say = WAITING[item.retrying];
    if (seconds > 0) return say ? say(seconds) : `${errorText(item.retrying)} Trying again in ${seconds} s`;
    return 'Sending again…';
  }
  return 'Sending…';
}
