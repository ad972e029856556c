/**
 * client.js: Chatsite's protocol client, shared by both UIs (the template page at / loads
 * it as an ES module, the React app at /app/ imports it). Plain JavaScript with no
 * framework and no build step; the UIs keep only their DOM code and render from what
 * this module emits. Wire protocol: docs/protocol.md.
 *
 * What it does for them:
 * - connects with a token (a first `authenticate` frame) or, on the Django site itself,
 *   with the session cookie the browser sends on the handshake; refreshes the token
 *   in-band before it expires, keeping the socket and its rooms;
 * - sends a heartbeat every 25 s, below the idle timeouts of an AWS ALB (60 s) and API
 *   Gateway (10 min), and drops a socket that stops answering;
 * - reconnects with full-jitter exponential backoff capped at 10 s (starting over once a
 *   join is answered, not when a socket merely opens), and at once when the
 *   tab regains focus or the browser goes online (`watchBrowser`): after a server restart
 *   a page is back within seconds, not after a 30 s wait;
 * - keeps one cursor per room and applies room events by the one rule in rooms.js
 *   (duplicates dropped, a gap repaired by `joinRoom` with `lastSeq`), so both UIs show the
 *   same room state; a `recovered: false` answer resets the room to the latest page;
 * - keeps an outbox: every message gets a clientMessageId, is `pending` until acked, is
 *   resent on every reconnect (the server stores a clientMessageId once), shows `failed`
 *   when the server refuses it, after MAX_SEND_ATTEMPTS tries, or when no ack comes within
 *   15 s; with an `outboxStore` (outbox.js) unacknowledged messages survive a reload and
 *   go out again with their original clientMessageId.
 *
 * No DOM in here beyond `watchBrowser`'s listeners: the unit tests drive it with a fake socket.
 */

import { addHistory, join, messageOf, newRoom, receive, snapshot, Verdict } from './rooms.js';
import { isChangeError } from './changes.js';
import { presenceFrames } from './presence.js';

export const ConnectionState = Object.freeze({
  IDLE: 'idle',
  CONNECTING: 'connecting',
  LIVE: 'live',
  OFFLINE: 'offline',
  UNAUTHORIZED: 'unauthorized',
  FORBIDDEN: 'forbidden',
  CLOSED: 'closed',
});

export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  ABNORMAL: 1006,
  INTERNAL_ERROR: 1011,
  UNAUTHORIZED: 4401,
  FORBIDDEN: 4403,
  TOO_MANY_REQUESTS: 4429,
});

export const DEFAULT_TIMING = Object.freeze({
  // A data frame every 25 s keeps an ALB (60 s idle) and API Gateway (10 min idle) from
  // closing a quiet socket; the server's own pings are control frames, which an ALB does
  // not count as activity.
  heartbeatMs: 25_000,
  // No frame at all this long after a ping: the socket is dead even if the browser has
  // not noticed (a laptop waking from sleep, a changed network).
  pongTimeoutMs: 10_000,
  // The server gives a token-authenticated socket 10 s to authenticate.
  authTimeoutMs: 10_000,
  // Full jitter below a ceiling that doubles from 0.5 s up to 10 s: a restarted server is
  // not hit by every client at once, and no page waits much longer than 10 s to come back
  // (a 30 s cap kept pages "Offline" 20-25 s after the server was back: issue 20).
  backoffBaseMs: 500,
  backoffCapMs: 10_000,
  // After a 4429 the next attempt waits at least this long.
  tooManyRequestsFloorMs: 5_000,
  // Refresh this long before the token expires (or at half its remaining life if shorter).
  refreshLeadMs: 60_000,
  refreshRetryMs: 5_000,
  // A server answers every send; silence this long means a socket that died unnoticed.
  ackTimeoutMs: 15_000,
});

export const MAX_SEND_ATTEMPTS = 5;

/**
 * Filling the gap between a page of history around a message and the messages already
 * shown above it (historyAround): pages of this size (the server's largest page).
 */
export const AROUND_FILL_PAGE = 200;

const OPEN = 1;

export { clearOutboxes, localOutboxStore } from './outbox.js';
export { Verdict, classify } from './rooms.js';

/** Full jitter: a uniformly random delay in [0, min(cap, base * 2^attempt)). */
export function fullJitterDelay(attempt, { backoffBaseMs, backoffCapMs }, random = Math.random) {
  const ceiling = Math.min(backoffCapMs, backoffBaseMs * 2 ** Math.min(Math.max(attempt, 0), 30));
  return Math.floor(random() * ceiling);
}

export function newClientMessageId() {
  if (globalThis.crypto?.randomUUID) return globalThis.crypto.randomUUID();
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** A JWT's `exp` as epoch milliseconds, or null. The signature is the server's business. */
export function tokenExpiry(token) {
  if (typeof token !== 'string') return null;
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const json = atob(parts[1].replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(parts[1].length / 4) * 4, '='));
    const exp = JSON.parse(json).exp;
    return typeof exp === 'number' ? exp * 1000 : null;
  } catch {
    return null;
  }
}

