/*
 * Chatsite's template UI: the rooms in a sidebar, the open room in the main pane, rooms
 * switched in place (history.pushState) on one connection. Loaded as an ES module;
 * everything that speaks the protocol (the socket, heartbeat, backoff, resume, each room's
 * state, the outbox and its copy in this browser) is the shared client in ./core/, the
 * same module the React app at /app/ imports. This file only renders what it hands over.
 *
 * - Text only. Every piece of user data reaches the DOM through textContent, a data
 *   attribute, or the nodes core/format.js made of a message's Markdown (sanitised by
 *   DOMPurify: an allow-list of tags, http/https links only), never as a string of markup.
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
import { attachChanges } from "./core/changes.js";
import { renderMarkdown } from "./core/format.js";
import { snapshot } from "./core/rooms.js";
import { errorText, pendingText } from "./core/words.js";
import { ReadState, badge } from "./core/unread.js";
import { renderAttachments, setupFiles } from "./files.js";
import { createMessageMenu } from "./message-menu.js";
import { setupPresence } from "./presence-ui.js";
import { HOME_ROOM, PEOPLE_ACTIONS, ROOM_GONE_TITLE, roomGoneText } from "./core/people.js";
import { setupPeople } from "./people-ui.js";
import { setupReporting } from "./report.js";
import { setupModeration } from "./moderate.js";
import { bannedText, moderatedText } from "./core/moderation.js";
import { setupChanges } from "./changes-ui.js";
import { attachMentionComplete } from "./mention-complete.js";
import { setupUnreadUi } from "./unread-ui.js";
import { setupSearch } from "./search-ui.js";

const app = document.getElementById("chat-app");

if (app) start(app);

function start(app) {
  const USER_ID = app.dataset.userId;
  const MODERATOR = app.dataset.moderator === "true"; // offer the moderators' actions (the server checks)
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
    newMessages: document.getElementById("new-messages"),
    loadOlder: document.getElementById("load-older"),
    list: document.getElementById("messages"),
    empty: document.getElementById("empty-room"),
    form: document.getElementById("composer"),
    input: document.getElementById("message-input"),
    counter: document.getElementById("counter"),
  };

  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  const connection = new ChatConnection({
    url: `${scheme}//${window.location.host}${WS_PATH}`,
    outboxStore: USERNAME ? localOutboxStore(USERNAME) : null,
    presence: true, // presence dots and typing (presence-ui.js)
  });
  setupPresence({
    connection,
    self: USER_ID,
    room: el.room,
    list: el.list,
    input: el.input,
    typingLine: document.getElementById("typing-line"),
  });
  const menu = createMessageMenu(document.getElementById("message-menu"));
  setupReporting(document.getElementById("report-dialog"));
  const moderateDialog = document.getElementById("moderate-dialog");
  if (MODERATOR && moderateDialog) {
    setupModeration(moderateDialog, {
      onOffline: () => showNotice("Offline: nothing was done. Try again when the connection is back.", "error"),
    });
  }
  // Edit, delete, react, reply, threads (changes-ui.js); set up below, once `view` exists.
  let changesUi = null;
  // Shared files (issue 18): the tray above the composer; a message takes the finished ones.
  const files = setupFiles({
    room: el.room,
    form: el.form,
    input: el.input,
    roomId: () => view.roomId,
    changed: () => updateSendButton(),
  });

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
    unseen: 0, // messages that arrived below while the reader was scrolled up
  };

  changesUi = setupChanges({
    connection,
    changes: attachChanges(connection),
    userId: USER_ID,
    list: el.list,
    form: el.form,
    input: el.input,
    view,
    showNotice: (...args) => showNotice(...args),
  });

  // Read state (issue 16): counts from the server, kept in step across tabs (core/unread.js).
  const reads = new ReadState(connection, { userId: USER_ID });
  const unreadUi = setupUnreadUi({ connection, el, view, reads, userId: USER_ID, openRoom, revealMessage, roomLink, nearBottom, scrollToBottom });
  reads.onChange((change) => {
    if (change.kind === "counts") updateBadges();
  });
  attachMentionComplete(el.input, {
    self: USERNAME,
    names: () => [
      ...(view.room?.messages ?? []).map((m) => m.username),
      ...(view.room?.members ?? []).map((m) => m.username),
    ],
  });

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
  function showNotice(text, kind = "error", code = "") {
    el.notice.dataset.kind = kind;
    el.notice.dataset.code = code;
    el.notice.setAttribute("role", kind === "error" ? "alert" : "status");
    el.noticeText.textContent = text;
    el.notice.hidden = false;
  }

  function hideNotice() {
    el.notice.hidden = true;
    el.noticeText.textContent = "";
  }

  let composerEnabled = true;

  function setComposerEnabled(enabled) {
    composerEnabled = enabled;
    el.input.disabled = !enabled;
    updateSendButton();
  }

  // Send is offered when there is something to send, as in the React app: text or a
  // finished file, not too long, no file still uploading.
  function updateSendButton() {
    const text = el.input.value;
    const nothing = !text.trim() && files.attachments().length === 0;
    el.form.querySelector("button[type=submit]").disabled =
      !composerEnabled || nothing || codePoints(text) > MAX_LENGTH || files.busy;
  }

  function stop(kind, text) {
    view.stopped = true;
    view.joined = false;
    hideOffline();
    setStatus(kind, text);
    setComposerEnabled(false);
    updateLoadOlder();
  }

  // A room that will not let us in, or took us out while open (issue 20): the React app's
  // page in place of the room's messages and composer (chat.css hides them under .is-gone),
  // with a way back to the home room. Made here, not in the template: the room list page's
  // own "not available" page has the same test id, and the room section is there too, hidden.
  let gone = null;
  function showGone(text) {
    // Focus in the room (the composer, a message's menu) is about to vanish with it: move it to
    // the page's way out, so a keyboard or screen-reader user is not left on the body.
    const focus = document.activeElement;
    const focusLost = !focus || focus === document.body || el.room.contains(focus);
    hideNotice();
    document.getElementById("members-dialog")?.close(); // its room is no longer there to manage
    if (!gone) {
      gone = document.createElement("div");
      gone.className = "room-gone";
      gone.setAttribute("role", "alert");
      gone.dataset.testid = "room-gone";
      const title = document.createElement("h2");
      const line = document.createElement("p");
      const back = document.createElement("p");
      const home = document.createElement("a");
      title.textContent = ROOM_GONE_TITLE;
      title.tabIndex = -1; // focusable for the home room, which has no link to itself
      home.href = `/rooms/${HOME_ROOM}/`;
      home.textContent = `Go to #${HOME_ROOM}`;
      home.addEventListener("click", (event) => {
        if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
        event.preventDefault();
        openRoom(HOME_ROOM, roomLink(HOME_ROOM)?.dataset.roomName ?? HOME_ROOM);
      });
      back.append(home);
      gone.append(title, line, back);
    }
    gone.children[1].textContent = text;
    gone.children[2].hidden = view.roomId === HOME_ROOM;
    el.room.querySelector(".messages-pane").before(gone);
    el.room.classList.add("is-gone");
    el.roomName.textContent = ROOM_GONE_TITLE;
    el.roomIdLabel.textContent = ""; // showRoomHeader writes it again for the next room
    el.roomIdLabel.hidden = true;
    updateBadges();
    if (focusLost) (gone.children[2].hidden ? gone.children[0] : gone.querySelector("a")).focus();
  }

  function hideGone() {
    gone?.remove();
    el.room.classList.remove("is-gone");
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

  // The text, formatted (core/format.js: a safe Markdown subset, sanitised nodes).
  function setText(li, text) {
    if (li.dataset.text === text && !li.classList.contains("removed")) return;
    li.dataset.text = text;
    const body = li.querySelector(".text");
    body.replaceChildren(renderMarkdown(text));
    for (const a of body.querySelectorAll("a")) a.tabIndex = li === view.active ? 0 : -1;
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
    const body = document.createElement("div"); // paragraphs, lists, code blocks inside
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
      moderator: MODERATOR,
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

  // In words (core/words.js), with a live countdown while a message waits out a limit.
  function deliveryOf(item) {
    if (item.status === "sent") return ["sent", ""];
    if (item.status === "failed" || item.retrying) return [item.status, pendingText(item)];
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
    changesUi.decorate(li, m);
    renderAttachments(li, m.removed ? [] : m.attachments); // shared files (files.js)
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
    renderAttachments(li, item.attachments);
    const [kind, text] = deliveryOf(item);
    setDelivery(li, kind, text);
    const code = item.status === "failed" ? item.code : item.retrying; // in words on the line, as data here
    if (code) li.dataset.code = code;
    else delete li.dataset.code;
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
    // A room with nothing in it says so, as the React app's does (once its page is in).
    el.empty.hidden = !(view.room?.loaded && wanted.length === 0);
    if (stick) scrollToBottom();
    unreadUi.afterRender();
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
    let elsewhere = 0;
    for (const a of roomLinks()) {
      const open = a.dataset.roomId === view.roomId;
      // A muted room (people-ui.js) stays quiet: no badge, no count.
      const muted = a.dataset.muted === "true";
      const state = muted ? { unread: 0, mentions: 0 } : reads.state(a.dataset.roomId);
      // The open room shows no badge; its unseen messages still count in the tab's title.
      const [count, mentions] = open ? [0, 0] : [state.unread, state.mentions];
      total += open && document.visibilityState === "visible" ? 0 : state.unread;
      elsewhere += count;
      const slot = a.querySelector("[data-unread]");
      if (!slot) continue;
      slot.hidden = count === 0 && mentions === 0;
      slot.textContent = mentions > 0 ? `@${badge(Math.max(count, mentions))}` : badge(count);
      slot.classList.toggle("badge-mention", mentions > 0);
      const said = mentions > 0 ? `, ${badge(count)} unread, ${mentions} mentioning you` : `, ${badge(count)} unread`;
      a.setAttribute("aria-label", count > 0 || mentions > 0 ? `${a.dataset.roomName}${said}` : a.dataset.roomName);
    }
    const name = view.roomId ? el.roomName.textContent : "Rooms";
    document.title = `${total > 0 ? `(${total}) ` : ""}${name} · Chatsite`;
    // ☰ on a phone says there is something to read in another room, as in the React app.
    const dot = document.getElementById("unread-elsewhere");
    if (dot) dot.hidden = elsewhere === 0;
  }

  function showRoomHeader(roomId, name) {
    el.roomName.textContent = name;
    el.input.placeholder = `Message ${name}`; // as the React app's; the keys are in #composer-hint
    el.roomIdLabel.textContent = `#${roomId}`;
    el.roomIdLabel.hidden = roomId.startsWith("dm-"); // a DM is named after its people, not its id
    for (const a of roomLinks()) {
      if (a.dataset.roomId === roomId) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
  }

  // The room list page, or a room's "not available" page: there is no room to join, so the
  // status tells of the socket alone (up is live).
  function nothingToJoin() {
    return !view.roomId || view.refused;
  }

  function currentStatus() {
    if (view.stopped) return;
    if (view.joined || (nothingToJoin() && connection.state === ConnectionState.LIVE)) {
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
    if (roomId === view.roomId && !el.room.hidden && !view.refused) {
      el.input.focus();
      return;
    }
    menu.close({ restoreFocus: false });
    hideNotice();
    files.clear(); // uploads are for the room they were made in
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
    hideGone();
    showRoomHeader(roomId, name);
    connection.joinRoom(roomId); // nothing when already joined in this tab
    const known = connection.rooms.get(roomId);
    view.room = known ? snapshot(known) : null;
    view.joined = Boolean(known?.joined) && connection.state === ConnectionState.LIVE;
    view.settings = view.room?.settings ?? null;
    if (!view.stopped) setComposerEnabled(true);
    setRoomState(view.settings);
    view.outbox = connection.outboxItems().filter((item) => item.roomId === roomId);
    unreadUi.opened(roomId);
    updateBadges();
    el.list.setAttribute("aria-busy", "true");
    render();
    el.list.setAttribute("aria-busy", "false");
    scrollToBottom();
    showUnseen(0);
    tickWhileWaiting();
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
  // Closed, it is inert (off screen, its links neither focusable nor read out); open, it is
  // modal: the top bar and the room behind it are inert. The width is chat.css's.
  const drawerLayout = window.matchMedia("(max-width: 48rem)");
  function syncDrawerInert() {
    const isDrawer = drawerLayout.matches;
    const open = app.classList.contains("drawer-open");
    el.sidebar.inert = isDrawer && !open;
    for (const behind of [document.querySelector(".topbar"), document.querySelector(".skip-link"), app.querySelector(".main-pane")]) {
      if (behind) behind.inert = isDrawer && open;
    }
  }
  drawerLayout.addEventListener("change", () => {
    if (!drawerLayout.matches) closeDrawer(); // a window grown past the phone layout has no drawer
    syncDrawerInert();
  });
  syncDrawerInert();

  function openDrawer(button) {
    app.classList.add("drawer-open");
    el.scrim.hidden = false;
    syncDrawerInert();
    for (const b of document.querySelectorAll(".sidebar-open")) b.setAttribute("aria-expanded", "true");
    (el.sidebar.querySelector('a[aria-current="page"]') ?? el.sidebar.querySelector("a"))?.focus();
    el.sidebar.dataset.opener = button?.id ?? "";
  }

  function closeDrawer() {
    if (!app.classList.contains("drawer-open")) return;
    app.classList.remove("drawer-open");
    el.scrim.hidden = true;
    syncDrawerInert();
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
      // Renamed (roomUpdated): the head says so, for a reader who is no member too (a
      // member's list says it as well: people-ui.js). A DM is named after its people.
      const name = room.settings?.name;
      if (name && !roomId.startsWith("dm-") && el.roomName.textContent !== name) showRoomHeader(roomId, name);
    }
    // A bulk load (a join, a page of history) would make a screen reader read out every
    // line; aria-busy holds the announcements back until the list is settled.
    el.list.setAttribute("aria-busy", first ? "true" : "false");
    render();
    el.list.setAttribute("aria-busy", "false");
    if (first) scrollToBottom();
  });

  connection.on("message", (message) => {
    if (message.roomId === view.roomId && String(message.userId) !== USER_ID && !nearBottom()) {
      showUnseen(view.unseen + 1); // the reader is further up: say so, do not move them
    }
    unreadUi.arrived(message); // the counts are core/unread.js's
  });

  connection.on("outbox", (items) => {
    if (!view.roomId) return;
    const before = view.outbox.length;
    view.outbox = items.filter((item) => item.roomId === view.roomId);
    render();
    if (view.outbox.length > before) scrollToBottom(); // you just wrote it: show it
    tickWhileWaiting();
  });

  connection.on("joined", ({ roomId }) => {
    if (roomId !== view.roomId || view.stopped) return;
    view.joined = true;
    hideOffline();
    setStatus("live", "Live");
    render();
  });

  connection.on("state", ({ state, retryInMs, ban }) => {
    if (view.stopped) return;
    if (state !== ConnectionState.LIVE) view.joined = false;
    if (state === ConnectionState.LIVE && nothingToJoin()) {
      hideOffline();
      setStatus("live", "Live");
    } else if (state === ConnectionState.OFFLINE) {
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
      stop("banned", bannedText(ban));
      el.input.placeholder = bannedText(ban); // where they would have typed: why they cannot
    }
  });

  connection.on("roomError", ({ roomId, code, message, reason }) => {
    if (roomId !== view.roomId) return;
    if (connection.rooms.has(roomId)) {
      showNotice(errorText(code, message), "error", code); // retryable: the client asks again
      return;
    }
    // The room refused us (private, unknown) or took us out: asking again would not help.
    view.refused = true;
    view.joined = false;
    setComposerEnabled(false);
    updateLoadOlder();
    showGone(roomGoneText({ code, reason, message }));
    currentStatus();
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

  for (const answer of ["moderated", "userBanned"]) {
    connection.on(answer, (frame) => showNotice(moderatedText(frame), "info"));
  }

  connection.on("error", (f) => {
    if (PEOPLE_ACTIONS.has(f.action)) return; // answered in its dialog (people-ui.js)
    const code = typeof f.code === "string" ? f.code : "error";
    const message = typeof f.message === "string" ? f.message : "";
    if (f.action === "reportMessage") {
      for (const li of el.list.querySelectorAll('li[data-report="sending"]')) delete li.dataset.report;
    }
    showNotice(errorText(code, message), "error", code);
  });

  // --- "N new messages ↓" and countdowns (issue 20) ---------------------------------------

  // While the reader is scrolled up, new messages below are counted, not scrolled to.
  function showUnseen(n) {
    view.unseen = n;
    el.newMessages.hidden = n === 0;
    el.newMessages.textContent = n === 1 ? "1 new message ↓" : `${n} new messages ↓`;
  }

  el.scroller.addEventListener("scroll", () => {
    if (view.unseen > 0 && nearBottom()) showUnseen(0);
  });
  el.newMessages.addEventListener("click", () => {
    scrollToBottom();
    showUnseen(0);
    const lines = el.list.querySelectorAll("li.msg");
    if (lines.length > 0) activate(lines[lines.length - 1]);
  });

  // A message waiting out a limit counts down ("Slow mode: you can post again in 23 s").
  let waitingTick = null;
  function tickWhileWaiting() {
    const waiting = view.outbox.some((item) => item.retrying && item.retryAt);
    if (waiting && waitingTick === null) waitingTick = setInterval(render, 1000);
    else if (!waiting && waitingTick !== null) {
      clearInterval(waitingTick);
      waitingTick = null;
    }
  }

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
    updateSendButton();
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
    const ready = files.attachments().length > 0;
    if ((!text.trim() && !ready) || !view.roomId) return;
    if (codePoints(text) > MAX_LENGTH) {
      updateCounter();
      return;
    }
    if (files.busy) {
      el.counter.textContent = "Files are still uploading: send when they are done.";
      return;
    }
    el.input.value = "";
    updateCounter();
    connection.send(view.roomId, text.trim() ? text : "", {
      replyTo: changesUi.takeReply(),
      attachments: files.takeDone(),
    });
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
  updateSendButton(); // nothing to send yet
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
      if (error?.code && roomId === view.roomId) showNotice(errorText(error.code, error.message), "error", error.code);
    }
    view.historyInFlight = false;
    updateLoadOlder();
  });
  el.reconnectNow.addEventListener("click", () => connection.reconnectNow());
  el.noticeDismiss.addEventListener("click", () => {
    hideNotice();
    el.input.focus();
  });

  // People and rooms (people-ui.js): the sidebar's sections kept live, and the dialogs.
  setupPeople({
    connection,
    openRoom: (roomId, name) => openRoom(roomId, name),
    currentRoomId: () => view.roomId,
    renameOpenRoom: (roomId, name) => {
      if (roomId !== view.roomId || el.roomName.textContent === name) return;
      showRoomHeader(roomId, name);
    },
    listChanged: () => updateBadges(),
  });

  // Search (issue 19): a result opens its room here and shows its message in context.
  setupSearch({
    connection,
    openRoom,
    revealMessage,
  });

  // A message shown in context (a search result, a clicked notification): scrolled to the
  // middle, marked for a moment and focused; false while its line is not in the open room.
  function revealMessage(roomId, seq) {
    const li = roomId === view.roomId ? el.list.querySelector(`li[data-seq="${Number(seq)}"]`) : null;
    if (!li) return false;
    li.scrollIntoView({ block: "center" });
    li.classList.add("found");
    setTimeout(() => li.classList.remove("found"), 4000);
    activate(li);
    return true;
  }

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
