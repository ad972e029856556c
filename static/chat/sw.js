/*
 * Chatsite's service worker: Web Push notifications for mentions and direct messages while
 * no tab is open (unread/notify.py sends them). The payload is JSON:
 * {title, body, roomId, seq, url, count}. A click opens (or focuses) the room at the message.
 * Served as a static file to both UIs (frontend/public/sw.js is a link to this file).
 */
self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch {
    data = { title: "Chatsite", body: event.data ? event.data.text() : "" };
  }
  event.waitUntil(
    self.registration.showNotification(data.title || "Chatsite", {
      body: data.body || "",
      tag: data.roomId ? `room-${data.roomId}` : undefined,
      data: { url: data.url || "/" },
    }),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = new URL(event.notification.data?.url || "/", self.location.origin).href;
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((windows) => {
      for (const w of windows) {
        if (w.url === url && "focus" in w) return w.focus();
      }
      return self.clients.openWindow(url);
    }),
  );
});
