/**
 * unread.js: read state for both UIs, on top of the protocol client (client.js).
 *
 * - `counts` per room ({lastReadSeq, unread, mentions}) from the server: every room's at
 *   each (re)connect (`readStates`), then each `readState` frame, which the server sends to
 *   every socket of the user (other tabs, devices, processes) and for a new mention;
 * - `markRead(roomId, seq)`: coalesced, at most one frame per room per second, only ever
 *   forward; `markSeen` calls it for what is actually seen (`seenUpTo`: on screen; the tab
 *   visible and focused), the one rule of both UIs;
 * - a message of someone else in a room counts at once, before the server's next word;
 * - read receipts of small rooms (`receipts`, `readReceipt`), and the mentions list.
 *
 * No DOM: the UIs render from the `change` callback. Counts of 100 read "99+" (`badge`).
 */

export const MARK_READ_INTERVAL_MS = 1000;
export const COUNT_WINDOW = 100;

/** How a count reads in a badge: "" for none, "99+" from the window's size. */
export function badge(count) {
  if (!Number.isFinite(count) || count <= 0) return '';
  return count >= COUNT_WINDOW ? '99+' : String(count);
}

/** The seq of the first message after `lastReadSeq` written by someone else (the divider). */
export function firstUnreadSeq(messages, lastReadSeq, userId) {
  if (!Number.isInteger(lastReadSeq)) return null;
  const m = messages.find((x) => x.seq > lastReadSeq && String(x.userId) !== String(userId) && !x.removed);
  return m ? m.seq : null;
}

/** Whether a message mentions `userId` (ids the server resolved; never parsed here). */
export function mentionsUser(message, userId) {
  return Array.isArray(message?.mentions) && message.mentions.map(String).includes(String(userId));
}

/** Whether the page is seen now: the tab visible and focused (read is marked only then). */
export function pageSeen(doc = globalThis.document) {
  return Boolean(doc) && doc.visibilityState === 'visible' && doc.hasFocus();
}

/**
 * The highest seq the reader has on screen, or null: the room's last (`lastSeq`, or the last
 * message's) when the view is at its bottom, else the lowest message whose line ends inside
 * the view. `bottomOf(message)`: the bottom edge of its line (px, null when not drawn);
 * `viewBottom`: the bottom edge of the scrolled view. What arrived below, out of view, stays
 * unread until it is scrolled to.
 */
export function seenUpTo(messages, { atBottom, lastSeq = 0, viewBottom, bottomOf }) {
  if (!Array.isArray(messages) || messages.length === 0) return null;
  if (atBottom) return Math.max(lastSeq ?? 0, messages[messages.length - 1].seq);
  for (let i = messages.length - 1; i >= 0; i -= 1) {
    const bottom = bottomOf(messages[i]);
    if (bottom !== null && bottom !== undefined && bottom <= viewBottom + 1) return messages[i].seq;
  }
  return null;
}

export class ReadState {
  constructor(connection, { userId, now = () => Date.now(), timers = globalThis } = {}) {
    this.connection = connection;
    this.userId = userId == null ? null : String(userId);
    this.now = now;
    this.timers = timers;
    this.counts = new Map(); // roomId -> {lastReadSeq, unread, mentions}
    this.receipts = new Map(); // roomId -> Map(userId -> {username, lastReadSeq})
    this.mentionList = [];
    this.listeners = new Set();
    this.sentAt = new Map(); // roomId -> when its last markRead went out
    this.wanted = new Map(); // roomId -> highest seq waiting for its turn
    this.timersByRoom = new Map();
    connection.on('state', ({ state }) => {
      if (state === 'live') this.refresh();
    });
    connection.on('authenticated', (user) => {
      if (this.userId === null && user?.userId != null) this.userId = String(user.userId);
    });
    connection.on('readState', (frame) => this.apply(frame));
    connection.on('readStates', (frame) => {
      for (const state of frame.rooms ?? []) this.apply(state, { quiet: true });
      this.emit({ kind: 'counts' });
    });
    connection.on('message', (m) => this.onMessage(m));
    connection.on('readReceipt', (frame) => this.applyReceipt(frame.roomId, frame));
    connection.on('receipts', (frame) => {
      this.receipts.set(frame.roomId, new Map());
      for (const r of frame.readers ?? []) this.applyReceipt(frame.roomId, r, { quiet: true });
      this.emit({ kind: 'receipts', roomId: frame.roomId });
    });
    connection.on('mentions', (frame) => {
      this.mentionList = Array.isArray(frame.messages) ? frame.messages : [];
      this.emit({ kind: 'mentions' });
    });
  }

