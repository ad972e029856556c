/*
 * Chatsite room page: the DOM side of one room. Loaded as an ES module; everything that
 * speaks the protocol (the socket, heartbeat, backoff, resume, the room's state, the
 * outbox and its copy in this browser) is the shared client in ./core/, the same module
 * the React app at /app/ imports. This file only renders what the client hands over.
 *
 * - Text only. Every piece of user data reaches the DOM through textContent or a data
 *   attribute, never as markup: no markup from a user ever runs.
 * - Nothing shows twice. Stored messages are keyed by messageId and placed by seq; your
 *   own unsent messages by their clientMessageId, so the ack, the broadcast copy and any
 *   replay after a reconnect all land on the same line.
 * - Nothing typed is lost: unacknowledged messages stay in the outbox (and in this
 *   browser, across a reload) and go out again with the same clientMessageId.
 */
import { ChatConnection, ConnectionState, localOutboxStore, watchBrowser } from "./core/client.js";

const root = document.getElementById("room");

if (root) start(root);

function start(root) {
  const ROOM_ID = root.dataset.roomId;
  const USER_ID = root.dataset.userId;
  const USERNAME = root.dataset.username || "";
  const WS_PATH = root.dataset.wsPath || "/ws/";
  const LOGIN_URL = root.dataset.loginUrl || "/accounts/login/";
  const MAX_LENGTH = parseInt(root.dataset.maxLength, 10) || 4000;
  const HISTORY_PAGE = 50;
  const NEAR_BOTTOM_PX = 80;

  const el = {
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

  const view = {
    room: null, // the client's latest snapshot of this room
    outbox: [], // this room's unsent messages
    joined: false, // the room is joined on the current socket
    everJoined: false,
    stopped: false, // banned, signed out or no longer a member: never reconnect
    historyInFlight: false,
    settings: undefined,
    lines: new Map(), // messageId -> <li> of a stored message
    pending: new Map(), // clientMessageId -> <li> of an unsent message
    countdown: null,
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

  function showNotice(text) {
    el.noticeText.textContent = text;
    el.notice.hidden = false;
  }

  function hideNotice() {
    el.notice.hidden = true;
    el.noticeText.textContent = "";
  }

  function disableComposer() {
    el.input.disabled = true;
    el.form.querySelector("button[type=submit]").disabled = true;
  }

  function stop(kind, text) {
    view.stopped = true;
    view.joined = false;
    hideOffline();
    setStatus(kind, text);
    disableComposer();
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

  function buildLine({ username, text, date, mine }) {
    const li = document.createElement("li");
    li.className = mine ? "msg mine" : "msg";

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
    body.textContent = text;

    li.append(meta, body);
    setTime(li, date);
    return li;
  }

  // Your own line: "Sending…", "Retrying (code)…", "Not sent (code): …" with Retry and Discard, or "Sent".
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
    li.append(box);
    return box;
  }

  function setDelivery(li, kind, text) {
    const box = ownDelivery(li);
    li.dataset.state = kind;
    const label = box.querySelector(".delivery-label");
    if (label.textContent !== text) label.textContent = text;
    const failed = kind === "failed";
    const focused = li.contains(document.activeElement);
    box.querySelector(".retry").hidden = !failed;
    box.querySelector(".discard").hidden = !failed;
    if (focused && !li.contains(document.activeElement)) el.input.focus();
  }

  function deliveryOf(item) {
    if (item.status === "failed") return ["failed", `Not sent (${item.code || "error"}): ${item.error || ""}`];
    if (item.status === "sent") return ["sent", "Sent"];
    if (item.retrying) return ["pending", `Retrying (${item.retrying})…`];
    return ["pending", view.joined ? "Sending…" : "Waiting for connection…"];
  }

  function addReportButton(li) {
    if (li.querySelector(".report")) return;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "report link-button";
    button.textContent = "Report";
    button.setAttribute("aria-label", "Report this message to the moderators");
    button.addEventListener("click", () => {
      const messageId = li.dataset.messageId;
      if (!messageId || li.dataset.removed === "true") return;
      const reason = window.prompt("Why should the moderators look at this message?", "");
      if (reason === null || !reason.trim()) return;
      if (connection.reportMessage(ROOM_ID, messageId, reason.trim())) {
        button.disabled = true;
        button.textContent = "Reporting…";
      }
    });
    li.querySelector(".meta").append(button);
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
      li = buildLine({ username: String(m.username), text: m.message, date: parseTimestamp(m.timestamp), mine });
    }
    view.lines.set(m.messageId, li);
    li.dataset.messageId = m.messageId;
    li.dataset.seq = String(m.seq);
    setTime(li, parseTimestamp(m.timestamp));
    const text = li.querySelector(".text");
    if (m.removed) {
      li.classList.add("removed");
      li.dataset.removed = "true";
      const note = m.removedBy === "author" ? "Message deleted" : "Message removed by a moderator";
      if (text.textContent !== note) text.textContent = note;
      li.querySelector(".report")?.remove();
      markEdited(li, false);
    } else {
      if (text.textContent !== m.message) text.textContent = m.message;
      markEdited(li, Boolean(m.editedAt));
      if (!mine) addReportButton(li);
    }
    if (mine) setDelivery(li, "sent", "Sent");
    return li;
  }

  function markEdited(li, edited) {
    li.classList.toggle("edited", edited);
    const mark = li.querySelector(".edited-mark");
    if (edited && !mark) {
      const span = document.createElement("span");
      span.className = "edited-mark";
      span.textContent = "(edited)";
      li.querySelector("time").after(document.createTextNode(" "), span);
    } else if (!edited && mark) {
      mark.remove();
    }
  }

  function pendingLine(item) {
    let li = view.pending.get(item.clientMessageId);
    if (!li) {
      li = buildLine({ username: USERNAME || "you", text: item.text, date: parseTimestamp(item.createdAt), mine: true });
      li.dataset.cmid = item.clientMessageId;
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

  function updateLoadOlder() {
    const hide = !view.room || !view.room.hasMore || view.room.messages.length === 0;
    if (hide && document.activeElement === el.loadOlder) el.list.focus();
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
    if (view.stopped) return;
    const archived = settings.archived === true;
    el.input.disabled = archived;
    el.form.querySelector("button[type=submit]").disabled = archived;
  }

  // --- What the client says ------------------------------------------------------------

  connection.on("room", ({ roomId, room }) => {
    if (roomId !== ROOM_ID) return;
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

  connection.on("outbox", (items) => {
    const before = view.outbox.length;
    view.outbox = items.filter((item) => item.roomId === ROOM_ID);
    render();
    if (view.outbox.length > before) scrollToBottom(); // you just wrote it: show it
  });

  connection.on("joined", ({ roomId }) => {
    if (roomId !== ROOM_ID || view.stopped) return;
    view.joined = true;
    view.everJoined = true;
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
    if (roomId !== ROOM_ID) return;
    if (connection.rooms.has(ROOM_ID)) {
      showNotice(`${code}: ${message}`); // retryable: the client asks again
      return;
    }
    // The room refused us (private, unknown) or took us out: asking again would not help.
    stop("stopped", "Not a member");
    // A private room answers a non-member unknown_room, as if it did not exist (docs/auth.md).
    const hidden = code === "forbidden" || code === "unknown_room";
    showNotice(hidden ? "This room does not exist, or is private: members only." : `${code}: ${message}`);
    connection.close();
  });

  connection.on("reported", ({ roomId, messageId }) => {
    if (roomId !== ROOM_ID) return;
    const button = view.lines.get(messageId)?.querySelector(".report");
    if (button) {
      button.disabled = true;
      button.textContent = "Reported";
    }
    showNotice("Thank you: the moderators will look at this message.");
  });

  connection.on("error", (f) => {
    const code = typeof f.code === "string" ? f.code : "error";
    const message = typeof f.message === "string" ? f.message : "";
    if (f.action === "reportMessage") {
      for (const button of el.list.querySelectorAll(".report:disabled")) {
        if (button.textContent === "Reporting…") {
          button.disabled = false;
          button.textContent = "Report";
        }
      }
    }
    showNotice(`${code}: ${message}`);
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
    if (!text.trim()) return;
    if (codePoints(text) > MAX_LENGTH) {
      updateCounter();
      return;
    }
    el.input.value = "";
    updateCounter();
    connection.send(ROOM_ID, text);
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
    const lowest = view.room?.messages[0]?.seq;
    if (view.historyInFlight || !view.joined || lowest === undefined) return;
    view.historyInFlight = true;
    updateLoadOlder();
    const fromBottom = el.scroller.scrollHeight - el.scroller.scrollTop;
    try {
      await connection.history(ROOM_ID, lowest, HISTORY_PAGE); // the page arrives as a room event
      // Keep the lines the reader was looking at in place.
      el.scroller.scrollTop = el.scroller.scrollHeight - fromBottom;
    } catch (error) {
      if (error?.code) showNotice(`${error.code}: ${error.message}`);
    }
    view.historyInFlight = false;
    updateLoadOlder();
  });
  el.reconnectNow.addEventListener("click", () => connection.reconnectNow());
  el.noticeDismiss.addEventListener("click", () => {
    hideNotice();
    el.input.focus();
  });

  watchBrowser(connection, window);
  connection.joinRoom(ROOM_ID);
  view.outbox = connection.outboxItems().filter((item) => item.roomId === ROOM_ID);
  render(); // messages a previous page could not send show at once, waiting
  connection.connect();
}
