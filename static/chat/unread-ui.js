/*
 * The template UI's read state (issue 16): the "New messages" divider (chat.js says
 * "N new messages ↓" while the reader is scrolled up), mentions of you highlighted, "Seen by" receipts in small rooms, read marked only when a
 * message is actually seen (its line in view, the tab visible and focused), browser
 * notifications while the tab is hidden (as the room's notification level says), the button
 * that turns them on, the open room's level ("Notify me about", in the Members dialog) and the read-receipts
 * switch. The counts, the rules and the protocol are the shared core's (./core/unread.js,
 * ./core/notify.js); chat.js calls `afterRender`, `opened` and `arrived`, and renders badges
 * from `reads`.
 */
import { enable, LEVELS, LEVEL_NAMES, NotifySettings, permission, supported } from "./core/notify.js";
import { loadUntilSeq } from "./core/search.js";
import { firstUnreadSeq, mentionsUser } from "./core/unread.js";

function csrf() {
  const match = /(?:^|;\s*)csrftoken=([^;]+)/.exec(document.cookie);
  return match ? decodeURIComponent(match[1]) : "";
}

async function fetchJson(path, body) {
  const init = body === undefined
    ? { credentials: "same-origin" }
    : {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
        body: JSON.stringify(body),
      };
  const response = await fetch(path, init);
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

// Sidebar rooms this tab joins to count what arrives live (the server's counts come at each
// connect and with every mention); rooms past these count again at the next connect.
const LIVE_ROOMS = 20;

export function setupUnreadUi({ connection, el, view, reads, userId, openRoom, revealMessage, roomLink, nearBottom, scrollToBottom }) {
  const divider = document.createElement("li");
  divider.className = "new-divider";
  // A list item stays a list item (axe: a list holds only <li>s of role listitem); the
  // separator is the text inside it.
  const dividerText = document.createElement("span");
  dividerText.setAttribute("role", "separator");
  dividerText.textContent = "New messages";
  divider.append(dividerText);

  // Notifications: asked for only when the user presses this button.
  const notifyButton = document.createElement("button");
  notifyButton.type = "button";
  notifyButton.className = "notify-toggle link-button";
  notifyButton.id = "notify-toggle";
  el.sidebar.append(notifyButton);
  function showNotifyState() {
    const state = permission();
    notifyButton.hidden = !supported();
    notifyButton.disabled = state === "granted" || state === "denied";
    notifyButton.textContent =
      state === "granted" ? "Notifications on" : state === "denied" ? "Notifications blocked" : "Turn on notifications";
  }
  notifyButton.addEventListener("click", async () => {
    await enable({ fetchJson, workerUrl: "/static/chat/sw.js" });
    showNotifyState();
  });
  showNotifyState();

  // What the user asked to be told (GET/POST /api/notifications): the open room's level
  // in its Members dialog, and whether to send read receipts, in the sidebar.
  const settings = new NotifySettings({ fetchJson });
  const levelBox = document.createElement("label");
  levelBox.className = "notify-level";
  const levelText = document.createElement("span");
  levelText.className = "notify-level-text";
  levelText.textContent = "Notify me about";
  levelBox.append(levelText);
  const levelSelect = document.createElement("select");
  levelSelect.id = "notify-level";
  levelSelect.setAttribute("aria-label", "Notify me about");
  for (const level of LEVELS) levelSelect.append(new Option(LEVEL_NAMES[level], level));
  levelBox.append(levelSelect);
  // In the room's Members dialog (with mute and leave), not the room head: there it took the
  // room name's place on a phone.
  document.getElementById("members-room")?.after(levelBox);
  const receiptsBox = document.createElement("label");
  receiptsBox.className = "receipts-toggle";
  const receiptsCheck = document.createElement("input");
  receiptsCheck.type = "checkbox";
  receiptsCheck.id = "send-receipts";
  receiptsBox.append(receiptsCheck, " Send read receipts");
  notifyButton.after(receiptsBox);
  function showSettings() {
    levelSelect.value = view.roomId ? settings.level(view.roomId) : "mentions";
    levelBox.hidden = !view.roomId;
    receiptsCheck.checked = settings.receipts;
  }
  async function save(fn, control) {
    control.disabled = true;
    try {
      await fn();
    } catch (error) {
      console.warn("unread-ui.js: the setting was not saved", error);
    } finally {
      control.disabled = false;
      showSettings();
    }
  }
  levelSelect.addEventListener("change", () => save(() => settings.setLevel(view.roomId, levelSelect.value), levelSelect));
  receiptsCheck.addEventListener("change", () => save(() => settings.setReceipts(receiptsCheck.checked), receiptsCheck));
  settings.onChange(showSettings);
  showSettings();
  settings.load();

  // The mentions list: the latest messages that mention you, each a link to its room.
  const mentionsButton = document.createElement("button");
  mentionsButton.type = "button";
  mentionsButton.className = "mentions-toggle link-button";
  mentionsButton.textContent = "Mentions";
  mentionsButton.setAttribute("aria-expanded", "false");
  const mentionsPanel = document.createElement("ol");
  mentionsPanel.className = "mentions-list";
  mentionsPanel.hidden = true;
  mentionsPanel.setAttribute("aria-label", "Messages that mention you");
  notifyButton.before(mentionsButton, mentionsPanel);
  mentionsButton.addEventListener("click", () => {
    const open = mentionsPanel.hidden;
    mentionsPanel.hidden = !open;
    mentionsButton.setAttribute("aria-expanded", String(open));
    if (open) reads.askMentions();
  });
  function showMentions() {
    const items = reads.mentionList.map((m) => {
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = `/rooms/${encodeURIComponent(m.roomId)}/`;
      a.textContent = `#${m.roomId} · ${m.username}: ${String(m.message).slice(0, 120)}`;
      a.addEventListener("click", (event) => {
        event.preventDefault();
        openRoom(m.roomId, roomLink(m.roomId)?.dataset.roomName ?? m.roomId);
      });
      li.append(a);
      return li;
    });
    if (items.length === 0) {
      const none = document.createElement("li");
      none.textContent = "No mentions yet.";
      items.push(none);
    }
    mentionsPanel.replaceChildren(...items);
  }

  let dividerAfter = null; // the last-read seq when the room was opened: the divider's place
  let joinedSidebar = false;

  function markSeen() {
    if (!view.roomId || !view.joined) return;
    reads.markSeen(view.roomId, view.room?.messages ?? [], {
      atBottom: nearBottom(),
      lastSeq: view.room?.lastSeq ?? 0,
      viewBottom: el.scroller.getBoundingClientRect().bottom,
      bottomOf: (m) => view.lines.get(m.messageId)?.getBoundingClientRect().bottom ?? null,
    });
  }

  function afterRender() {
    const messages = view.room?.messages ?? [];
    for (const m of messages) {
      const li = view.lines.get(m.messageId);
      if (li) li.classList.toggle("mention", mentionsUser(m, userId));
    }
    const first = firstUnreadSeq(messages, dividerAfter, userId);
    const at = first === null ? null : view.lines.get(messages.find((m) => m.seq === first).messageId);
    if (at) {
      if (at.previousElementSibling !== divider) at.before(divider);
    } else {
      divider.remove();
    }
    askReceipts();
    showReceipts();
    markSeen();
  }

  // Receipts are asked once per join of a small private room, when its settings are known:
  // they come with `joined`, after the page has opened the room (asking before, nothing was
  // asked, and "Seen by" never showed on a room the page was loaded on).
  let receiptsAsked = null;
  function askReceipts() {
    if (!view.roomId || !view.joined || !view.settings?.private || receiptsAsked === view.roomId) return;
    receiptsAsked = view.roomId;
    reads.askReceipts(view.roomId);
  }
  connection.on("joined", (frame) => {
    if (frame.roomId === receiptsAsked) receiptsAsked = null; // readReceipts missed while away
  });

  function showReceipts() {
    for (const old of el.list.querySelectorAll(".seen-by")) old.remove();
    if (!view.roomId || !view.room) return;
    for (const [seq, names] of reads.seenBy(view.roomId, view.room.messages)) {
      const m = view.room.messages.find((x) => x.seq === seq);
      const li = m ? view.lines.get(m.messageId) : null;
      if (!li) continue;
      const note = document.createElement("p");
      note.className = "seen-by";
      note.textContent = `Seen by ${names.join(", ")}`;
      li.append(note);
    }
  }

  function opened(roomId) {
    showSettings();
    dividerAfter = reads.state(roomId).lastReadSeq;
    receiptsAsked = null;
    askReceipts();
  }

  // A message of someone else while the tab is hidden: a notification when the room's level
  // wants it (core/notify.js: all, mentions and DMs, or nothing; never in a muted room).
  function arrived(message) {
    const link = roomLink(message.roomId);
    const name = link?.dataset.roomName ?? message.roomId;
    settings.arrived(message, {
      userId,
      room: { name, direct: link?.dataset.kind === "direct", muted: link?.dataset.muted === "true" },
      onClick: () => openAt(message, name),
    });
  }

  // A clicked notification opens the room at its message: history loaded back to it if
  // need be, the line scrolled to and focused (as a search result is).
  async function openAt(message, name) {
    openRoom(message.roomId, name);
    await loadUntilSeq(connection, message.roomId, message.seq);
    revealMessage(message.roomId, message.seq);
  }

  el.scroller.addEventListener("scroll", () => markSeen(), { passive: true });
  window.addEventListener("focus", markSeen);
  document.addEventListener("visibilitychange", markSeen);
  reads.onChange((change) => {
    if (change.kind === "receipts" && change.roomId === view.roomId) showReceipts();
    if (change.kind === "mentions") showMentions();
    // The page opened on a room: its divider sits at the mark the server first tells.
    if (change.kind === "counts" && !change.roomId && !joinedSidebar) {
      joinedSidebar = true;
      const links = Array.from(el.sidebar.querySelectorAll("a[data-room-id]")).slice(0, LIVE_ROOMS);
      for (const a of links) connection.joinRoom(a.dataset.roomId);
    }
    if (change.kind === "counts" && !change.roomId && dividerAfter === null && view.roomId) {
      dividerAfter = reads.state(view.roomId).lastReadSeq ?? 0;
      afterRender();
    }
  });

  return { afterRender, opened, arrived, markSeen };
}
