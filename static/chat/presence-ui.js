/**
 * presence-ui.js: the template UI's presence dots and "alice is typing…" line.
 *
 * The state is the client core's (core/presence.js, core/typing.js, which the React app
 * bundles too); this module only draws it: a dot after each message author's name but
 * one's own (online, away, or offline with the last-seen time in its tooltip), the typing
 * line above the composer for the open room, and `typing` frames while the user writes.
 */

import { createPresenceBook, presenceText, watchActivity } from "./core/presence.js";
import { createTypingSender, createTypingTracker } from "./core/typing.js";

export function setupPresence({ connection, self = null, room, list, input, typingLine, win = window }) {
  const openRoom = () => (room.hidden ? null : room.dataset.roomId || null);

  function paint(dot, userId) {
    const presence = book.of(userId);
    const text = presenceText(presence);
    dot.dataset.status = presence.status;
    dot.title = text;
    dot.setAttribute("aria-label", text);
  }

  function decorate(li) {
    const userId = li.dataset?.userId;
    const meta = li.querySelector?.(".meta");
    // No dot on one's own lines, as in the React app: the server never tells a socket its own
    // user's presence, so the dot would say "offline" to the person who is typing.
    if (!userId || !meta || (self !== null && userId === String(self))) return;
    let dot = meta.querySelector(".presence-dot");
    if (!dot) {
      dot = document.createElement("span");
      dot.className = "presence-dot";
      dot.setAttribute("role", "img");
      meta.querySelector(".author")?.after(dot);
    }
    paint(dot, userId);
  }

  const book = createPresenceBook({
    onChange(userId) {
      for (const li of list.querySelectorAll(`li[data-user-id="${CSS.escape(userId)}"]`)) decorate(li);
    },
  });
  const tracker = createTypingTracker({
    onChange(roomId) {
      if (roomId === openRoom()) showTyping();
    },
  });
  const sender = createTypingSender((roomId) => connection.typing(roomId));

  function showTyping() {
    const roomId = openRoom();
    typingLine.textContent = roomId ? tracker.label(roomId) : "";
  }

  connection.on("presence", (frame) => book.presence(frame));
  connection.on("typing", (frame) => tracker.typing(frame));
  connection.on("message", (message) => tracker.message(message));
  input.addEventListener("input", () => {
    if (input.value.trim()) sender.keystroke(openRoom());
  });
  input.form?.addEventListener("submit", () => sender.sent(openRoom()));

  // Lines come and go as the list renders: every new one gets its author's dot.
  new MutationObserver((records) => {
    for (const record of records) for (const node of record.addedNodes) if (node.nodeType === 1) decorate(node);
  }).observe(list, { childList: true });
  for (const li of list.children) decorate(li);
  // Another room opened in place: its typists.
  new MutationObserver(showTyping).observe(room, { attributes: true, attributeFilter: ["data-room-id", "hidden"] });

  watchActivity(connection, win);
  return { book, tracker };
}
