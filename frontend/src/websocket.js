/**
 * websocket.js — the one place that talks to Chatsite's WebSocket (wire protocol v1,
 * docs/protocol.md). Components never touch a socket: they call this module and listen
 * to its events.
 *
 * What it does for them:
 * - connects with a token (a first `authenticate` frame) or, served from the Django site
 *   itself, with the session cookie the browser sends on the handshake;
 * - sends a heartbeat every 25 s, below the idle timeouts of an AWS ALB (60 s) and API
 *   Gateway (10 min), and drops a socket that stops answering;
 * - reconnects with full-jitter exponential backoff;
 * - rejoins every room with the last seq it has, so a reconnect shows no hole; when the
 *   server answers `recovered: false` (the gap was too large to replay) the room is reset
 *   to the latest page instead;
 * - keeps a send queue: every message gets a clientMessageId, is `pending` until acked,
 *   is resent on every reconnect (the server stores a clientMessageId once), and becomes
 *   `failed` when the server refuses it or after MAX_SEND_ATTEMPTS tries;
 * - refreshes its token in-band before it expires, keeping the socket and its rooms.
 *
 * Pure JavaScript with no React in it: the unit tests drive it with a fake socket.
 */

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
  backoffBaseMs: 500,
  backoffCapMs: 30_000,
  // After a 4429 the next attempt waits at least this long.
  tooManyRequestsFloorMs: 5_000,
  // Refresh this long before the token expires (or at half its remaining life if shorter).
  refreshLeadMs: 60_000,
  refreshRetryMs: 5_000,
});

export const MAX_SEND_ATTEMPTS = 5;

const OPEN = 1;

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
 *   authenticated {userId, username, expiresAt}
 *   joined       {roomId, lastSeq, messages, reset, room, removed}   reset: replace what is shown;
 *                room: moderation settings or null; removed: [{messageId, seq}] now tombstones
 *   message      a message payload, in seq order, each seq once
 *   messageRemoved {roomId, messageId, seq}   a moderator removed it: show a tombstone
 *   roomUpdated  {roomId, room}   the room's moderation settings changed
 *   reported     {roomId, messageId}   a report (reportMessage) reached the moderators
 *   outbox       [{clientMessageId, roomId, text, status, error?, seq?}]
 *   roomError    {roomId, code, message}
 *   error        an error frame not tied to a message, room or history request
 */
export class ChatConnection {
  constructor({ url, auth = null, WebSocket = globalThis.WebSocket, timing = {}, random = Math.random } = {}) {
    this.url = url;
    this.auth = auth;
    this.WebSocketImpl = WebSocket;
    this.timing = { ...DEFAULT_TIMING, ...timing };
    this.random = random;

    this.state = ConnectionState.IDLE;
    this.socket = null;
    this.attempt = 0;
    this.user = null;
    this.stopped = true;
    this.refreshedAfterReject = false;

    /** roomId -> {lastSeq: number|null, joined: boolean} */
    this.rooms = new Map();
    /** clientMessageId -> outbox item, in the order typed */
    this.outbox = new Map();
    /** roomId -> [{resolve, reject}] waiting for a history frame, oldest first */
    this.historyWaiters = new Map();

    this.listeners = new Map();
    this.timers = { reconnect: null, heartbeat: null, pong: null, auth: null, refresh: null };
    this.tokenExpiresAt = null;
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
    this.attempt = 0;
    this.refreshedAfterReject = false;
    this.setState(ConnectionState.LIVE);
    this.scheduleHeartbeat();
    for (const [roomId, room] of this.rooms) {
      room.joined = false;
      this.sendJoin(roomId, room.lastSeq);
    }
  }

