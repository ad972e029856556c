/*
 * Chatsite's template UI: the rooms in a sidebar, the open room in the main pane, rooms
 * switched in place (history.pushState) on one connection. Loaded as an ES module;
 * everything that speaks the protocol (the socket, heartbeat, backoff, resume, each room's
 * state, the outbox and its copy in this browser) is the shared client in ./core/, the
 * same module the React app at /app/ imports. This file only renders what it hands over.
 *
 * - Text only. Every piece of user data reaches the DOM through textContent, a data
 *   attribute or an <a> whose href linkify.js checked (http/https only), never as markup.
 * - Nothing shows twice. Stored messages are keyed by messageId and placed by seq; your
 *   own unsent messages by their clientMessageId, so the ack, the broadcast copy and any
 *   replay after a reconnect all land on the same line.
 * - Nothing typed is lost: unacknowledged messages stay in the outbox (and in this
 *   browser, across a reload) and go out again with the same clientMessageId.
 * - Every room opened in this tab stays joined, so its sidebar badge counts what arrives.
 * - Per-message actions live in a menu (message-menu.js) that features register into.
 */
import { ChatConnection, ConnectionState, localOutboxStore, watchBrowser } from "./core/client.js";
import { avatarColor, continuesGroup, initials } from "./core/display.js";
import { linkify } from "./core/linkify.js";
import { snapshot } from "./core/rooms.js";
import { createMessageMenu } from "./message-menu.js";
import { setupReporting } from "./report.js";
import { setupSearch } from "./search-ui.js";

const app = document.getElementById("chat-app");

if (app) start(app);

