/**
 * notify.js: notifications for both UIs. No protocol here; the UIs call it.
 *
 * - `enable()`: asked only from a button the user pressed (never on page load): the
 *   browser's permission, then a Web Push subscription with the server's VAPID key
 *   (GET /api/notifications), sent to POST /api/notifications/subscriptions, so the user is
 *   told of mentions and direct messages while no tab is open (the service worker sw.js);
 * - `NotifySettings`: what the user asked to be told (GET /api/notifications): the level of
 *   each room ("all", "mentions": mentions and DMs, the default, or "nothing") and whether
 *   they send read receipts; both set through the same API (docs/protocol.md);
 * - `wants(message, ...)`: the one rule both UIs follow for a message that arrives while the
 *   tab is hidden: all messages at "all", mentions and DMs at "mentions", nothing at
 *   "nothing" or in a muted room, never one's own;
 * - `show(message, room, onClick)`: the Notification API with the room, the sender and the
 *   text; a click focuses the tab and opens the message.
 */

import { mentionsUser } from './unread.js';

export const LEVELS = ['all', 'mentions', 'nothing'];
export const DEFAULT_LEVEL = 'mentions';
export const LEVEL_NAMES = { all: 'All messages', mentions: 'Mentions and DMs', nothing: 'Nothing' };

/**
 * Whether `message` is worth a notification for `userId` in a room at `level` (`direct`: a
 * direct message; `muted`: the room is muted, by the user's mute or the API's).
 */
export function wants(message, { userId, level = DEFAULT_LEVEL, muted = false, direct = false }) {
  if (!message || String(message.userId) === String(userId)) return false;
  if (muted || level === 'nothing') return false;
  if (level === 'all') return true;
  return Boolean(direct) || mentionsUser(message, userId);
}

/**
 * The user's notification settings, read from and written to /api/notifications with the
 * UI's authenticated `fetchJson(path, body?)`. Until the first answer every room is at the
 * default level and receipts are on (as on the server).
 */
export class NotifySettings {
  constructor({ fetchJson }) {
    this.fetchJson = fetchJson;
    this.rooms = {}; // roomId -> {level, muted}
    this.receipts = true;
    this.loaded = false;
    this.listeners = new Set();
  }

  onChange(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  take(answer) {
    if (!answer || typeof answer !== 'object') return;
    this.rooms = answer.rooms && typeof answer.rooms === 'object' ? answer.rooms : {};
    this.receipts = answer.receipts !== false;
    this.loaded = true;
    for (const fn of this.listeners) fn(this);
  }

  async load() {
    try {
      this.take(await this.fetchJson('/api/notifications'));
    } catch (error) {
      console.warn('notify.js: notification settings not loaded', error);
    }
    return this;
  }

  level(roomId) {
    const level = this.rooms[roomId]?.level;
    return LEVELS.includes(level) ? level : DEFAULT_LEVEL;
  }

  muted(roomId) {
    return this.rooms[roomId]?.muted === true;
  }

  /** Set one room's level; resolves once the server has it (throws on a refusal). */
  async setLevel(roomId, level) {
    if (!LEVELS.includes(level)) throw new Error(`unknown notification level ${level}`);
    this.take(await this.fetchJson('/api/notifications/rooms', { roomId, level }));
  }

  /** Send read receipts or not (every room, every device of the user). */
  async setReceipts(send) {
    this.take(await this.fetchJson('/api/notifications', { receipts: Boolean(send) }));
  }

  /**
   * A message arrived: when the tab is hidden and the room's level wants it, a Notification
   * (returned; null otherwise). `room`: {name, direct, muted} as the UI knows the room.
   */
  arrived(message, { userId, room = {}, onClick, win = globalThis }) {
    if (win.document?.visibilityState !== 'hidden') return null;
    const muted = Boolean(room.muted) || this.muted(message.roomId);
    if (!wants(message, { userId, level: this.level(message.roomId), muted, direct: room.direct })) return null;
    return show(message, { roomName: room.name, onClick, win });
  }
}

export function supported(win = globalThis) {
  return typeof win.Notification === 'function';
}

export function permission(win = globalThis) {
  return supported(win) ? win.Notification.permission : 'unsupported';
}

function urlBase64ToBytes(value) {
  const padded = (value + '='.repeat((4 - (value.length % 4)) % 4)).replace(/-/g, '+').replace(/_/g, '/');
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
}

/**
 * Ask for permission and subscribe this browser to Web Push. `fetchJson(path, body?)` is
 * the UI's authenticated JSON call (a session with CSRF, or a bearer token).
 * Resolves to "granted" (with or without push), "denied", "default" or "unsupported".
 */
export async function enable({ fetchJson, workerUrl, win = globalThis }) {
  if (!supported(win)) return 'unsupported';
  const answer = await win.Notification.requestPermission();
  if (answer !== 'granted') return answer;
  try {
    const settings = await fetchJson('/api/notifications');
    const nav = win.navigator;
    if (settings?.vapidPublicKey && nav?.serviceWorker && win.PushManager) {
      const registration = await nav.serviceWorker.register(workerUrl);
      await nav.serviceWorker.ready;
      const subscription =
        (await registration.pushManager.getSubscription()) ??
        (await registration.pushManager.subscribe({
          userVisibleOnly: true,
          applicationServerKey: urlBase64ToBytes(settings.vapidPublicKey),
        }));
      await fetchJson('/api/notifications/subscriptions', subscription.toJSON());
    }
  } catch (error) {
    console.warn('notify.js: no Web Push in this browser', error);
  }
  return 'granted';
}

/** A Notification for a message that arrived while the tab is hidden. */
export function show(message, { roomName, onClick, win = globalThis }) {
  if (permission(win) !== 'granted') return null;
  const text = String(message.message ?? '');
  const note = new win.Notification(`${message.username} in #${roomName ?? message.roomId}`, {
    body: text.length > 200 ? `${text.slice(0, 199)}…` : text,
    tag: `room-${message.roomId}`,
    data: { roomId: message.roomId, seq: message.seq },
  });
  note.onclick = () => {
    win.focus?.();
    onClick?.(message);
    note.close();
  };
  return note;
}