/** expiresAt from the server or a token response: epoch seconds, epoch ms or ISO 8601. */
export function parseExpiresAt(value) {
  if (typeof value === 'number' && Number.isFinite(value)) return value < 1e12 ? value * 1000 : value;
  if (typeof value === 'string' && value) {
    const ms = Date.parse(value);
    return Number.isNaN(ms) ? null : ms;
  }
  return null;
}

/**
 * One logical connection to the chat server, surviving any number of sockets.
 *
 * options:
 *   url        the WebSocket URL (ws://host/ws/)
 *   auth       null to rely on the session cookie, or
 *              { getToken(): Promise<{token, expiresAt?} | null>,
 *                refresh(): Promise<{token, expiresAt?} | null> }
 *   WebSocket  the WebSocket class (a fake one in tests)
 *   timing     overrides for DEFAULT_TIMING
 *   random     () => [0, 1), for the backoff jitter
 *
 * Events (`on(name, fn)` returns an unsubscribe function):
 *   state        {state, retryInMs?, code?}
 *   authenticated {userId, username, moderator, expiresAt}
 *   room         {roomId, room}   the room's state changed; room is rooms.js's snapshot:
 *                {lastSeq, messages (seq order, edits and removals applied), settings,
 *                members, hasMore, loaded}. Both UIs render a room from this alone.
 *   joined       {roomId, lastSeq, messages, reset, room, removed}   reset: replace what is shown;
 *                room: moderation settings or null; removed: [{messageId, seq}] now tombstones
 *   message      a new message, live (not from a join), in seq order, each seq once
 *   messageRemoved {roomId, messageId, seq}   a message was removed: show a tombstone
 *   roomUpdated  {roomId, room}   the room's moderation settings changed
 *   reported     {roomId, messageId}   a report (reportMessage) reached the moderators
 *   moderated    {roomId, messageId, removal}   a moderator's moderateMessage was done
 *   userBanned   {userId, username, until}      a moderator's banUser was done
 *   banned       {reason, until}   this user is banned: the socket closes with 4403 next, and
 *                the `state` event of FORBIDDEN carries it as `ban` (null: no reason was sent)
 *   presence     {userId, status, lastSeenAt}   (with `presence: true`) a user's presence changed
 *                (a frame listing several users' changes is emitted as one event per user)
 *   typing       {roomId, userId, username}     (with `presence: true`) someone is typing
 *   outbox       [{clientMessageId, roomId, text, attachments, status, code?, error?, retrying?, retryAt?, seq?}]
 *                status: pending | sent | failed; retrying: the error code a retry waits out,
 *                retryAt: when that retry goes (ms since the epoch)
 *   roomError    {roomId, code, message, reason?}   reason: why a `left` frame took the socket out
 *   error        an error frame not tied to a message, room or history request
 */
export class ChatConnection {
  constructor({
    url,
    auth = null,
    WebSocket = globalThis.WebSocket,
    timing = {},
    random = Math.random,
    outboxStore = null,
    presence = false,
  } = {}) {
    this.url = url;
    this.auth = auth;
    this.WebSocketImpl = WebSocket;
    this.timing = { ...DEFAULT_TIMING, ...timing };
    this.random = random;

    this.state = ConnectionState.IDLE;
    this.socket = null;
    this.attempt = 0;
    this.user = null;
    this.ban = null; // the `banned` frame before a 4403: why, and until when
    this.stopped = true;
    this.refreshedAfterReject = false;

    /** roomId -> room (rooms.js newRoom): lastSeq is the room's cursor */
    this.rooms = new Map();
    // roomId -> why the server took this socket out of the room ('removed', 'private'), until
    // it is in the room again: a join asked later (a room list read before the removal, say)
    // is refused, and that refusal still says why rather than "does not exist, or is private".
    this.leftBecause = new Map();
    /** clientMessageId -> outbox item, in the order typed */
    this.outbox = new Map();
    this.outboxStore = outboxStore;
    // Messages a previous page typed and the server never acknowledged: they go out again,
    // with their original clientMessageId, once their room is joined.
    for (const saved of outboxStore?.load() ?? []) {
      this.outbox.set(saved.clientMessageId, {
        clientMessageId: saved.clientMessageId,
        roomId: saved.roomId,
        text: saved.text,
        attachments: Array.isArray(saved.attachments) ? saved.attachments : [],
        status: 'pending',
        attempts: 0,
        createdAt: saved.createdAt ?? Date.now(),
      });
    }
    /** roomId -> [{resolve, reject}] waiting for a history frame, oldest first */
    this.historyWaiters = new Map();

    this.listeners = new Map();
    this.timers = { reconnect: null, heartbeat: null, pong: null, auth: null, refresh: null };
    /** per-item and per-room timers (ack deadlines, retries), cleared with the socket */
    this.itemTimers = new Map();
    this.tokenExpiresAt = null;
    // Presence and typing (docs/protocol.md): a UI that shows them passes `presence: true`;
    // the socket then says "online" (or "away") before anything else, on every connect.
    this.presenceStatus = presence ? 'online' : null;
  }