  onChange(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  emit(change) {
    for (const fn of this.listeners) fn(change);
  }

  /** Ask for every room's counts (on each connect: correct after a reconnect or restart). */
  refresh() {
    this.connection.rawSend({ action: 'readStates' });
    for (const [roomId, seq] of this.wanted) {
      if (!this.timersByRoom.has(roomId) && this.connection.rawSend({ action: 'markRead', roomId, seq })) {
        this.wanted.delete(roomId);
      }
    }
  }

  state(roomId) {
    return this.counts.get(roomId) ?? { lastReadSeq: null, unread: 0, mentions: 0 };
  }

  totalUnread() {
    let total = 0;
    for (const s of this.counts.values()) total += s.unread;
    return total;
  }

  apply(frame, { quiet = false } = {}) {
    if (!frame || typeof frame.roomId !== 'string') return;
    const before = this.counts.get(frame.roomId);
    const older = before && Number.isInteger(before.lastReadSeq) && frame.lastReadSeq < before.lastReadSeq;
    // A late frame of an older mark never undoes one this tab is sending.
    if (older && this.wanted.has(frame.roomId)) return;
    this.counts.set(frame.roomId, {
      lastReadSeq: older ? before.lastReadSeq : frame.lastReadSeq,
      unread: Number(frame.unread) || 0,
      mentions: Number(frame.mentions) || 0,
    });
    if (!quiet) this.emit({ kind: 'counts', roomId: frame.roomId });
  }

  onMessage(m) {
    if (String(m.userId) === this.userId) return;
    if (!this.counts.has(m.roomId)) this.counts.set(m.roomId, { lastReadSeq: null, unread: 0, mentions: 0 });
    const s = this.counts.get(m.roomId);
    if (Number.isInteger(s.lastReadSeq) && m.seq <= s.lastReadSeq) return;
    s.unread = Math.min(COUNT_WINDOW, s.unread + 1);
    if (mentionsUser(m, this.userId)) s.mentions += 1;
    this.emit({ kind: 'counts', roomId: m.roomId });
  }

  /** The user has seen `roomId` up to `seq`: at most one frame per room per second. */
  markRead(roomId, seq) {
    if (!Number.isInteger(seq) || seq <= 0) return;
    const s = this.counts.get(roomId);
    if (s && Number.isInteger(s.lastReadSeq) && seq <= s.lastReadSeq && !this.wanted.has(roomId)) return;
    if (seq <= (this.wanted.get(roomId) ?? 0)) return;
    this.wanted.set(roomId, seq);
    // Shown as read at once in this tab; the server's readState confirms it.
    if (s) {
      s.lastReadSeq = Math.max(seq, s.lastReadSeq ?? 0);
      s.unread = 0;
      s.mentions = 0;
      this.emit({ kind: 'counts', roomId });
    }
    if (this.timersByRoom.has(roomId)) return;
    const wait = Math.max(0, (this.sentAt.get(roomId) ?? -Infinity) + MARK_READ_INTERVAL_MS - this.now());
    const send = () => {
      this.timersByRoom.delete(roomId);
      const highest = this.wanted.get(roomId);
      if (highest === undefined) return;
      this.sentAt.set(roomId, this.now());
      if (this.connection.rawSend({ action: 'markRead', roomId, seq: highest })) this.wanted.delete(roomId);
      else this.wanted.set(roomId, highest); // offline: sent again on the next connect
    };
    if (wait === 0) send();
    else this.timersByRoom.set(roomId, this.timers.setTimeout(send, wait));
  }

  /**
   * Mark `roomId` read up to what is on screen now, when the page is seen (both UIs call
   * this on render, scroll, focus and visibility changes; `view`: seenUpTo's arguments).
   */
  markSeen(roomId, messages, view, doc = globalThis.document) {
    if (!roomId || !pageSeen(doc)) return;
    const seq = seenUpTo(messages, view);
    if (seq !== null) this.markRead(roomId, seq);
  }

  applyReceipt(roomId, r, { quiet = false } = {}) {
    if (!this.receipts.has(roomId)) this.receipts.set(roomId, new Map());
    this.receipts.get(roomId).set(String(r.userId), { username: String(r.username), lastReadSeq: r.lastReadSeq });
    if (!quiet) this.emit({ kind: 'receipts', roomId });
  }

  /** Ask who has read how far in a small room (answered by `receipts`, or an error). */
  askReceipts(roomId) {
    this.connection.rawSend({ action: 'receipts', roomId });
  }

  /**
   * "Seen by": for each message seq, the other readers whose last read message it is.
   * `messages` in seq order; readers past the last message count at the last one.
   */
  seenBy(roomId, messages) {
    const out = new Map();
    const readers = this.receipts.get(roomId);
    if (!readers || messages.length === 0) return out;
    for (const [userId, r] of readers) {
      if (userId === this.userId) continue;
      let at = null;
      for (const m of messages) if (m.seq <= r.lastReadSeq) at = m.seq;
      if (at === null) continue;
      if (!out.has(at)) out.set(at, []);
      out.get(at).push(r.username);
    }
    return out;
  }

  askMentions() {
    this.connection.rawSend({ action: 'mentions' });
  }
}

/**
 * The @-word being typed at `caret`, for the composer's autocompletion:
 * {start, query} (start: the index of "@"), or null when the caret is not in one.
 */
export function mentionQuery(text, caret) {
  const before = text.slice(0, caret);
  const match = /(^|[^\w@.+-])@([\w.+-]{0,150})$/.exec(before);
  return match ? { start: caret - match[2].length - 1, query: match[2].toLowerCase() } : null;
}

/** Up to `limit` names that start with `query` (case-insensitively), sorted, without `self`. */
export function suggestNames(query, names, { self = null, limit = 6 } = {}) {
  const unique = [...new Set(names.map(String))].filter((n) => n !== self);
  return unique
    .filter((n) => n.toLowerCase().startsWith(query))
    .sort((a, b) => a.localeCompare(b))
    .slice(0, limit);
}
