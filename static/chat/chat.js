/*
 * Chatsite room page: one WebSocket per tab, wire protocol v1 (docs/protocol.md).
 *
 * - Text only. Every piece of user data reaches the DOM through textContent or a data
 *   attribute, never innerHTML: no markup from a user ever runs.
 * - Nothing shows twice. Server messages are keyed by seq (and messageId); your own
 *   messages by the clientMessageId this tab chose, so the ack, the broadcast copy and any
 *   replay after a reconnect all land on the same line.
 * - Nothing typed is lost while the socket is down. The outbox keeps every unacknowledged
 *   message and resends it with the same clientMessageId once the room is joined again;
 *   the server stores a retried id only once.
 * - A reconnect resumes from the highest contiguous seq shown (joinRoom lastSeq). When the
 *   server cannot replay that far (recovered: false) the room is reloaded instead of
 *   showing a hole.
 */
(function () {
  "use strict";

  const root = document.getElementById("room");
  if (!root) return;

  const ROOM_ID = root.dataset.roomId;
  const USER_ID = root.dataset.userId;
  const WS_PATH = root.dataset.wsPath || "/ws/";
  const LOGIN_URL = root.dataset.loginUrl || "/accounts/login/";
  const MAX_LENGTH = parseInt(root.dataset.maxLength, 10) || 4000;

  // Close codes the server sends (chat/protocol.py CloseCode).
  const CLOSE_UNAUTHORIZED = 4401;
  const CLOSE_FORBIDDEN = 4403;
  const CLOSE_TOO_MANY_REQUESTS = 4429;

  // A heartbeat every 25 s keeps the socket below the 60 s idle timeout of an AWS ALB
  // (API Gateway allows 10 minutes); no answer within 10 s means the socket is dead even
  // if the browser has not noticed yet (a laptop waking up, a dropped Wi-Fi).
  const HEARTBEAT_MS = 25000;
  const PONG_TIMEOUT_MS = 10000;
  // An acknowledgement slower than this marks the message failed (a late ack still wins),
  // probes the socket, and sends the message again on the next connection.
  const ACK_TIMEOUT_MS = 15000;
  // Errors the server marks retryable (storage_unavailable, rate_limited, ...) are retried
  // this many times, after the server's retryAfter, before the message shows failed.
  const MAX_AUTO_RETRIES = 3;
  // Full-jitter exponential backoff: a random delay in [0, min(cap, base * 2^attempt)),
  // so a restarted server is not hit by every client at the same instant.
  const BACKOFF_BASE_MS = 500;
  const BACKOFF_CAP_MS = 30000;
  const RATE_LIMITED_MIN_DELAY_MS = 5000;
  const HISTORY_PAGE = 50;
  const NEAR_BOTTOM_PX = 80;

  const el = {
    status: document.getElementById("status"),
    statusText: document.getElementById("status-text"),
    statusDetail: document.getElementById("status-detail"),
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

  const state = {
    ws: null,
    live: false, // joined and in sync: sends go out at once
    stopped: false, // signed out or banned: never reconnect
    lastSeq: null, // highest contiguous seq shown; null before the first joined
    bySeq: new Map(), // seq -> <li>
    byMessageId: new Map(), // messageId -> <li>
    outbox: new Map(), // clientMessageId -> entry, in the order typed
    joinInFlight: false,
    historyInFlight: false,
    noOlder: false,
    attempt: 0,
    reconnectTimer: null,
    countdownTimer: null,
    heartbeatTimer: null,
    pongTimer: null,
  };

  // --- Small helpers ------------------------------------------------------------------

  function isSeq(value) {
    return Number.isInteger(value) && value > 0;
  }

  function codePoints(text) {
    // The server counts code points (Python's len), not UTF-16 units.
    return Array.from(text).length;
  }

  function newClientMessageId() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    // randomUUID needs a secure context; plain http on a LAN address still has getRandomValues.
    const bytes = window.crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
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
    const date = typeof value === "string" ? new Date(value) : new Date(NaN);
    return Number.isNaN(date.getTime()) ? new Date() : date;
  }

  function send(frame) {
    const ws = state.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  // --- Status and notices -------------------------------------------------------------

  function setStatus(kind, text, detail) {
    el.status.dataset.state = kind;
    if (el.statusText.textContent !== text) el.statusText.textContent = text;
    el.statusDetail.textContent = detail || "";
    el.reconnectNow.hidden = kind !== "offline";
  }

  function showNotice(text) {
    el.noticeText.textContent = text;
    el.notice.hidden = false;
  }

  function hideNotice() {
    el.notice.hidden = true;
    el.noticeText.textContent = "";
  }

  // --- Rendering ----------------------------------------------------------------------

  function nearBottom() {
    const s = el.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < NEAR_BOTTOM_PX;
  }

  function scrollToBottom() {
    el.scroller.scrollTop = el.scroller.scrollHeight;
  }

  // Bulk loads (a join, a page of history) would make a screen reader read out every
  // line; aria-busy holds the announcements back until the list is settled.
  function bulk(fn) {
    el.list.setAttribute("aria-busy", "true");
    try {
      fn();
    } finally {
      refreshDays();
      el.list.setAttribute("aria-busy", "false");
    }
  }

  function setTime(li, date) {
    const time = li.querySelector("time");
    time.dateTime = date.toISOString();
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

  function buildOwnState(entry) {
    const box = document.createElement("div");
    box.className = "delivery";
    const label = document.createElement("span");
    label.className = "delivery-label";
    const retry = document.createElement("button");
    retry.type = "button";
    retry.className = "retry";
    retry.textContent = "Retry";
    retry.hidden = true;
    retry.addEventListener("click", () => retryEntry(entry));
    const discard = document.createElement("button");
    discard.type = "button";
    discard.className = "discard link-button";
    discard.textContent = "Discard";
    discard.hidden = true;
    discard.addEventListener("click", () => discardEntry(entry));
    box.append(label, retry, discard);
    return box;
  }

  // Where a line with this seq belongs: after the shown line with the largest lower seq.
  // Lines still waiting for a seq (your unsent messages) always stay below every seq.
  function place(li, seq) {
    li.dataset.seq = String(seq);
    const shown = el.list.querySelectorAll("li.msg[data-seq]");
    for (let i = shown.length - 1; i >= 0; i -= 1) {
      const other = shown[i];
      if (other !== li && Number(other.dataset.seq) < seq) {
        if (other.nextElementSibling !== li) other.after(li);
        return;
      }
    }
    if (el.list.firstElementChild !== li) el.list.prepend(li);
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

  function validMessage(m) {
    return (
      m !== null &&
      typeof m === "object" &&
      m.roomId === ROOM_ID &&
      isSeq(m.seq) &&
      typeof m.messageId === "string" &&
      typeof m.message === "string"
    );
  }

  // Show one stored message. Returns true when it added a line, false for a duplicate.
  function renderMessage(m) {
    if (!validMessage(m)) return false;
    const known = state.bySeq.get(m.seq) || state.byMessageId.get(m.messageId);
    if (known) {
      // The broadcast copy of a line an ack already placed: take the server's time.
      setTime(known, parseTimestamp(m.timestamp));
      known.dataset.messageId = m.messageId;
      state.byMessageId.set(m.messageId, known);
      if (m.removed === true) markRemoved(known);
      return false;
    }
    const mine = String(m.userId) === USER_ID;
    const entry = mine && typeof m.clientMessageId === "string" ? state.outbox.get(m.clientMessageId) : undefined;
    let li;
    if (entry) {
      li = entry.li;
      settle(entry);
      setTime(li, parseTimestamp(m.timestamp));
    } else {
      li = buildLine({
        username: String(m.username),
        text: m.message,
        date: parseTimestamp(m.timestamp),
        mine,
      });
    }
    li.dataset.messageId = m.messageId;
    place(li, m.seq);
    state.bySeq.set(m.seq, li);
    state.byMessageId.set(m.messageId, li);
    if (m.removed === true) markRemoved(li);
    else if (!mine) addReportButton(li);
    return true;
  }

  // --- Moderation (docs/moderation.md) ------------------------------------------------

  // A message a moderator removed: the line stays (seqs have no holes), its text goes.
  function markRemoved(li) {
    li.classList.add("removed");
    li.dataset.removed = "true";
    li.querySelector(".text").textContent = "Message removed by a moderator";
    const report = li.querySelector(".report");
    if (report) report.remove();
  }

  function removeMessage(messageId, seq) {
    const li = (typeof messageId === "string" && state.byMessageId.get(messageId)) || state.bySeq.get(seq);
    if (li) markRemoved(li);
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
      if (send({ action: "reportMessage", roomId: ROOM_ID, messageId, reason: reason.trim().slice(0, 500) })) {
        button.disabled = true;
        button.textContent = "Reporting…";
      }
    });
    li.querySelector(".meta").append(button);
  }

  function onReported(f) {
    const li = state.byMessageId.get(f.messageId);
    const button = li && li.querySelector(".report");
    if (button) {
      button.disabled = true;
      button.textContent = "Reported";
    }
    showNotice("Thank you: the moderators will look at this message.");
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
    const archived = settings.archived === true;
    el.input.disabled = archived;
    el.form.querySelector("button[type=submit]").disabled = archived;
  }

  // The server took this page's socket out of the room: no longer a member of a private
  // room. Rejoining would be refused, so stop instead of retrying.
  function onLeft(f) {
    if (f.roomId !== ROOM_ID || typeof f.reason !== "string") return;
    stopForAccess("You are no longer a member of this private room.");
  }

  function stopForAccess(text) {
    state.stopped = true;
    state.live = false;
    setStatus("stopped", "Not a member");
    showNotice(text);
    el.input.disabled = true;
    el.form.querySelector("button[type=submit]").disabled = true;
    const ws = state.ws;
    state.ws = null;
    stopHeartbeat();
    if (ws) ws.close();
  }

  function advanceLastSeq() {
    if (state.lastSeq === null) return;
    while (state.bySeq.has(state.lastSeq + 1)) state.lastSeq += 1;
  }

  function lowestSeq() {
    const first = el.list.querySelector("li.msg[data-seq]");
    return first ? Number(first.dataset.seq) : null;
  }

  function updateLoadOlder() {
    const lowest = lowestSeq();
    const hide = state.noOlder || lowest === null || lowest <= 1;
    if (hide && document.activeElement === el.loadOlder) el.list.focus();
    el.loadOlder.hidden = hide;
    el.loadOlder.disabled = state.historyInFlight || !state.live;
    el.loadOlder.textContent = state.historyInFlight ? "Loading…" : "Load older messages";
  }

  // Forget every stored line (the server could not replay our gap); keep your own
  // messages that are not stored yet, they are still on their way.
  function clearShown() {
    for (const node of Array.from(el.list.querySelectorAll("li.msg[data-seq], li.day"))) node.remove();
    state.bySeq.clear();
    state.byMessageId.clear();
    state.noOlder = false;
  }

  // --- Your own messages --------------------------------------------------------------

  function setDelivery(entry, kind, text) {
    entry.state = kind;
    const li = entry.li;
    li.dataset.state = kind;
    li.querySelector(".delivery-label").textContent = text;
    const failed = kind === "failed";
    li.querySelector(".retry").hidden = !failed;
    li.querySelector(".discard").hidden = !failed;
  }

  function settle(entry) {
    clearTimeout(entry.timer);
    entry.inFlight = false;
    state.outbox.delete(entry.cmid);
    const focused = entry.li.contains(document.activeElement);
    setDelivery(entry, "sent", "Sent");
    if (focused) el.input.focus();
  }

  function fail(entry, code, message) {
    clearTimeout(entry.timer);
    entry.inFlight = false;
    entry.resend = false;
    setDelivery(entry, "failed", `Not sent (${code}): ${message}`);
  }

  function waitForConnection(entry) {
    clearTimeout(entry.timer);
    entry.inFlight = false;
    entry.resend = false;
    setDelivery(entry, "pending", "Waiting for connection…");
  }

  function transmit(entry) {
    clearTimeout(entry.timer);
    entry.resend = false;
    const sent = send({ action: "sendMessage", roomId: ROOM_ID, message: entry.text, clientMessageId: entry.cmid });
    if (!sent) {
      waitForConnection(entry);
      return;
    }
    entry.inFlight = true;
    setDelivery(entry, "pending", "Sending…");
    entry.timer = setTimeout(() => {
      if (state.outbox.get(entry.cmid) !== entry || !entry.inFlight) return;
      // A server always answers a send, so silence usually means a socket that died
      // without the browser noticing: say so, check the socket now rather than at the
      // next heartbeat, and send again on the next connection.
      fail(entry, "timeout", "no answer from the server yet");
      entry.resend = true;
      probe();
    }, ACK_TIMEOUT_MS);
  }

  function flushOutbox() {
    for (const entry of state.outbox.values()) {
      if (entry.state === "pending" || entry.resend) transmit(entry);
    }
  }

  function retryLater(entry, code, retryAfter) {
    entry.retries += 1;
    const delay = retryAfter > 0 ? retryAfter * 1000 : BACKOFF_BASE_MS * 2 ** entry.retries;
    clearTimeout(entry.timer);
    entry.inFlight = false;
    setDelivery(entry, "pending", `Retrying (${code})…`);
    entry.timer = setTimeout(() => {
      if (state.outbox.get(entry.cmid) !== entry || entry.state !== "pending" || entry.inFlight) return;
      if (state.live) transmit(entry);
      else waitForConnection(entry);
    }, Math.min(delay, BACKOFF_CAP_MS));
  }

  function retryEntry(entry) {
    if (state.outbox.get(entry.cmid) !== entry) return;
    entry.retries = 0;
    el.input.focus();
    // The same clientMessageId: if the first attempt was stored after all, the server
    // answers with the original ack and stores nothing new.
    if (state.live) transmit(entry);
    else waitForConnection(entry);
  }

  function discardEntry(entry) {
    clearTimeout(entry.timer);
    state.outbox.delete(entry.cmid);
    entry.li.remove();
    refreshDays();
    el.input.focus();
  }

  function compose(text) {
    const cmid = newClientMessageId();
    const li = buildLine({ username: root.dataset.username || "you", text, date: new Date(), mine: true });
    li.dataset.cmid = cmid;
    const entry = { cmid, text, li, state: "pending", inFlight: false, resend: false, retries: 0, timer: null };
    li.append(buildOwnState(entry));
    state.outbox.set(cmid, entry);
    el.list.append(li);
    refreshDays();
    scrollToBottom();
    if (state.live) transmit(entry);
    else waitForConnection(entry);
  }

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
    compose(text);
  }

  // --- Frames from the server ---------------------------------------------------------

  function onJoined(f) {
    if (f.roomId !== ROOM_ID) return;
    state.joinInFlight = false;
    const fresh = state.lastSeq === null || f.recovered !== true;
    const stick = fresh || nearBottom();
    bulk(() => {
      if (fresh) clearShown();
      for (const m of Array.isArray(f.messages) ? f.messages : []) renderMessage(m);
    });
    setRoomState(f.room);
    for (const r of Array.isArray(f.removed) ? f.removed : []) removeMessage(r.messageId, r.seq);
    const roomLast = Number.isInteger(f.lastSeq) ? f.lastSeq : 0;
    state.lastSeq = fresh ? roomLast : Math.max(state.lastSeq, roomLast);
    advanceLastSeq();
    state.live = true;
    state.attempt = 0;
    setStatus("live", "Live");
    updateLoadOlder();
    if (stick) scrollToBottom();
    flushOutbox();
  }

  function onMessage(m) {
    const stick = nearBottom();
    const added = renderMessage(m);
    if (!added) return;
    refreshDays();
    advanceLastSeq();
    if (state.lastSeq !== null && state.lastSeq < m.seq && !state.joinInFlight) {
      // A hole below this message: ask for everything after the last contiguous seq.
      join();
    }
    updateLoadOlder();
    if (stick || (String(m.userId) === USER_ID)) scrollToBottom();
  }

  function onAck(f) {
    const entry = typeof f.clientMessageId === "string" ? state.outbox.get(f.clientMessageId) : undefined;
    if (!entry || f.roomId !== ROOM_ID || !isSeq(f.seq)) return;
    const known = state.bySeq.get(f.seq);
    if (known && known !== entry.li) {
      // Already shown from another copy (a replay): drop the local twin.
      settle(entry);
      entry.li.remove();
      refreshDays();
      return;
    }
    settle(entry);
    place(entry.li, f.seq);
    if (typeof f.messageId === "string") {
      entry.li.dataset.messageId = f.messageId;
      state.byMessageId.set(f.messageId, entry.li);
    }
    state.bySeq.set(f.seq, entry.li);
    refreshDays();
    advanceLastSeq();
    updateLoadOlder();
  }

  function onHistory(f) {
    if (f.roomId !== ROOM_ID) return;
    state.historyInFlight = false;
    const fromBottom = el.scroller.scrollHeight - el.scroller.scrollTop;
    bulk(() => {
      for (const m of Array.isArray(f.messages) ? f.messages : []) renderMessage(m);
    });
    // Keep the lines the reader was looking at in place.
    el.scroller.scrollTop = el.scroller.scrollHeight - fromBottom;
    if (f.hasMore !== true) state.noOlder = true;
    updateLoadOlder();
  }

  function onError(f) {
    const code = typeof f.code === "string" ? f.code : "error";
    const message = typeof f.message === "string" ? f.message : "";
    const entry = typeof f.clientMessageId === "string" ? state.outbox.get(f.clientMessageId) : undefined;
    if (entry) {
      if (f.retryable === true && entry.retries < MAX_AUTO_RETRIES) {
        retryLater(entry, code, typeof f.retryAfter === "number" ? f.retryAfter : 0);
      } else {
        fail(entry, code, message);
      }
      return;
    }
    if (f.action === "history") {
      state.historyInFlight = false;
      updateLoadOlder();
    }
    if (f.action === "reportMessage") {
      for (const button of el.list.querySelectorAll(".report:disabled")) {
        if (button.textContent === "Reporting…") {
          button.disabled = false;
          button.textContent = "Report";
        }
      }
    }
    showNotice(`${code}: ${message}`);
    // A private room answers a non-member unknown_room, as if it did not exist (docs/auth.md).
    if (f.action === "joinRoom" && (code === "forbidden" || code === "unknown_room")) {
      stopForAccess("This room does not exist, or is private: members only.");
      return;
    }
    if (f.action === "joinRoom") {
      // Not joined, so not live: start over with backoff rather than sit deaf.
      state.joinInFlight = false;
      abandon();
    }
  }

  function onFrame(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch (_) {
      return;
    }
    if (frame === null || typeof frame !== "object") return;
    alive(); // any frame shows the socket is alive
    switch (frame.type) {
      case "message":
        onMessage(frame);
        break;
      case "ack":
        onAck(frame);
        break;
      case "joined":
        onJoined(frame);
        break;
      case "history":
        onHistory(frame);
        break;
      case "error":
        onError(frame);
        break;
      case "messageRemoved":
        if (frame.roomId === ROOM_ID) removeMessage(frame.messageId, frame.seq);
        break;
      case "roomUpdated":
        if (frame.roomId === ROOM_ID) setRoomState(frame.room);
        break;
      case "reported":
        if (frame.roomId === ROOM_ID) onReported(frame);
        break;
      case "left":
        onLeft(frame);
        break;
      case "pong":
      default:
        break;
    }
  }

  // --- The connection -----------------------------------------------------------------

  function join() {
    const frame = { action: "joinRoom", roomId: ROOM_ID };
    if (state.lastSeq !== null) frame.lastSeq = state.lastSeq;
    if (send(frame)) state.joinInFlight = true;
  }

  // Ask the server for a pong; any frame before the deadline proves the socket alive. One
  // probe at a time: a second one must not push the first one's deadline out.
  function probe() {
    if (state.pongTimer !== null) return;
    if (!send({ action: "ping" })) return;
    state.pongTimer = setTimeout(abandon, PONG_TIMEOUT_MS);
  }

  function alive() {
    clearTimeout(state.pongTimer);
    state.pongTimer = null;
  }

  function startHeartbeat() {
    stopHeartbeat();
    state.heartbeatTimer = setInterval(probe, HEARTBEAT_MS);
  }

  function stopHeartbeat() {
    clearInterval(state.heartbeatTimer);
    alive();
  }

  function clearReconnect() {
    clearTimeout(state.reconnectTimer);
    clearInterval(state.countdownTimer);
    state.reconnectTimer = null;
  }

  function connect() {
    clearReconnect();
    if (state.stopped || state.ws) return;
    setStatus("connecting", "Connecting…");
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    let ws;
    try {
      ws = new WebSocket(`${scheme}//${window.location.host}${WS_PATH}`);
    } catch (_) {
      scheduleReconnect(0);
      return;
    }
    state.ws = ws;
    ws.addEventListener("open", () => {
      if (state.ws !== ws) return;
      join();
      startHeartbeat();
    });
    ws.addEventListener("message", (event) => {
      if (state.ws === ws && typeof event.data === "string") onFrame(event.data);
    });
    // "error" is always followed by "close".
    ws.addEventListener("close", (event) => {
      if (state.ws === ws) lost(event.code);
    });
  }

  // The socket is gone (closed by either side, or abandoned as dead).
  function lost(code) {
    state.ws = null;
    state.live = false;
    state.joinInFlight = false;
    state.historyInFlight = false;
    stopHeartbeat();
    for (const entry of state.outbox.values()) {
      if (entry.state === "pending" || entry.resend) waitForConnection(entry);
    }
    updateLoadOlder();
    if (code === CLOSE_UNAUTHORIZED) {
      state.stopped = true;
      setStatus("stopped", "Signed out: taking you to the sign-in page…");
      const next = window.location.pathname + window.location.search;
      window.location.assign(`${LOGIN_URL}?next=${encodeURIComponent(next)}`);
      return;
    }
    if (code === CLOSE_FORBIDDEN) {
      state.stopped = true;
      setStatus("banned", "Banned: you can no longer take part in this chat.");
      el.input.disabled = true;
      el.form.querySelector("button[type=submit]").disabled = true;
      return;
    }
    scheduleReconnect(code === CLOSE_TOO_MANY_REQUESTS ? RATE_LIMITED_MIN_DELAY_MS : 0);
  }

  // Stop using the current socket now, without waiting for a close handshake that a dead
  // network may never complete.
  function abandon() {
    const ws = state.ws;
    if (!ws) return;
    state.ws = null;
    try {
      ws.close();
    } catch (_) {
      /* already closing */
    }
    lost(1006);
  }

  function scheduleReconnect(minimumMs) {
    clearReconnect();
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** state.attempt);
    const delay = Math.max(minimumMs, Math.random() * ceiling);
    state.attempt = Math.min(state.attempt + 1, 16);
    const at = Date.now() + delay;
    const tick = () => {
      const seconds = Math.max(0, Math.ceil((at - Date.now()) / 1000));
      setStatus("offline", "Offline", seconds > 0 ? `reconnecting in ${seconds} s` : "reconnecting…");
    };
    tick();
    state.countdownTimer = setInterval(tick, 1000);
    state.reconnectTimer = setTimeout(connect, delay);
  }

  // --- Wiring -------------------------------------------------------------------------

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
  el.loadOlder.addEventListener("click", () => {
    const lowest = lowestSeq();
    if (state.historyInFlight || !state.live || lowest === null) return;
    if (send({ action: "history", roomId: ROOM_ID, beforeSeq: lowest, limit: HISTORY_PAGE })) {
      state.historyInFlight = true;
      updateLoadOlder();
    }
  });
  el.reconnectNow.addEventListener("click", () => {
    if (!state.ws && !state.stopped) connect();
  });
  el.noticeDismiss.addEventListener("click", () => {
    hideNotice();
    el.input.focus();
  });
  window.addEventListener("online", () => {
    if (!state.ws && !state.stopped) connect();
  });

  connect();
})();