  // --- events -------------------------------------------------------------------------

  on(name, fn) {
    if (!this.listeners.has(name)) this.listeners.set(name, new Set());
    this.listeners.get(name).add(fn);
    return () => this.listeners.get(name)?.delete(fn);
  }

  emit(name, value) {
    for (const fn of [...(this.listeners.get(name) ?? [])]) {
      try {
        fn(value);
      } catch (error) {
        console.error(`websocket.js: a '${name}' listener threw`, error);
      }
    }
  }

  setState(state, extra = {}) {
    this.state = state;
    this.emit('state', { state, ...extra });
  }

  // --- lifecycle ----------------------------------------------------------------------

  connect() {
    this.stopped = false;
    if (this.socket || this.state === ConnectionState.CONNECTING) return;
    this.clearTimer('reconnect');
    this.open();
  }

  /** Skip the rest of a backoff wait (the browser came back online, the user asked). */
  reconnectNow() {
    if (this.stopped || this.socket || this.state === ConnectionState.CONNECTING) return;
    this.clearTimer('reconnect');
    this.open();
  }

  close() {
    this.stopped = true;
    this.clearAllTimers();
    this.clearItemTimers();
    const socket = this.socket;
    this.detach();
    if (socket) {
      try {
        socket.close(CloseCode.NORMAL, 'client closed');
      } catch {
        // already closing
      }
    }
    this.failHistoryWaiters('connection closed');
    this.setState(ConnectionState.CLOSED);
  }

  async open() {
    this.setState(ConnectionState.CONNECTING);
    let credential = null;
    if (this.auth) {
      try {
        credential = await this.freshCredential();
      } catch {
        credential = null;
      }
      if (this.stopped) return;
      if (!credential) {
        this.unauthorized();
        return;
      }
    }
    let socket;
    try {
      socket = new this.WebSocketImpl(this.url);
    } catch {
      this.scheduleReconnect(CloseCode.ABNORMAL);
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      if (socket !== this.socket) return;
      if (credential) {
        this.rawSend({ action: 'authenticate', token: credential.token });
        this.setTimer('auth', this.timing.authTimeoutMs, () => this.drop('no answer to authenticate'));
      } else {
        this.live();
      }
    };
    socket.onmessage = (event) => {
      if (socket !== this.socket) return;
      this.onFrameText(event.data);
    };
    socket.onclose = (event) => {
      if (socket !== this.socket) return;
      this.onClose(event.code);
    };
    socket.onerror = () => {
      // A close event always follows; the reconnect logic lives there.
    };
  }

  /** The stored token, refreshed first when it expires within the refresh lead. */
  async freshCredential() {
    let credential = await this.auth.getToken();
    const expiresAt = credential ? this.expiryOf(credential) : null;
    if (!credential || (expiresAt !== null && expiresAt - Date.now() < this.timing.refreshLeadMs)) {
      const refreshed = await this.auth.refresh().catch(() => null);
      // A token that has not expired yet is still worth a try if the refresh failed.
      const stillValid = credential && (expiresAt === null || expiresAt > Date.now());
      credential = refreshed ?? (stillValid ? credential : null);
    }
    if (credential) this.tokenExpiresAt = this.expiryOf(credential);
    return credential;
  }

  expiryOf(credential) {
    return parseExpiresAt(credential.expiresAt) ?? tokenExpiry(credential.token);
  }

  refreshLead(expiresAt) {
    const remaining = expiresAt - Date.now();
    return Math.min(this.timing.refreshLeadMs, Math.max(remaining / 2, 0));
  }

  live() {
    this.clearTimer('auth');
    // The backoff starts over once the server has answered a join (onJoined), not when the
    // socket opens: a server that accepts sockets and then closes them (1011 when it cannot
    // admit them: a restart's reconnect storm) would otherwise be retried within 0.5 s for
    // ever, by every client at once (bench.storm, docs/performance.md).
    if (this.rooms.size === 0) this.attempt = 0;
    this.refreshedAfterReject = false;
    this.setState(ConnectionState.LIVE);
    this.scheduleHeartbeat();
    if (this.presenceStatus) this.rawSend({ action: 'presence', status: this.presenceStatus });
    for (const [roomId, room] of this.rooms) {
      room.joined = false;
      this.sendJoin(roomId, room.lastSeq);
    }
  }

  onClose(code) {
    this.detach();
    this.clearAllTimers();
    this.clearItemTimers();
    this.failHistoryWaiters('connection lost');
    for (const room of this.rooms.values()) room.joined = false;
    this.awaitConnection();
    if (this.stopped) {
      this.setState(ConnectionState.CLOSED);
      return;
    }
    if (code === CloseCode.UNAUTHORIZED) {
      // A token may simply have expired: refresh once and try again before giving up.
      if (this.auth && !this.refreshedAfterReject) {
        this.refreshedAfterReject = true;
        this.refreshThenReconnect();
        return;
      }
      this.unauthorized();
      return;
    }
    if (code === CloseCode.FORBIDDEN) {
      this.stopped = true;
      this.setState(ConnectionState.FORBIDDEN, { code, ban: this.ban });
      return;
    }
    this.scheduleReconnect(code);
  }