  onClose(code) {
    this.detach();
    this.clearAllTimers();
    this.failHistoryWaiters('connection lost');
    for (const room of this.rooms.values()) room.joined = false;
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
      this.setState(ConnectionState.FORBIDDEN, { code });
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
      this.rawSend({ action: 'ping' });
      this.setTimer('pong', this.timing.pongTimeoutMs, () => this.drop('heartbeat timeout'));
      this.scheduleHeartbeat();
    });
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
    switch (frame.type) {
      case 'authenticated':
        this.onAuthenticated(frame);
        break;
      case 'message':
        this.onMessage(frame);
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
      case 'messageRemoved':
        this.emit('messageRemoved', { roomId: frame.roomId, messageId: frame.messageId, seq: frame.seq });
        break;
      case 'roomUpdated':
        this.emit('roomUpdated', { roomId: frame.roomId, room: frame.room ?? null });
        break;
      case 'reported':
        this.emit('reported', { roomId: frame.roomId, messageId: frame.messageId });
        break;
      case 'error':
        this.onError(frame);
        break;
      default:
        // pong, and frame types newer than this client
        break;
    }
  }

  onAuthenticated(frame) {
    this.user = { userId: frame.userId, username: frame.username };
    const expiresAt = parseExpiresAt(frame.expiresAt);
    if (expiresAt !== null) this.tokenExpiresAt = expiresAt;
    this.emit('authenticated', { ...this.user, expiresAt: this.tokenExpiresAt });
    if (this.state !== ConnectionState.LIVE) this.live();
    this.scheduleRefresh();
  }

  onMessage(frame) {
    const message = messageOf(frame);
    const room = this.rooms.get(message.roomId);
    if (!room || !room.joined || room.lastSeq === null) return;
    if (message.seq <= room.lastSeq) return; // a duplicate
    if (message.seq > room.lastSeq + 1) {
      // A hole: ask the server to replay from what we have. The replay includes this one.
      room.joined = false;
      this.sendJoin(message.roomId, room.lastSeq);
      return;
    }
    room.lastSeq = message.seq;
    this.emit('message', message);
    this.settleOwn(message.roomId, room.lastSeq, [message.clientMessageId]);
  }

  onAck(frame) {
    const item = this.outbox.get(frame.clientMessageId);
    if (!item) return;
    item.status = 'sent';
    item.seq = frame.seq;
    item.messageId = frame.messageId;
    item.error = undefined;
    const room = this.rooms.get(item.roomId);
    // The ack usually overtakes the message frame: keep the item until that frame arrives.
    if (room && room.lastSeq !== null && room.lastSeq >= item.seq) this.outbox.delete(item.clientMessageId);
    this.emitOutbox();
  }

  onJoined(frame) {
    const room = this.rooms.get(frame.roomId);
    if (!room) return; // left while the join was in flight
    const requested = room.lastSeq;
    const replay = frame.recovered === true && requested !== null;
    const messages = (frame.messages ?? []).map(messageOf).filter((m) => !replay || m.seq > requested);
    room.lastSeq = typeof frame.lastSeq === 'number' ? frame.lastSeq : (messages.at(-1)?.seq ?? 0);
    room.joined = true;
    this.emit('joined', {
      roomId: frame.roomId,
      lastSeq: room.lastSeq,
      messages,
      reset: !replay,
      room: frame.room ?? null,
      removed: frame.removed ?? [],
    });
    this.settleOwn(
      frame.roomId,
      room.lastSeq,
      messages.map((m) => m.clientMessageId),
    );
    this.flushOutbox(frame.roomId);
  }

  /** The server took this socket out of a room (no longer a member of a private one): stop rejoining it. */
  onLeft(frame) {
    if (!frame.reason || !this.rooms.delete(frame.roomId)) return;
    this.emit('roomError', { roomId: frame.roomId, code: 'forbidden', message: 'You are no longer a member of this room.' });
  }

  onHistory(frame) {
    const waiters = this.historyWaiters.get(frame.roomId);
    const waiter = waiters?.shift();
    if (!waiter) return;
    waiter.resolve({ roomId: frame.roomId, messages: (frame.messages ?? []).map(messageOf), hasMore: !!frame.hasMore });
  }

  onError(frame) {
    const item = frame.clientMessageId ? this.outbox.get(frame.clientMessageId) : null;
    if (item && item.status === 'pending') {
      if (frame.retryable && item.attempts < MAX_SEND_ATTEMPTS) {
        const delay = Math.max((frame.retryAfter ?? 0) * 1000, fullJitterDelay(item.attempts, this.timing, this.random));
        setTimeout(() => {
          if (this.outbox.get(item.clientMessageId) === item && item.status === 'pending') this.transmit(item);
        }, delay);
      } else {
        item.status = 'failed';
        item.error = frame.message || frame.code;
        this.emitOutbox();
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
    if (frame.action === 'joinRoom' && frame.roomId && this.rooms.has(frame.roomId)) {
      if (!frame.retryable) this.rooms.delete(frame.roomId);
      this.emit('roomError', { roomId: frame.roomId, code: frame.code, message: frame.message });
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
    this.rooms.set(roomId, { lastSeq: null, joined: false });
    if (this.state === ConnectionState.LIVE) this.sendJoin(roomId, null);
  }

  leaveRoom(roomId) {
    if (!this.rooms.delete(roomId)) return;
    if (this.state === ConnectionState.LIVE) this.rawSend({ action: 'leaveRoom', roomId });
  }

  /** Forget what was received for a room and load its latest page again. */
  reloadRoom(roomId) {
    const room = this.rooms.get(roomId);
    if (!room) return;
    room.lastSeq = null;
    room.joined = false;
    if (this.state === ConnectionState.LIVE) this.sendJoin(roomId, null);
  }

  /** Queue a message; it is sent now if the room is live, else once it is. */
  send(roomId, text) {
    const item = {
      clientMessageId: newClientMessageId(),
      roomId,
      text,
      status: 'pending',
      attempts: 0,
      createdAt: Date.now(),
    };
    this.outbox.set(item.clientMessageId, item);
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
    this.emitOutbox();
    if (this.rooms.get(item.roomId)?.joined && this.state === ConnectionState.LIVE) this.transmit(item);
  }

  /** Report a message to the moderators; answered by a `reported` event (or an error). */
  reportMessage(roomId, messageId, reason) {
    return this.rawSend({ action: 'reportMessage', roomId, messageId, reason: String(reason).slice(0, 500) });
  }

  discard(clientMessageId) {
    if (this.outbox.delete(clientMessageId)) this.emitOutbox();
  }

  transmit(item) {
    if (item.attempts >= MAX_SEND_ATTEMPTS) {
      item.status = 'failed';
      item.error = 'could not be sent';
      this.emitOutbox();
      return;
    }
    const sent = this.rawSend({
      action: 'sendMessage',
      roomId: item.roomId,
      message: item.text,
      clientMessageId: item.clientMessageId,
    });
    if (sent) item.attempts += 1;
  }

  flushOutbox(roomId) {
    for (const item of this.outbox.values()) {
      if (item.roomId === roomId && item.status === 'pending') this.transmit(item);
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
        this.outbox.delete(item.clientMessageId);
        changed = true;
      }
    }
    if (changed) this.emitOutbox();
  }

  emitOutbox() {
    this.emit(
      'outbox',
      [...this.outbox.values()].map(({ clientMessageId, roomId, text, status, error, seq, createdAt }) => ({
        clientMessageId,
        roomId,
        text,
        status,
        error,
        seq,
        createdAt,
      })),
    );
  }

  /**
   * Older messages: resolves with {messages, hasMore}; rejects if the socket drops first.
   * Without a limit the server's page size applies, the same as a join's latest page.
   */
  history(roomId, beforeSeq, limit) {
    return new Promise((resolve, reject) => {
      const frame = { action: 'history', roomId };
      if (beforeSeq !== null && beforeSeq !== undefined) frame.beforeSeq = beforeSeq;
      if (limit !== undefined) frame.limit = limit;
      if (this.state !== ConnectionState.LIVE || !this.rawSend(frame)) {
        reject(new Error('not connected'));
        return;
      }
      if (!this.historyWaiters.has(roomId)) this.historyWaiters.set(roomId, []);
      this.historyWaiters.get(roomId).push({ resolve, reject });
    });
  }

  failHistoryWaiters(reason) {
    for (const waiters of this.historyWaiters.values()) {
      for (const waiter of waiters) waiter.reject(new Error(reason));
    }
    this.historyWaiters.clear();
  }
}

function messageOf(frame) {
  return {
    roomId: frame.roomId,
    messageId: frame.messageId,
    seq: frame.seq,
    userId: frame.userId,
    username: frame.username,
    message: frame.message,
    timestamp: frame.timestamp,
    clientMessageId: frame.clientMessageId ?? null,
    removed: frame.removed === true,
  };
}