function start(app) {
  const USER_ID = app.dataset.userId;
  const USERNAME = app.dataset.username || "";
  const WS_PATH = app.dataset.wsPath || "/ws/";
  const LOGIN_URL = app.dataset.loginUrl || "/accounts/login/";
  const MAX_LENGTH = parseInt(app.dataset.maxLength, 10) || 4000;
  const HISTORY_PAGE = 50;
  const NEAR_BOTTOM_PX = 80;

  const el = {
    room: document.getElementById("room"),
    home: document.getElementById("home"),
    roomName: document.getElementById("room-name"),
    roomIdLabel: document.getElementById("room-id-label"),
    sidebar: document.getElementById("sidebar"),
    scrim: document.getElementById("sidebar-scrim"),
    status: document.getElementById("status"),
    statusText: document.getElementById("status-text"),
    statusDetail: document.getElementById("status-detail"),
    offlineBar: document.getElementById("offline-bar"),
    offlineDetail: document.getElementById("offline-detail"),
    reconnectNow: document.getElementById("reconnect-now"),
    notice: document.getElementById("notice"),
    noticeText: document.getElementById("notice-text"),
    noticeDismiss: document.getElementById("notice-dismiss"),
    scroller: document.getElementById("scroller"),
    loadOlder: document.getElementById("load-older"),
    list: document.getElementById("messages"),
    form: document.getElementById("composer"),
    input: document.getElementById("message-input"),
    counter: document.getElementById("counter"),
  };

  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  const connection = new ChatConnection({
    url: `${scheme}//${window.location.host}${WS_PATH}`,
    outboxStore: USERNAME ? localOutboxStore(USERNAME) : null,
  });
  const menu = createMessageMenu(document.getElementById("message-menu"));
  setupReporting(document.getElementById("report-dialog"));

  const view = {
    roomId: el.room.dataset.roomId || null, // the open room, or null on the room list page
    room: null, // the client's latest snapshot of the open room
    outbox: [], // the open room's unsent messages
    joined: false, // the open room is joined on the current socket
    stopped: false, // banned or signed out: never reconnect
    refused: false, // the open room refused us (unknown, private, left)
    historyInFlight: false,
    settings: undefined,
    lines: new Map(), // messageId -> <li> of a stored message
    pending: new Map(), // clientMessageId -> <li> of an unsent message
    active: null, // the line that takes Tab in the message list (roving focus)
    countdown: null,
    unread: new Map(), // roomId -> messages that arrived while it was not open
  };

  // --- Small helpers ------------------------------------------------------------------

  function codePoints(text) {
    // The server counts code points (Python's len), not UTF-16 units.
    return Array.from(text).length;
  }

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  function dayKey(date) {
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  }

  function dayLabel(key) {
    const today = new Date();
    const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
    if (key === dayKey(today)) return "Today";
    if (key === dayKey(yesterday)) return "Yesterday";
    const [y, m, d] = key.split("-").map(Number);
    const date = new Date(y, m - 1, d);
    const options = { weekday: "long", month: "long", day: "numeric" };
    if (y !== today.getFullYear()) options.year = "numeric";
    return date.toLocaleDateString(undefined, options);
  }

  function parseTimestamp(value) {
    const date = typeof value === "string" || typeof value === "number" ? new Date(value) : new Date(NaN);
    return Number.isNaN(date.getTime()) ? new Date() : date;
  }

  function roomLinks() {
    return Array.from(el.sidebar.querySelectorAll("a[data-room-id]"));
  }

  function roomLink(roomId) {
    return roomLinks().find((a) => a.dataset.roomId === roomId) ?? null;
  }

  // --- Status, offline bar and notices ------------------------------------------------

  function setStatus(kind, text, detail) {
    el.status.dataset.state = kind;
    if (el.statusText.textContent !== text) el.statusText.textContent = text;
    el.statusDetail.textContent = detail || "";
  }

  // A bar across the room while the socket is down (issue 20): the composer stays usable,
  // and what is written meanwhile goes out when the connection is back.
  function showOffline(retryInMs) {
    clearInterval(view.countdown);
    el.offlineBar.hidden = false;
    const at = typeof retryInMs === "number" ? Date.now() + retryInMs : null;
    const tick = () => {
      const seconds = at === null ? 0 : Math.max(0, Math.ceil((at - Date.now()) / 1000));
      const detail = seconds > 0 ? `reconnecting in ${seconds} s` : "reconnecting…";
      el.offlineDetail.textContent = detail.charAt(0).toUpperCase() + detail.slice(1);
      setStatus("offline", "Offline", detail);
    };
    tick();
    if (at !== null) view.countdown = setInterval(tick, 1000);
  }

  function hideOffline() {
    clearInterval(view.countdown);
    view.countdown = null;
    el.offlineBar.hidden = true;
  }

  // kind "error" (an alert) or "info" (a confirmation: said politely, not styled as an error).
  function showNotice(text, kind = "error") {
    el.notice.dataset.kind = kind;
    el.notice.setAttribute("role", kind === "error" ? "alert" : "status");
    el.noticeText.textContent = text;
    el.notice.hidden = false;
  }

  function hideNotice() {
    el.notice.hidden = true;
    el.noticeText.textContent = "";
  }

  function setComposerEnabled(enabled) {
    el.input.disabled = !enabled;
    el.form.querySelector("button[type=submit]").disabled = !enabled;
  }

  function stop(kind, text) {
    view.stopped = true;
    view.joined = false;
    hideOffline();
    setStatus(kind, text);
    setComposerEnabled(false);
    updateLoadOlder();
  }

  // --- Rendering ----------------------------------------------------------------------

  function nearBottom() {
    const s = el.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < NEAR_BOTTOM_PX;
  }

  function scrollToBottom() {
    el.scroller.scrollTop = el.scroller.scrollHeight;
  }

  function setTime(li, date) {
    const time = li.querySelector("time");
    const iso = date.toISOString();
    if (time.dateTime === iso) return;
    time.dateTime = iso;
    time.textContent = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    time.title = date.toLocaleString();
    li.dataset.day = dayKey(date);
  }

  // The text as text nodes and http(s) links (core/linkify.js checked every href).
  function setText(li, text) {
    if (li.dataset.text === text && !li.classList.contains("removed")) return;
    li.dataset.text = text;
    const body = li.querySelector(".text");
    const nodes = linkify(text).map((segment) => {
      if (segment.type !== "link") return document.createTextNode(segment.text);
      const a = document.createElement("a");
      a.href = segment.href;
      a.target = "_blank";
      a.rel = "noopener noreferrer nofollow ugc";
      a.textContent = segment.text;
      a.tabIndex = li === view.active ? 0 : -1;
      return a;
    });
    body.replaceChildren(...nodes);
  }

  function buildLine({ userId, username, text, date, mine }) {
    const li = document.createElement("li");
    li.className = mine ? "msg mine" : "msg";
    li.tabIndex = -1;
    li.dataset.userId = String(userId ?? "");

    const avatar = document.createElement("span");
    avatar.className = "avatar";
    avatar.setAttribute("aria-hidden", "true");
    avatar.textContent = initials(username);
    avatar.style.backgroundColor = avatarColor(userId ?? username);

    const main = document.createElement("div");
    main.className = "msg-main";
    const meta = document.createElement("div");
    meta.className = "meta";
    const author = document.createElement("span");
    author.className = "author";
    author.dir = "auto";
    author.textContent = username;
    meta.append(author, document.createTextNode(" "), document.createElement("time"));
    const body = document.createElement("p");
    body.className = "text";
    body.dir = "auto"; // a right-to-left message reads right to left
    main.append(meta, body);

    const more = document.createElement("button");
    more.type = "button";
    more.className = "msg-menu-button";
    more.tabIndex = -1;
    more.setAttribute("aria-haspopup", "menu");
    more.setAttribute("aria-expanded", "false");
    more.setAttribute("aria-label", `Actions for this message from ${username}`);
    more.textContent = "⋯";
    more.addEventListener("click", () => openMenu(li, more));

    li.append(avatar, main, more);
    setText(li, text);
    setTime(li, date);
    return li;
  }

  function messageOfLine(li) {
    if (li.dataset.messageId) return view.room?.messages.find((m) => m.messageId === li.dataset.messageId) ?? null;
    return null;
  }

  function openMenu(li, button) {
    const message = messageOfLine(li) ?? {
      messageId: null,
      userId: USER_ID,
      username: USERNAME,
      message: li.dataset.text ?? "",
      removed: false,
      clientMessageId: li.dataset.cmid ?? null,
    };
    menu.open(button, {
      message,
      own: String(message.userId) === USER_ID,
      roomId: view.roomId,
      connection,
      line: li,
      focusComposer: () => el.input.focus(),
    });
  }

  // Your own line, pending or failed: "Sending…", "Slow mode…" or "Not sent: …" with Retry and
  // Discard. A stored line of yours says nothing (its data-state is "sent").
  function ownDelivery(li) {
    let box = li.querySelector(".delivery");
    if (box) return box;
    box = document.createElement("div");
    box.className = "delivery";
    const label = document.createElement("span");
    label.className = "delivery-label";
    const retry = document.createElement("button");
    retry.type = "button";
    retry.className = "retry";
    retry.textContent = "Retry";
    retry.hidden = true;
    retry.addEventListener("click", () => {
      connection.retry(li.dataset.cmid);
      el.input.focus();
    });
    const discard = document.createElement("button");
    discard.type = "button";
    discard.className = "discard link-button";
    discard.textContent = "Discard";
    discard.hidden = true;
    discard.addEventListener("click", () => {
      connection.discard(li.dataset.cmid);
      el.input.focus();
    });
    box.append(label, retry, discard);
    li.querySelector(".msg-main").append(box);
    return box;
  }

  function setDelivery(li, kind, text) {
    const box = ownDelivery(li);
    li.dataset.state = kind;
    const label = box.querySelector(".delivery-label");
    if (label.textContent !== text) label.textContent = text;
    const failed = kind === "failed";
    const focused = li.contains(document.activeElement) && li !== document.activeElement;
    box.querySelector(".retry").hidden = !failed;
    box.querySelector(".discard").hidden = !failed;
    if (focused && !li.contains(document.activeElement)) el.input.focus();
  }

  function deliveryOf(item) {
    if (item.status === "failed") return ["failed", `Not sent (${item.code || "error"}): ${item.error || ""}`];
    if (item.status === "sent") return ["sent", ""];
    if (item.retrying) return ["pending", `Retrying (${item.retrying})…`];
    return ["pending", view.joined ? "Sending…" : "Waiting for connection…"];
  }

  // A stored message's line, made or brought up to date. Returns the <li>.
  function storedLine(m) {
    const mine = String(m.userId) === USER_ID;
    let li = view.lines.get(m.messageId);
    if (!li && m.clientMessageId && view.pending.has(m.clientMessageId)) {
      // Your own line, now stored: the same element (focus and screen readers stay put).
      li = view.pending.get(m.clientMessageId);
      view.pending.delete(m.clientMessageId);
    }
    if (!li) {
      li = buildLine({
        userId: m.userId,
        username: String(m.username),
        text: m.message,
        date: parseTimestamp(m.timestamp),
        mine,
      });
    }
    view.lines.set(m.messageId, li);
    li.dataset.messageId = m.messageId;
    li.dataset.seq = String(m.seq);
    li.dataset.timestamp = String(m.timestamp ?? "");
    setTime(li, parseTimestamp(m.timestamp));
    if (m.removed) {
      li.classList.add("removed");
      li.dataset.removed = "true";
      const note = m.removedBy === "author" ? "Message deleted" : "Message removed by a moderator";
      const text = li.querySelector(".text");
      if (text.textContent !== note) text.textContent = note;
      delete li.dataset.text;
      markEdited(li, false);
    } else {
      setText(li, m.message);
      markEdited(li, Boolean(m.editedAt));
    }
    if (mine) setDelivery(li, "sent", "");
    return li;
  }

  function markEdited(li, edited) {
    li.classList.toggle("edited", edited);
    const mark = li.querySelector(".edited-mark");
    if (edited && !mark) {
      const span = document.createElement("span");
      span.className = "edited-mark";
      span.textContent = "(edited)";
      li.querySelector(".text").after(span);
    } else if (!edited && mark) {
      mark.remove();
    }
  }

  function pendingLine(item) {
    let li = view.pending.get(item.clientMessageId);
    if (!li) {
      li = buildLine({
        userId: USER_ID,
        username: USERNAME || "you",
        text: item.text,
        date: parseTimestamp(item.createdAt),
        mine: true,
      });
      li.dataset.cmid = item.clientMessageId;
      li.dataset.timestamp = new Date(parseTimestamp(item.createdAt)).toISOString();
      view.pending.set(item.clientMessageId, li);
    }
    const [kind, text] = deliveryOf(item);
    setDelivery(li, kind, text);
    return li;
  }

  // Put the list in the order wanted: stored lines by seq, then your unsent ones as typed.
  // Only what changed is touched, so a screen reader hears only new lines.
  function render() {
    const stick = nearBottom();
    const messages = view.room ? view.room.messages : [];
    const wanted = [];
    const storedIds = new Set();
    const storedCmids = new Set();
    for (const m of messages) {
      wanted.push(storedLine(m));
      storedIds.add(m.messageId);
      if (m.clientMessageId) storedCmids.add(m.clientMessageId);
    }
    const unsent = new Set();
    for (const item of view.outbox) {
      if (storedCmids.has(item.clientMessageId)) continue;
      wanted.push(pendingLine(item));
      unsent.add(item.clientMessageId);
    }
    for (const [id, li] of view.lines) {
      if (!storedIds.has(id)) {
        li.remove();
        view.lines.delete(id);
      }
    }
    for (const [cmid, li] of view.pending) {
      if (!unsent.has(cmid)) {
        li.remove();
        view.pending.delete(cmid);
      }
    }
    let previous = null;
    for (const li of wanted) {
      const expected = previous ? nextLine(previous) : firstLine();
      if (expected !== li) {
        if (previous) previous.after(li);
        else el.list.prepend(li);
      }
      previous = li;
    }
    refreshDays();
    refreshGroups(wanted);
    refreshRoving(wanted);
    updateLoadOlder();
    if (stick) scrollToBottom();
  }

  function firstLine() {
    let node = el.list.firstElementChild;
    while (node && !node.classList.contains("msg")) node = node.nextElementSibling;
    return node;
  }

  function nextLine(li) {
    let node = li.nextElementSibling;
    while (node && !node.classList.contains("msg")) node = node.nextElementSibling;
    return node;
  }

  // One separator before the first line of each local day; touch only what changed, so a
  // screen reader does not hear old separators again.
  function refreshDays() {
    let previous = null;
    for (const node of Array.from(el.list.children)) {
      if (!node.classList.contains("msg")) continue;
      const day = node.dataset.day;
      const before = node.previousElementSibling;
      const hasSeparator = before !== null && before.classList.contains("day");
      if (day !== previous) {
        if (!(hasSeparator && before.dataset.day === day)) {
          if (hasSeparator) before.remove();
          const separator = document.createElement("li");
          separator.className = "day";
          separator.dataset.day = day;
          separator.textContent = dayLabel(day);
          node.before(separator);
        }
      } else if (hasSeparator) {
        before.remove();
      }
      previous = day;
    }
    for (const separator of Array.from(el.list.querySelectorAll("li.day"))) {
      const next = separator.nextElementSibling;
      if (next === null || !next.classList.contains("msg")) separator.remove();
    }
  }

  // One sender's run of messages within five minutes shows the name and avatar once
  // (core/display.js); the others show their time on hover or focus.
  function refreshGroups(wanted) {
    let previous = null;
    for (const li of wanted) {
      const here = { userId: li.dataset.userId, timestamp: li.dataset.timestamp, removed: li.dataset.removed === "true" };
      li.classList.toggle("grouped", continuesGroup(previous, here));
      previous = here;
    }
  }

  // Roving focus: the message list is one Tab stop (the active line); ↑/↓ move inside it,
  // and only the active line's buttons and links are in the Tab order.
  function refreshRoving(wanted) {
    if (!view.active || !view.active.isConnected) view.active = wanted[wanted.length - 1] ?? null;
    for (const li of wanted) setRoving(li, li === view.active);
  }

  function setRoving(li, on) {
    li.tabIndex = on ? 0 : -1;
    for (const control of li.querySelectorAll("button, a[href]")) control.tabIndex = on ? 0 : -1;
  }

  function activate(li, focus = true) {
    if (view.active && view.active !== li && view.active.isConnected) setRoving(view.active, false);
    view.active = li;
    setRoving(li, true);
    if (focus) li.focus();
  }

  function updateLoadOlder() {
    const hide = !view.room || !view.room.hasMore || view.room.messages.length === 0;
    if (hide && document.activeElement === el.loadOlder) el.input.focus();
    el.loadOlder.hidden = hide;
    el.loadOlder.disabled = view.historyInFlight || !view.joined;
    el.loadOlder.textContent = view.historyInFlight ? "Loading…" : "Load older messages";
  }

  // What the room's settings mean for this page: a line above the composer, and no
  // composer at all in an archived room (the server refuses every post there anyway).
  function setRoomState(room) {
    const settings = room && typeof room === "object" ? room : {};
    const notes = [];
    if (settings.archived === true) notes.push("Archived: this room takes no new messages.");
    else if (settings.readOnly === true) notes.push("Read-only: only moderators post here.");
    const slow = Number.isInteger(settings.slowModeSeconds) ? settings.slowModeSeconds : 0;
    if (slow > 0 && settings.archived !== true) notes.push(`Slow mode: one message every ${slow} s.`);
    if (settings.private === true) notes.push("Private room: members only.");
    let line = document.getElementById("room-state");
    if (!line) {
      line = document.createElement("p");
      line.id = "room-state";
      line.className = "room-state";
      line.setAttribute("role", "status");
      el.form.before(line);
    }
    line.textContent = notes.join(" ");
    line.hidden = notes.length === 0;
    if (view.stopped || view.refused) return;
    setComposerEnabled(settings.archived !== true);
  }

  // --- Rooms: the sidebar, unread badges, switching in place ---------------------------

  function updateBadges() {
    let total = 0;
    for (const a of roomLinks()) {
      const count = a.dataset.roomId === view.roomId ? 0 : (view.unread.get(a.dataset.roomId) ?? 0);
      total += count;
      const badge = a.querySelector("[data-unread]");
      if (!badge) continue;
      badge.hidden = count === 0;
      badge.textContent = count > 99 ? "99+" : String(count);
      a.setAttribute("aria-label", count > 0 ? `${a.dataset.roomName}, ${count} unread` : a.dataset.roomName);
    }
    const name = view.roomId ? el.roomName.textContent : "Rooms";
    document.title = `${total > 0 ? `(${total}) ` : ""}${name} · Chatsite`;
  }

  function showRoomHeader(roomId, name) {
    el.roomName.textContent = name;
    el.roomIdLabel.textContent = `#${roomId}`;
    for (const a of roomLinks()) {
      if (a.dataset.roomId === roomId) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
  }

  function currentStatus() {
    if (view.stopped) return;
    if (view.joined) {
      hideOffline();
      setStatus("live", "Live");
    } else if (connection.state === ConnectionState.OFFLINE) {
      showOffline(null);
    } else {
      setStatus("connecting", "Connecting…");
    }
  }

  // Open a room in the main pane: no page load; the room stays joined when another opens.
  function openRoom(roomId, name, { push = true } = {}) {
    closeDrawer();
    if (roomId === view.roomId && !el.room.hidden) {
      el.input.focus();
      return;
    }
    menu.close({ restoreFocus: false });
    hideNotice();
    if (push) history.pushState({ roomId }, "", roomLink(roomId)?.href ?? `/rooms/${roomId}/`);
    el.home?.remove();
    el.home = null;
    el.room.hidden = false;
    el.room.dataset.roomId = roomId;
    view.roomId = roomId;
    view.lines.clear();
    view.pending.clear();
    view.active = null;
    view.refused = false;
    view.historyInFlight = false;
    el.list.replaceChildren();
    showRoomHeader(roomId, name);
    connection.joinRoom(roomId); // nothing when already joined in this tab
    const known = connection.rooms.get(roomId);
    view.room = known ? snapshot(known) : null;
    view.joined = Boolean(known?.joined) && connection.state === ConnectionState.LIVE;
    view.settings = view.room?.settings ?? null;
    if (!view.stopped) setComposerEnabled(true);
    setRoomState(view.settings);
    view.outbox = connection.outboxItems().filter((item) => item.roomId === roomId);
    view.unread.delete(roomId);
    updateBadges();
    el.list.setAttribute("aria-busy", "true");
    render();
    el.list.setAttribute("aria-busy", "false");
    scrollToBottom();
    currentStatus();
    el.input.focus();
  }

  function roomFromPath(pathname) {
    const match = /^\/rooms\/([^/]+)\/$/.exec(pathname);
    return match ? decodeURIComponent(match[1]) : null;
  }

  el.sidebar.addEventListener("click", (event) => {
    const a = event.target.closest("a[data-room-id]");
    if (!a || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    openRoom(a.dataset.roomId, a.dataset.roomName);
  });
  window.addEventListener("popstate", () => {
    const roomId = roomFromPath(window.location.pathname);
    const a = roomId ? roomLink(roomId) : null;
    if (a) openRoom(roomId, a.dataset.roomName, { push: false });
    else window.location.reload(); // the room list page, or a room this sidebar does not hold
  });

  // The sidebar is a drawer on a phone (chat.css): opened by ☰, closed by ×, Esc or a tap outside.
  function openDrawer(button) {
    app.classList.add("drawer-open");
    el.scrim.hidden = false;
    for (const b of document.querySelectorAll(".sidebar-open")) b.setAttribute("aria-expanded", "true");
    (el.sidebar.querySelector('a[aria-current="page"]') ?? el.sidebar.querySelector("a"))?.focus();
    el.sidebar.dataset.opener = button?.id ?? "";
  }

  function closeDrawer() {
    if (!app.classList.contains("drawer-open")) return;
    app.classList.remove("drawer-open");
    el.scrim.hidden = true;
    for (const b of document.querySelectorAll(".sidebar-open")) b.setAttribute("aria-expanded", "false");
  }

  for (const button of document.querySelectorAll(".sidebar-open")) {
    button.addEventListener("click", () => openDrawer(button));
  }
  document.getElementById("sidebar-close").addEventListener("click", () => {
    closeDrawer();
    (el.room.hidden ? document.querySelector(".home .sidebar-open") : document.getElementById("sidebar-open"))?.focus();
  });
  el.scrim.addEventListener("click", closeDrawer);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && app.classList.contains("drawer-open")) {
      closeDrawer();
      document.getElementById("sidebar-open")?.focus();
    }
  });

  // --- What the client says ------------------------------------------------------------

  connection.on("room", ({ roomId, room }) => {
    if (roomId !== view.roomId) return;
    const first = view.room === null || !view.room.loaded;
    view.room = room;
    if (room.settings !== view.settings) {
      view.settings = room.settings;
      setRoomState(room.settings);
    }
    // A bulk load (a join, a page of history) would make a screen reader read out every
    // line; aria-busy holds the announcements back until the list is settled.
    el.list.setAttribute("aria-busy", first ? "true" : "false");
    render();
    el.list.setAttribute("aria-busy", "false");
    if (first) scrollToBottom();
  });

  connection.on("message", (message) => {
    if (message.roomId === view.roomId || String(message.userId) === USER_ID) return;
    view.unread.set(message.roomId, (view.unread.get(message.roomId) ?? 0) + 1);
    updateBadges();
  });

  connection.on("outbox", (items) => {
    if (!view.roomId) return;
    const before = view.outbox.length;
    view.outbox = items.filter((item) => item.roomId === view.roomId);
    render();
    if (view.outbox.length > before) scrollToBottom(); // you just wrote it: show it
  });

  connection.on("joined", ({ roomId }) => {
    if (roomId !== view.roomId || view.stopped) return;
    view.joined = true;
    hideOffline();
    setStatus("live", "Live");
    render();
  });

  connection.on("state", ({ state, retryInMs }) => {
    if (view.stopped) return;
    if (state !== ConnectionState.LIVE) view.joined = false;
    if (state === ConnectionState.OFFLINE) {
      showOffline(retryInMs);
      render();
    } else if (state === ConnectionState.CONNECTING) {
      if (!el.offlineBar.hidden) showOffline(null);
      else setStatus("connecting", "Connecting…");
    } else if (state === ConnectionState.UNAUTHORIZED) {
      stop("stopped", "Signed out: taking you to the sign-in page…");
      const next = window.location.pathname + window.location.search;
      window.location.assign(`${LOGIN_URL}?next=${encodeURIComponent(next)}`);
    } else if (state === ConnectionState.FORBIDDEN) {
      stop("banned", "Banned: you can no longer take part in this chat.");
    }
  });

  connection.on("roomError", ({ roomId, code, message }) => {
    if (roomId !== view.roomId) return;
    if (connection.rooms.has(roomId)) {
      showNotice(`${code}: ${message}`); // retryable: the client asks again
      return;
    }
    // The room refused us (private, unknown) or took us out: asking again would not help.
    view.refused = true;
    view.joined = false;
    setStatus("stopped", "Not a member");
    setComposerEnabled(false);
    updateLoadOlder();
    // A private room answers a non-member unknown_room, as if it did not exist (docs/auth.md).
    const hidden = code === "forbidden" || code === "unknown_room";
    showNotice(hidden ? "This room does not exist, or is private: members only." : `${code}: ${message}`);
  });

  connection.on("reported", ({ roomId, messageId }) => {
    const li = roomId === view.roomId ? view.lines.get(messageId) : null;
    if (li) {
      li.dataset.report = "done";
      if (!li.querySelector(".reported-mark")) {
        const mark = document.createElement("span");
        mark.className = "reported-mark";
        mark.textContent = "Reported";
        li.querySelector(".meta").append(mark);
      }
    }
    showNotice("Thank you: the moderators will look at this message.", "info");
  });

  connection.on("error", (f) => {
    const code = typeof f.code === "string" ? f.code : "error";
    const message = typeof f.message === "string" ? f.message : "";
    if (f.action === "reportMessage") {
      for (const li of el.list.querySelectorAll('li[data-report="sending"]')) delete li.dataset.report;
    }
    showNotice(`${code}: ${message}`);
  });

  // --- The message list: keyboard -------------------------------------------------------

  el.list.addEventListener("focusin", (event) => {
    const li = event.target.closest("li.msg");
    if (li && li !== view.active) activate(li, false);
  });
  el.list.addEventListener("keydown", (event) => {
    const li = event.target.closest("li.msg");
    if (!li) return;
    const all = Array.from(el.list.querySelectorAll("li.msg"));
    const at = all.indexOf(li);
    let next = null;
    if (event.key === "ArrowUp") next = all[at - 1];
    else if (event.key === "ArrowDown") next = all[at + 1];
    else if (event.key === "Home" && event.target === li) next = all[0];
    else if (event.key === "End" && event.target === li) next = all[all.length - 1];
    else if (event.target === li && (event.key === "Enter" || event.key === " " || event.key === "ContextMenu" || (event.key === "F10" && event.shiftKey))) {
      event.preventDefault();
      openMenu(li, li.querySelector(".msg-menu-button"));
      return;
    } else if (event.key === "Escape") {
      event.preventDefault();
      el.input.focus();
      return;
    }
    if (next) {
      event.preventDefault();
      activate(next);
    }
  });

  // --- The composer -------------------------------------------------------------------

  function updateCounter() {
    const length = codePoints(el.input.value);
    const over = length > MAX_LENGTH;
    el.form.classList.toggle("too-long", over);
    el.input.setAttribute("aria-invalid", over ? "true" : "false");
    if (over) el.counter.textContent = `${length} / ${MAX_LENGTH}: too long to send`;
    else if (length > MAX_LENGTH * 0.9) el.counter.textContent = `${length} / ${MAX_LENGTH}`;
    else el.counter.textContent = "";
  }

  function submit() {
    const text = el.input.value;
    if (!text.trim() || !view.roomId) return;
    if (codePoints(text) > MAX_LENGTH) {
      updateCounter();
      return;
    }
    el.input.value = "";
    updateCounter();
    connection.send(view.roomId, text);
  }

  el.form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
    el.input.focus();
  });
  el.input.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.shiftKey || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.isComposing) return; // an IME is still composing this text
    event.preventDefault();
    submit();
  });
  el.input.addEventListener("input", updateCounter);
  el.loadOlder.addEventListener("click", async () => {
    const roomId = view.roomId;
    const lowest = view.room?.messages[0]?.seq;
    if (view.historyInFlight || !view.joined || lowest === undefined) return;
    view.historyInFlight = true;
    updateLoadOlder();
    const fromBottom = el.scroller.scrollHeight - el.scroller.scrollTop;
    try {
      await connection.history(roomId, lowest, HISTORY_PAGE); // the page arrives as a room event
      // Keep the lines the reader was looking at in place.
      if (roomId === view.roomId) el.scroller.scrollTop = el.scroller.scrollHeight - fromBottom;
    } catch (error) {
      if (error?.code && roomId === view.roomId) showNotice(`${error.code}: ${error.message}`);
    }
    view.historyInFlight = false;
    updateLoadOlder();
  });
  el.reconnectNow.addEventListener("click", () => connection.reconnectNow());
  el.noticeDismiss.addEventListener("click", () => {
    hideNotice();
    el.input.focus();
  });

  // Search (issue 19): a result opens its room here and shows its message in context.
  setupSearch({
    connection,
    openRoom,
    revealMessage(roomId, seq) {
      const li = roomId === view.roomId ? el.list.querySelector(`li[data-seq="${Number(seq)}"]`) : null;
      if (!li) return false;
      li.scrollIntoView({ block: "center" });
      li.classList.add("found");
      setTimeout(() => li.classList.remove("found"), 4000);
      activate(li);
      return true;
    },
  });

  watchBrowser(connection, window);
  if (view.roomId) {
    connection.joinRoom(view.roomId);
    view.outbox = connection.outboxItems().filter((item) => item.roomId === view.roomId);
    render(); // messages a previous page could not send show at once, waiting
    history.replaceState({ roomId: view.roomId }, "");
  }
  updateBadges();
  connection.connect();
  if (view.roomId) el.input.focus();
}