  async refreshThenReconnect() {
    this.setState(ConnectionState.CONNECTING);
    let credential = null;
    try {
      credential = await this.auth.refresh();
    } catch {
      credential = null;
    }
    if (this.stopped) return;
    if (!credential) {
      this.unauthorized();
      return;
    }
    this.open();
  }

  unauthorized() {
    this.stopped = true;
    this.clearAllTimers();
    this.setState(ConnectionState.UNAUTHORIZED);
  }

  scheduleReconnect(code) {
    let delay = fullJitterDelay(this.attempt, this.timing, this.random);
    if (code === CloseCode.TOO_MANY_REQUESTS) delay = Math.max(delay, this.timing.tooManyRequestsFloorMs);
    this.attempt += 1;
    this.setState(ConnectionState.OFFLINE, { retryInMs: delay, code });
    this.setTimer('reconnect', delay, () => {
      if (!this.stopped && !this.socket) this.open();
    });
  }

  /** Forget a socket that is not answering and go through the normal reconnect path. */
  drop(reason) {
    const socket = this.socket;
    if (!socket) return;
    this.detach();
    try {
      socket.close(4000, reason.slice(0, 100));
    } catch {
      // ignore
    }
    this.socket = socket; // onClose expects to be closing the current socket
    this.onClose(CloseCode.ABNORMAL);
  }

