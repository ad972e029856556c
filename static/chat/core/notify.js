/**
 * notify.js: notifications for both UIs. No protocol here; the UIs call it.
 *
 * - `enable()`: asked only from a button the user pressed (never on page load): the
 *   browser's permission, then a Web Push subscription with the server's VAPID key
 *   (GET /api/notifications), sent to POST /api/notifications/subscriptions, so the user is
 *   told of mentions and direct messages while no tab is open (the service worker sw.js);
 * - `show(message, room, onClick)`: while a tab is open but hidden, the Notification API
 *   with the room, the sender and the text; a click focuses the tab and opens the message.
 */

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