  detach() {
    const socket = this.socket;
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
    }
    this.socket = null;
  }

  // --- timers -------------------------------------------------------------------------

  setTimer(name, ms, fn) {
    this.clearTimer(name);
    this.timers[name] = setTimeout(() => {
      this.timers[name] = null;
      fn();
    }, ms);
  }

  clearTimer(name) {
    if (this.timers[name] !== null) clearTimeout(this.timers[name]);
    this.timers[name] = null;
  }

  clearAllTimers() {
    for (const name of Object.keys(this.timers)) this.clearTimer(name);
  }

  scheduleHeartbeat() {
    this.setTimer('heartbeat', this.timing.heartbeatMs, () => {
      if (this.state !== ConnectionState.LIVE) return;
      this.probe();
      this.scheduleHeartbeat();
    });
  }

  /**
   * Ask for a pong; any frame before the deadline proves the socket alive. One probe at a
   * time: a second one must not push the first one's deadline out.
   */
  probe() {
    if (this.timers.pong !== null) return;
    if (!this.rawSend({ action: 'ping' })) return;
    this.setTimer('pong', this.timing.pongTimeoutMs, () => this.drop('heartbeat timeout'));
  }

  setItemTimer(key, ms, fn) {
    this.clearItemTimer(key);
    this.itemTimers.set(
      key,
      setTimeout(() => {
        this.itemTimers.delete(key);
        fn();
      }, ms),
    );
  }

  clearItemTimer(key) {
    const timer = this.itemTimers.get(key);
    if (timer !== undefined) clearTimeout(timer);
    this.itemTimers.delete(key);
  }

  clearItemTimers() {
    for (const timer of this.itemTimers.values()) clearTimeout(timer);
    this.itemTimers.clear();
  }

  scheduleRefresh() {
    this.clearTimer('refresh');
    if (!this.auth || this.tokenExpiresAt === null) return;
    const delay = Math.max(0, this.tokenExpiresAt - Date.now() - this.refreshLead(this.tokenExpiresAt));
    this.setTimer('refresh', delay, () => this.refreshInBand());
  }

  async refreshInBand() {
    let credential = null;
    try {
      credential = await this.auth.refresh();
    } catch {
      credential = null;
    }
    if (this.state !== ConnectionState.LIVE || !this.socket) return;
    if (!credential) {
      // Try again until the token runs out; the server then closes with 4401 and the
      // reconnect path makes one more attempt before asking the user to sign in.
      if (this.tokenExpiresAt !== null && Date.now() < this.tokenExpiresAt) {
        this.setTimer('refresh', this.timing.refreshRetryMs, () => this.refreshInBand());
      }
      return;
    }
    this.tokenExpiresAt = this.expiryOf(credential);
    this.rawSend({ action: 'refreshToken', token: credential.token });
    this.scheduleRefresh();
  }

  // --- frames in ----------------------------------------------------------------------

  onFrameText(text) {
    // Any frame proves the socket is alive.
    this.clearTimer('pong');
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (!frame || typeof frame !== 'object') return;
    // A window's presence changes come in one frame: each is handled as a frame of its own.
    for (const one of presenceFrames(frame)) this.onFrame(one);
  }

  onFrame(frame) {
    // Every frame, for modules that speak a part of the protocol of their own (people.js).
    this.emit('frame', frame);
    switch (frame.type) {
      case 'authenticated':
        this.onAuthenticated(frame);
        break;
      case 'ack':
        this.onAck(frame);
        break;
      case 'joined':
        this.onJoined(frame);
        break;
      case 'history':
        this.onHistory(frame);
        break;
      case 'left':
        this.onLeft(frame);
        break;
      case 'reported':
        this.emit('reported', { roomId: frame.roomId, messageId: frame.messageId });
        break;
      case 'moderated': // a moderator's answers (docs/moderation.md, "In the chat")
      case 'userBanned':
        this.emit(frame.type, frame);
        break;
      case 'banned':
        this.ban = { reason: String(frame.reason ?? ''), until: frame.until ?? null };
        this.emit('banned', this.ban);
        break;
      case 'presence': // {userId, status, lastSeenAt}: core/presence.js
      case 'typing': // {roomId, userId, username}: core/typing.js
        this.emit(frame.type, frame);
        break;
      case 'changed':
      case 'thread':
        this.emit(frame.type, frame); // changes.js answers its requests with these
        break;
      case 'error':
        this.onError(frame);
        break;
      // Read state, mentions and receipts (unread.js keeps them): no room event, no seq.
      case 'readState':
      case 'readStates':
      case 'readReceipt':
      case 'receipts':
      case 'mentions':
        this.emit(frame.type, frame);
        break;
      default:
        // Room events (message, messageRemoved, messageEdited, reactions, roomUpdated,
        // members, and types newer than this client), then pong and the like.
        this.onRoomEvent(frame);
        break;
    }
  }

  onAuthenticated(frame) {
    this.user = { userId: frame.userId, username: frame.username, moderator: frame.moderator === true };
    const expiresAt = parseExpiresAt(frame.expiresAt);
    if (expiresAt !== null) this.tokenExpiresAt = expiresAt;
    this.emit('authenticated', { ...this.user, expiresAt: this.tokenExpiresAt });
    if (this.state !== ConnectionState.LIVE) this.live();
    this.scheduleRefresh();
  }

  /** A live frame that may change a room: the cursor rule decides (rooms.js). */
  onRoomEvent(frame) {
    const room = typeof frame.roomId === 'string' ? this.rooms.get(frame.roomId) : undefined;
    if (!room) return;
    const verdict = receive(room, frame);
    if (verdict === Verdict.GAP) {
      // A hole: ask the server to replay from what we have. The replay includes this one.
      room.joined = false;
      this.sendJoin(room.roomId, room.lastSeq);
      return;
    }
    if (verdict !== Verdict.APPLIED) return;
    this.emitRoom(room);
    if (frame.type === 'message') {
      const message = messageOf(frame);
      this.emit('message', message);
      this.settleOwn(room.roomId, room.lastSeq, [message.clientMessageId]);
    } else if (frame.type === 'messageRemoved') {
      this.emit('messageRemoved', { roomId: frame.roomId, messageId: frame.messageId, seq: frame.seq });
    } else if (frame.type === 'roomUpdated') {
      this.emit('roomUpdated', { roomId: frame.roomId, room: frame.room ?? null });
    }
  }

  emitRoom(room) {
    this.emit('room', { roomId: room.roomId, room: snapshot(room) });
  }

  onAck(frame) {
    const item = this.outbox.get(frame.clientMessageId);
    if (!item) return;
    this.clearItemTimer(item.clientMessageId);
    // Stored by the server: nothing left to keep for a reload.
    this.outboxStore?.remove(item.clientMessageId);
    item.status = 'sent';
    item.code = undefined;
    item.retrying = undefined;
    item.resend = false;
    item.seq = frame.seq;
    item.messageId = frame.messageId;
    item.error = undefined;
    const room = this.rooms.get(item.roomId);
    // The ack usually overtakes the message frame: keep the item until that frame arrives.
    if (room && room.lastSeq !== null && room.lastSeq >= item.seq) this.outbox.delete(item.clientMessageId);
    this.emitOutbox();
  }

  onJoined(frame) {
    this.attempt = 0;
    const room = this.rooms.get(frame.roomId);
    if (!room) return; // left while the join was in flight
    this.leftBecause.delete(frame.roomId);
    this.clearItemTimer(`join:${frame.roomId}`);
    const { reset, messages } = join(room, frame, room.lastSeq);
    this.emit('joined', {
      roomId: frame.roomId,
      lastSeq: room.lastSeq,
      messages,
      reset,
      room: frame.room ?? null,
      removed: frame.removed ?? [],
    });
    this.emitRoom(room);
    this.settleOwn(
      frame.roomId,
      room.lastSeq,
      room.messages.map((m) => m.clientMessageId),
    );
    this.flushOutbox(frame.roomId);
  }

  /** The server took this socket out of a room (no longer a member of a private one): stop rejoining it. */
  onLeft(frame) {
    if (frame.reason) this.leftBecause.set(frame.roomId, frame.reason);
    if (!frame.reason || !this.rooms.delete(frame.roomId)) return;
    this.emit('roomError', {
      roomId: frame.roomId,
      code: 'forbidden',
      message: 'You are no longer a member of this room.',
      reason: frame.reason, // 'removed' or 'private': what the page says (core/people.js roomGoneText)
    });
  }

  onHistory(frame) {
    const waiters = this.historyWaiters.get(frame.roomId);
    const waiter = waiters?.shift();
    if (!waiter) return;
    const messages = (frame.messages ?? []).map((m) => messageOf({ ...m, roomId: m.roomId ?? frame.roomId }));
    const room = this.rooms.get(frame.roomId);
    if (room) {
      // A page after a seq lies above what is held: whether older messages exist is unchanged.
      addHistory(room, frame.messages ?? [], frame.afterSeq === undefined ? frame.hasMore === true : room.hasMore);
      this.emitRoom(room);
    }
    const page = { roomId: frame.roomId, messages, hasMore: !!frame.hasMore };
    if (frame.hasNewer !== undefined) page.hasNewer = frame.hasNewer === true; // an aroundSeq page
    waiter.resolve(page);
  }

  onError(frame) {
    const item = frame.clientMessageId ? this.outbox.get(frame.clientMessageId) : null;
    if (item && item.status === 'pending') {
      this.clearItemTimer(item.clientMessageId);
      if (frame.retryable && item.attempts < MAX_SEND_ATTEMPTS) {
        const delay = Math.max((frame.retryAfter ?? 0) * 1000, fullJitterDelay(item.attempts, this.timing, this.random));
        item.retrying = frame.code || 'error';
        item.retryAt = Date.now() + delay; // the UIs count down to it (core/words.js)
        this.emitOutbox();
        this.setItemTimer(item.clientMessageId, delay, () => {
          if (this.outbox.get(item.clientMessageId) !== item || item.status !== 'pending') return;
          item.retrying = undefined;
          if (this.rooms.get(item.roomId)?.joined && this.state === ConnectionState.LIVE) this.transmit(item);
          else this.emitOutbox();
        });
      } else {
        this.failItem(item, frame.code || 'error', frame.message || frame.code);
      }
      return;
    }
    if (frame.action === 'history' && frame.roomId) {
      const waiter = this.historyWaiters.get(frame.roomId)?.shift();
      if (waiter) {
        waiter.reject(Object.assign(new Error(frame.message || frame.code), { code: frame.code }));
        return;
      }
    }
    if (isChangeError(frame)) {
      this.emit('changeError', frame);
      return;
    }
    if (frame.action === 'joinRoom' && frame.roomId && this.rooms.has(frame.roomId)) {
      const room = this.rooms.get(frame.roomId);
      if (!frame.retryable) {
        this.rooms.delete(frame.roomId);
      } else {
        // Not joined, so deaf to the room: ask again after the server's advice.
        const delay = Math.max((frame.retryAfter ?? 0) * 1000, fullJitterDelay(1, this.timing, this.random));
        this.setItemTimer(`join:${frame.roomId}`, delay, () => {
          if (this.rooms.get(frame.roomId) === room && !room.joined) this.sendJoin(frame.roomId, room.lastSeq);
        });
      }
      const reason = frame.retryable ? undefined : this.leftBecause.get(frame.roomId);
      this.emit('roomError', { roomId: frame.roomId, code: frame.code, message: frame.message, ...(reason && { reason }) });
      return;
    }
    this.emit('error', frame);
  }

  // --- frames out ---------------------------------------------------------------------

  rawSend(frame) {
    const socket = this.socket;
    if (!socket || socket.readyState !== OPEN) return false;
    socket.send(JSON.stringify(frame));
    return true;
  }

  sendJoin(roomId, lastSeq) {
    const frame = { action: 'joinRoom', roomId };
    if (lastSeq !== null && lastSeq !== undefined) frame.lastSeq = lastSeq;
    return this.rawSend(frame);
  }

  /** Join a room (again after every reconnect) and start receiving its messages. */
  joinRoom(roomId) {
    if (this.rooms.has(roomId)) return;
    this.rooms.set(roomId, newRoom(roomId));
    if (this.state === ConnectionState.LIVE) this.sendJoin(roomId, null);
  }

  /** Our presence: 'online' or 'away' (the tab is hidden); sent now and on every connect. */
  setPresence(status) {
    this.presenceStatus = status;
    if (this.state === ConnectionState.LIVE) this.rawSend({ action: 'presence', status });
  }

  /** Tell a joined room we are typing (core/typing.js's sender paces these). */
  typing(roomId) {
    if (this.state !== ConnectionState.LIVE || !this.rooms.get(roomId)?.joined) return false;
    return this.rawSend({ action: 'typing', roomId });
  }

  leaveRoom(roomId) {
    if (!this.rooms.delete(roomId)) return;
    if (this.state === ConnectionState.LIVE) this.rawSend({ action: 'leaveRoom', roomId });
  }

  /** Forget what was received for a room and load its latest page again. */
  reloadRoom(roomId) {
    const room = this.rooms.get(roomId);
    if (!room) return;
    this.rooms.set(roomId, newRoom(roomId));
    if (this.state === ConnectionState.LIVE) this.sendJoin(roomId, null);
  }

  /**
   * Queue a message; it is sent now if the room is live, else once it is. `replyTo`: a
   * message id. `attachments`: finished uploads (uploads.js), sent as their ids; the text
   * may then be empty.
   */
  send(roomId, text, { replyTo = null, attachments = [] } = {}) {
    const item = {
      clientMessageId: newClientMessageId(),
      roomId,
      text,
      replyTo,
      attachments: attachments.filter(Boolean),
      status: 'pending',
      attempts: 0,
      createdAt: Date.now(),
    };
    this.outbox.set(item.clientMessageId, item);
    this.outboxStore?.put(item);
    this.emitOutbox();
    if (this.rooms.get(roomId)?.joined && this.state === ConnectionState.LIVE) this.transmit(item);
    return item.clientMessageId;
  }

  /** Send a failed message again, with the same clientMessageId. */
  retry(clientMessageId) {
    const item = this.outbox.get(clientMessageId);
    if (!item || item.status !== 'failed') return;
    item.status = 'pending';
    item.attempts = 0;
    item.error = undefined;
    item.code = undefined;
    item.resend = false;
    this.emitOutbox();
    if (this.rooms.get(item.roomId)?.joined && this.state === ConnectionState.LIVE) this.transmit(item);
  }

  /** Report a message to the moderators; answered by a `reported` event (or an error). */
  reportMessage(roomId, messageId, reason) {
    return this.rawSend({ action: 'reportMessage', roomId, messageId, reason: String(reason).slice(0, 500) });
  }

  /** A moderator hides or deletes a message (removal: 'hidden' | 'deleted'); answered by
   *  `moderated` (every joined socket gets messageRemoved) or an error (`forbidden`). */
  moderateMessage(roomId, messageId, removal, reason) {
    return this.rawSend({ action: 'moderateMessage', roomId, messageId, removal, reason: String(reason).slice(0, 1000) });
  }

  /** A moderator bans a user; answered by `userBanned` or an error. options: durationSeconds
   *  (none: until lifted), roomId and messageId (where, for the audit log). */
  banUser(userId, reason, { durationSeconds, roomId, messageId } = {}) {
    const frame = { action: 'banUser', userId: String(userId), reason: String(reason).slice(0, 1000) };
    if (durationSeconds) frame.durationSeconds = durationSeconds;
    if (roomId) frame.roomId = roomId;
    if (messageId) frame.messageId = messageId;
    return this.rawSend(frame);
  }

  discard(clientMessageId) {
    this.clearItemTimer(clientMessageId);
    this.outboxStore?.remove(clientMessageId);
    if (this.outbox.delete(clientMessageId)) this.emitOutbox();
  }

  failItem(item, code, error) {
    this.clearItemTimer(item.clientMessageId);
    item.status = 'failed';
    item.code = code;
    item.error = error;
    item.retrying = undefined;
    this.emitOutbox();
  }

  /** The socket is gone: what was on its way waits for the next one, sent again then. */
  awaitConnection() {
    let changed = false;
    for (const item of this.outbox.values()) {
      if (item.resend || (item.status === 'pending' && item.retrying)) {
        item.status = 'pending';
        item.resend = false;
        item.retrying = undefined;
        item.error = undefined;
        item.code = undefined;
        changed = true;
      }
    }
    if (changed) this.emitOutbox();
  }

  transmit(item) {
    if (item.attempts >= MAX_SEND_ATTEMPTS) {
      this.failItem(item, 'not_sent', 'could not be sent');
      return;
    }
    const sent = this.rawSend({
      action: 'sendMessage',
      roomId: item.roomId,
      message: item.text,
      clientMessageId: item.clientMessageId,
      ...(item.replyTo ? { replyTo: item.replyTo } : {}),
      ...(item.attachments?.length ? { attachments: item.attachments.map((a) => a.id) } : {}),
    });
    if (!sent) return;
    item.attempts += 1;
    item.inFlight = true;
    this.emitOutbox();
    this.setItemTimer(item.clientMessageId, this.timing.ackTimeoutMs, () => {
      if (this.outbox.get(item.clientMessageId) !== item || item.status !== 'pending') return;
      // Silence usually means a socket that died without the browser noticing: say so,
      // check the socket now rather than at the next heartbeat, and send the message
      // again (same clientMessageId) on the next connection.
      this.failItem(item, 'timeout', 'no answer from the server yet');
      item.resend = true;
      this.probe();
    });
  }

  flushOutbox(roomId) {
    for (const item of this.outbox.values()) {
      if (item.roomId === roomId && item.status === 'pending' && !item.retrying) this.transmit(item);
    }
  }

  /** Drop own messages that are now part of the room's history. */
  settleOwn(roomId, lastSeq, arrivedIds) {
    const arrivedSet = new Set(arrivedIds.filter(Boolean));
    let changed = false;
    for (const item of this.outbox.values()) {
      if (item.roomId !== roomId) continue;
      const arrived = arrivedSet.has(item.clientMessageId);
      const covered = item.status === 'sent' && item.seq <= lastSeq;
      if (arrived || covered) {
        this.clearItemTimer(item.clientMessageId);
        this.outboxStore?.remove(item.clientMessageId);
        this.outbox.delete(item.clientMessageId);
        changed = true;
      }
    }
    if (changed) this.emitOutbox();
  }

  emitOutbox() {
    this.emit('outbox', this.outboxItems());
  }

  /** The outbox as the UIs show it: plain copies, in the order typed. */
  outboxItems() {
    return (
      [...this.outbox.values()].map(({ clientMessageId, roomId, text, attachments, status, code, error, retrying, retryAt, seq, createdAt }) => ({
        clientMessageId,
        roomId,
        text,
        attachments: attachments ?? [],
        status,
        code,
        error,
        retrying,
        retryAt: retrying ? retryAt : undefined,
        seq,
        createdAt,
      }))
    );
  }

  /**
   * Older messages: resolves with {messages, hasMore}; rejects if the socket drops first.
   * Without a limit the server's page size applies, the same as a join's latest page.
   */
  history(roomId, beforeSeq, limit, aroundSeq, afterSeq) {
    return new Promise((resolve, reject) => {
      const frame = { action: 'history', roomId };
      if (beforeSeq !== null && beforeSeq !== undefined) frame.beforeSeq = beforeSeq;
      if (aroundSeq !== null && aroundSeq !== undefined) frame.aroundSeq = aroundSeq; // changes.js: a reply's original
      if (afterSeq !== null && afterSeq !== undefined) frame.afterSeq = afterSeq; // historyAround's fill, upwards
      if (limit !== undefined) frame.limit = limit;
      if (this.state !== ConnectionState.LIVE || !this.rawSend(frame)) {
        reject(new Error('not connected'));
        return;
      }
      if (!this.historyWaiters.has(roomId)) this.historyWaiters.set(roomId, []);
      this.historyWaiters.get(roomId).push({ resolve, reject });
    });
  }

  /**
   * Jump to a message far back (a quoted reply's original, a search hit): the page of
   * history around `seq`, then everything between that page and the messages already held
   * above it, so the room reads on without a hole from the jump to the live end. The gap
   * is filled upwards from the page (`history` with afterSeq) until a page reaches the
   * lowest held message above it or the newest message, however long the gap: every page
   * but the last moves up by a full page, so the pages are bounded by the gap's seqs.
   * Resolves with the around page.
   */
  async historyAround(roomId, seq, limit, { fillPage = AROUND_FILL_PAGE } = {}) {
    const page = await this.history(roomId, null, limit, seq);
    const room = this.rooms.get(roomId);
    if (!room || !page.hasNewer) return page;
    let after = page.messages.at(-1)?.seq ?? seq;
    const end = heldAbove(room, after) ?? (room.lastSeq ?? after) + 1; // fill the seqs below this one
    // Each page moves `after` up by at least one seq (else the loop ends), so the gap's size
    // bounds the pages, whatever page size the server caps `fillPage` to.
    const pages = end - after;
    for (let n = 0; n < pages && after + 1 < end; n += 1) {
      const fill = await this.history(roomId, null, fillPage, null, after);
      const last = fill.messages.at(-1)?.seq;
      if (!this.rooms.has(roomId) || !fill.hasNewer || last === undefined || last <= after) break;
      after = last;
    }
    return page;
  }

  failHistoryWaiters(reason) {
    for (const waiters of this.historyWaiters.values()) {
      for (const waiter of waiters) waiter.reject(new Error(reason));
    }
    this.historyWaiters.clear();
  }
}


/** The lowest seq of a held message above `seq` (null: none). */
function heldAbove(room, seq) {
  return room.messages.find((m) => m.seq > seq)?.seq ?? null;
}

/**
 * Reconnect at once when the user is back rather than at the end of a backoff wait: the tab
 * regains focus or becomes visible, or the browser says it is online again. A page that
 * still has a socket checks it instead (a laptop waking up holds sockets that look open
 * but are dead). Returns a function that removes the listeners.
 */
export function watchBrowser(connection, win = globalThis.window) {
  if (!win || typeof win.addEventListener !== 'function') return () => {};
  const doc = win.document;
  const wake = () => {
    if (connection.socket) connection.probe();
    else connection.reconnectNow();
  };
  const onVisibility = () => {
    if (doc?.visibilityState !== 'hidden') wake();
  };
  const onOffline = () => {
    if (connection.socket) connection.probe();
  };
  win.addEventListener('online', wake);
  win.addEventListener('focus', wake);
  win.addEventListener('offline', onOffline);
  doc?.addEventListener?.('visibilitychange', onVisibility);
  return () => {
    win.removeEventListener('online', wake);
    win.removeEventListener('focus', wake);
    win.removeEventListener('offline', onOffline);
    doc?.removeEventListener?.('visibilitychange', onVisibility);
  };
}
