import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { FakeSocket, message, payload } from './test/fakeSocket.js';
import {
  ChatConnection,
  ConnectionState,
  DEFAULT_TIMING,
  MAX_SEND_ATTEMPTS,
  fullJitterDelay,
  parseExpiresAt,
  tokenExpiry,
} from './websocket.js';

const URL = 'ws://chat.test/ws/';

function record(conn, name) {
  const seen = [];
  conn.on(name, (value) => seen.push(value));
  return seen;
}

/** Let awaited promises inside the connection run. */
async function settle() {
  await vi.advanceTimersByTimeAsync(1);
}

function sessionConnection(options = {}) {
  return new ChatConnection({ url: URL, WebSocket: FakeSocket, random: () => 0.5, ...options });
}

function jwtExpiringAt(ms) {
  const body = btoa(JSON.stringify({ exp: Math.floor(ms / 1000) }))
    .replace(/\+/g, '-')
    .replace(/\//g, '_')
    .replace(/=+$/, '');
  return `eyJhbGciOiJSUzI1NiJ9.${body}.sig`;
}

/** Open a session-cookie connection joined to `general` with messages 1..lastSeq. */
async function liveInGeneral(conn, lastSeq = 3) {
  conn.joinRoom('general');
  conn.connect();
  await settle();
  const socket = FakeSocket.latest();
  socket.accept();
  const messages = Array.from({ length: lastSeq }, (_, i) => payload(message('general', i + 1)));
  socket.deliver({ type: 'joined', roomId: 'general', lastSeq, messages, recovered: true });
  return socket;
}

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(new Date('2026-11-26T10:00:00Z'));
  FakeSocket.reset();
});

afterEach(() => {
  vi.useRealTimers();
});

describe('backoff', () => {
  it('draws each delay uniformly below a ceiling that doubles up to the cap', () => {
    const timing = { backoffBaseMs: 500, backoffCapMs: 30_000 };
    const ceilings = [0, 1, 2, 3, 4, 5, 6, 7, 20].map((n) => fullJitterDelay(n, timing, () => 0.999999));
    expect(ceilings).toEqual([499, 999, 1999, 3999, 7999, 15999, 29999, 29999, 29999]);
    expect(fullJitterDelay(6, timing, () => 0)).toBe(0);
    expect(fullJitterDelay(3, timing, () => 0.5)).toBe(2000);
  });

  it('waits a jittered, growing delay between attempts and resets once live', async () => {
    const draws = [0.9, 0.9, 0.9, 0.1];
    const conn = sessionConnection({ random: () => draws.shift() ?? 0.5 });
    const states = record(conn, 'state');
    conn.connect();
    await settle();
    FakeSocket.latest().serverClose(1006);
    expect(states.at(-1)).toEqual({ state: 'offline', retryInMs: 450, code: 1006 });
    expect(FakeSocket.instances).toHaveLength(1);

    await vi.advanceTimersByTimeAsync(449);
    expect(FakeSocket.instances).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(FakeSocket.instances).toHaveLength(2);

    FakeSocket.latest().serverClose(1006);
    expect(states.at(-1).retryInMs).toBe(900);
    await vi.advanceTimersByTimeAsync(900);
    FakeSocket.latest().serverClose(1011);
    expect(states.at(-1).retryInMs).toBe(1800);
    await vi.advanceTimersByTimeAsync(1800);

    FakeSocket.latest().accept();
    expect(conn.state).toBe(ConnectionState.LIVE);
    FakeSocket.latest().serverClose(1001);
    // attempt 0 again: the ceiling is back to the base delay
    expect(states.at(-1).retryInMs).toBe(50);
  });

  it('never reconnects faster than the floor after a 4429', async () => {
    const conn = sessionConnection({ random: () => 0 });
    const states = record(conn, 'state');
    conn.connect();
    await settle();
    FakeSocket.latest().serverClose(4429);
    expect(states.at(-1).retryInMs).toBe(DEFAULT_TIMING.tooManyRequestsFloorMs);
  });

  it('stops for good on 4403 and after close()', async () => {
    const conn = sessionConnection();
    conn.connect();
    await settle();
    FakeSocket.latest().serverClose(4403);
    expect(conn.state).toBe(ConnectionState.FORBIDDEN);
    await vi.advanceTimersByTimeAsync(120_000);
    expect(FakeSocket.instances).toHaveLength(1);

    const other = sessionConnection();
    other.connect();
    await settle();
    FakeSocket.latest().accept();
    other.close();
    expect(other.state).toBe(ConnectionState.CLOSED);
    expect(FakeSocket.latest().closedByClient).toBe(1000);
    await vi.advanceTimersByTimeAsync(120_000);
    expect(FakeSocket.instances).toHaveLength(2);
  });

  it('reconnects at once when asked during a backoff wait', async () => {
    const conn = sessionConnection({ random: () => 0.99 });
    conn.connect();
    await settle();
    FakeSocket.latest().serverClose(1006);
    expect(FakeSocket.instances).toHaveLength(1);
    conn.reconnectNow();
    await settle();
    expect(FakeSocket.instances).toHaveLength(2);
    // the abandoned timer does not open a third socket
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeSocket.instances).toHaveLength(2);
  });
});

describe('heartbeat', () => {
  it('pings every 25 s and keeps a socket that answers', async () => {
    const conn = sessionConnection();
    const socket = await liveInGeneral(conn);
    await vi.advanceTimersByTimeAsync(24_999);
    expect(socket.sentActions('ping')).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(socket.sentActions('ping')).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(25_000);
    expect(socket.sentActions('ping')).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(20_000);
    expect(conn.state).toBe(ConnectionState.LIVE);
    expect(socket.closedByClient).toBeNull();
  });

  it('drops a socket that stops answering and reconnects', async () => {
    const conn = sessionConnection({ random: () => 0 });
    const socket = await liveInGeneral(conn);
    socket.autoPong = false;
    await vi.advanceTimersByTimeAsync(25_000 + 9_999);
    expect(socket.closedByClient).toBeNull();
    await vi.advanceTimersByTimeAsync(1);
    expect(socket.closedByClient).not.toBeNull();
    await settle();
    expect(FakeSocket.instances).toHaveLength(2);
  });
});

describe('resume', () => {
  it('rejoins every room with its last seq and shows only what was missed', async () => {
    const conn = sessionConnection({ random: () => 0 });
    const joined = record(conn, 'joined');
    const live = record(conn, 'message');
    const first = await liveInGeneral(conn, 3);
    conn.joinRoom('random');
    first.deliver({ type: 'joined', roomId: 'random', lastSeq: 0, messages: [], recovered: true });
    first.deliver(message('general', 4));
    first.deliver(message('random', 1));
    expect(live.map((m) => [m.roomId, m.seq])).toEqual([
      ['general', 4],
      ['random', 1],
    ]);

    first.serverClose(1001);
    await settle();
    const second = FakeSocket.latest();
    expect(second).not.toBe(first);
    second.accept();
    expect(second.sentActions('joinRoom')).toEqual([
      { action: 'joinRoom', roomId: 'general', lastSeq: 4 },
      { action: 'joinRoom', roomId: 'random', lastSeq: 1 },
    ]);
    second.deliver({
      type: 'joined',
      roomId: 'general',
      lastSeq: 6,
      messages: [payload(message('general', 5)), payload(message('general', 6))],
      recovered: true,
    });
    expect(joined.at(-1)).toMatchObject({ roomId: 'general', lastSeq: 6, reset: false });
    expect(joined.at(-1).messages.map((m) => m.seq)).toEqual([5, 6]);
    // a re-broadcast of something already replayed is dropped
    second.deliver(message('general', 6));
    second.deliver(message('general', 7));
    expect(live.map((m) => m.seq)).toEqual([4, 1, 7]);
  });

  it('resets a room when the server could not replay the gap', async () => {
    const conn = sessionConnection({ random: () => 0 });
    const joined = record(conn, 'joined');
    const first = await liveInGeneral(conn, 3);
    first.serverClose(1006);
    await settle();
    const second = FakeSocket.latest();
    second.accept();
    const latest = [payload(message('general', 900)), payload(message('general', 901))];
    second.deliver({ type: 'joined', roomId: 'general', lastSeq: 901, messages: latest, recovered: false });
    expect(joined.at(-1)).toMatchObject({ roomId: 'general', lastSeq: 901, reset: true });
    expect(joined.at(-1).messages.map((m) => m.seq)).toEqual([900, 901]);
    expect(conn.rooms.get('general').lastSeq).toBe(901);
  });

  it('asks for a replay instead of showing a hole in the live feed', async () => {
    const conn = sessionConnection();
    const live = record(conn, 'message');
    const socket = await liveInGeneral(conn, 3);
    socket.deliver(message('general', 6));
    expect(live).toEqual([]);
    expect(socket.sentActions('joinRoom').at(-1)).toEqual({ action: 'joinRoom', roomId: 'general', lastSeq: 3 });
    socket.deliver({
      type: 'joined',
      roomId: 'general',
      lastSeq: 6,
      messages: [4, 5, 6].map((n) => payload(message('general', n))),
      recovered: true,
    });
    socket.deliver(message('general', 7));
    expect(live.map((m) => m.seq)).toEqual([7]);
  });

  it('treats the first join of a room as a fresh page, not a replay', async () => {
    const conn = sessionConnection();
    const joined = record(conn, 'joined');
    const socket = await liveInGeneral(conn, 2);
    expect(socket.sentActions('joinRoom')).toEqual([{ action: 'joinRoom', roomId: 'general' }]);
    expect(joined[0]).toMatchObject({ reset: true, lastSeq: 2 });
  });

  it('answers a history request and fails it when the socket drops', async () => {
    const conn = sessionConnection();
    const socket = await liveInGeneral(conn, 3);
    const page = conn.history('general', 1, 50);
    expect(socket.sentActions('history')).toEqual([{ action: 'history', roomId: 'general', beforeSeq: 1, limit: 50 }]);
    expect(conn.history('general', 1) && socket.sentActions('history').at(-1)).toEqual({
      action: 'history',
      roomId: 'general',
      beforeSeq: 1,
    });
    socket.deliver({ type: 'history', roomId: 'general', messages: [], hasMore: false });
    socket.deliver({ type: 'history', roomId: 'general', messages: [], hasMore: false });
    await expect(page).resolves.toEqual({ roomId: 'general', messages: [], hasMore: false });

    const lost = conn.history('general', 1, 50);
    socket.serverClose(1006);
    await expect(lost).rejects.toThrow('connection lost');
    await expect(conn.history('general', 1)).rejects.toThrow('not connected');
  });
});

describe('send queue', () => {
  it('holds a message typed while offline and sends it once the room is back', async () => {
    const conn = sessionConnection({ random: () => 0 });
    const outbox = record(conn, 'outbox');
    const first = await liveInGeneral(conn, 3);
    first.serverClose(1006);

    const id = conn.send('general', 'typed offline');
    expect(outbox.at(-1)).toEqual([expect.objectContaining({ clientMessageId: id, status: 'pending' })]);

    await settle();
    const second = FakeSocket.latest();
    second.accept();
    expect(second.sentActions('sendMessage')).toEqual([]); // not before the room is rejoined
    second.deliver({ type: 'joined', roomId: 'general', lastSeq: 3, messages: [], recovered: true });
    expect(second.sentActions('sendMessage')).toEqual([
      { action: 'sendMessage', roomId: 'general', message: 'typed offline', clientMessageId: id },
    ]);

    second.deliver({ type: 'ack', roomId: 'general', clientMessageId: id, messageId: 'x', seq: 4 });
    expect(outbox.at(-1)).toEqual([expect.objectContaining({ clientMessageId: id, status: 'sent', seq: 4 })]);
    second.deliver(message('general', 4, { clientMessageId: id, username: 'alice', message: 'typed offline' }));
    expect(outbox.at(-1)).toEqual([]);
  });

  it('resends an unacknowledged message after a reconnect with the same clientMessageId', async () => {
    const conn = sessionConnection({ random: () => 0 });
    const first = await liveInGeneral(conn, 3);
    const id = conn.send('general', 'hello');
    expect(first.sentActions('sendMessage')).toHaveLength(1);
    first.serverClose(1006);
    await settle();
    const second = FakeSocket.latest();
    second.accept();
    // the server had stored it before the socket died: the replay carries it
    second.deliver({
      type: 'joined',
      roomId: 'general',
      lastSeq: 4,
      messages: [payload(message('general', 4, { clientMessageId: id }))],
      recovered: true,
    });
    expect(conn.outbox.size).toBe(0);
    expect(second.sentActions('sendMessage')).toEqual([]);

    const id2 = conn.send('general', 'again');
    second.serverClose(1006);
    await settle();
    const third = FakeSocket.latest();
    third.accept();
    third.deliver({ type: 'joined', roomId: 'general', lastSeq: 4, messages: [], recovered: true });
    expect(third.sentActions('sendMessage').map((f) => f.clientMessageId)).toEqual([id2]);
  });

  it('marks a refused message failed and retries it on request', async () => {
    const conn = sessionConnection();
    const outbox = record(conn, 'outbox');
    const socket = await liveInGeneral(conn);
    const id = conn.send('general', 'x'.repeat(5000));
    socket.deliver({
      type: 'error',
      code: 'message_too_long',
      message: 'message is longer than 4000 characters',
      action: 'sendMessage',
      clientMessageId: id,
    });
    expect(outbox.at(-1)).toEqual([
      expect.objectContaining({ status: 'failed', error: 'message is longer than 4000 characters' }),
    ]);
    conn.retry(id);
    expect(outbox.at(-1)[0].status).toBe('pending');
    expect(socket.sentActions('sendMessage').map((f) => f.clientMessageId)).toEqual([id, id]);
  });

  it('retries a retryable error after the advised delay, then gives up', async () => {
    const conn = sessionConnection({ random: () => 0 });
    const socket = await liveInGeneral(conn);
    const id = conn.send('general', 'hi');
    const refuse = () =>
      socket.deliver({
        type: 'error',
        code: 'storage_unavailable',
        message: 'storage is unavailable, retry shortly',
        action: 'sendMessage',
        clientMessageId: id,
        retryable: true,
        retryAfter: 1,
      });
    for (let attempt = 1; attempt < MAX_SEND_ATTEMPTS; attempt += 1) {
      refuse();
      await vi.advanceTimersByTimeAsync(999);
      expect(socket.sentActions('sendMessage')).toHaveLength(attempt);
      await vi.advanceTimersByTimeAsync(1);
      expect(socket.sentActions('sendMessage')).toHaveLength(attempt + 1);
    }
    refuse();
    expect(conn.outbox.get(id).status).toBe('failed');
  });
});

describe('token authentication and refresh', () => {
  function tokenAuth(tokens) {
    const issued = [...tokens];
    let current = issued.shift();
    return {
      getToken: vi.fn(async () => current),
      refresh: vi.fn(async () => {
        current = issued.shift() ?? null;
        return current;
      }),
    };
  }

  it('authenticates in the first frame and sends nothing else before the answer', async () => {
    const auth = tokenAuth([{ token: 't1', expiresAt: Date.now() / 1000 + 3600 }]);
    const conn = new ChatConnection({ url: URL, WebSocket: FakeSocket, auth });
    const who = record(conn, 'authenticated');
    conn.joinRoom('general');
    conn.connect();
    await settle();
    const socket = FakeSocket.latest();
    socket.accept();
    expect(socket.frames).toEqual([{ action: 'authenticate', token: 't1' }]);
    expect(conn.state).toBe(ConnectionState.CONNECTING);
    socket.deliver({ type: 'authenticated', userId: '1', username: 'alice', expiresAt: Date.now() / 1000 + 3600 });
    expect(conn.state).toBe(ConnectionState.LIVE);
    expect(who).toEqual([{ userId: '1', username: 'alice', moderator: false, expiresAt: Date.now() + 3_600_000 }]);
    expect(socket.frames.slice(1)).toEqual([{ action: 'joinRoom', roomId: 'general' }]);
  });

  it('refreshes the token in-band before it expires, keeping the socket and its rooms', async () => {
    const now = Date.now();
    const auth = tokenAuth([
      { token: 't1', expiresAt: (now + 300_000) / 1000 },
      { token: 't2', expiresAt: (now + 600_000) / 1000 },
    ]);
    const conn = new ChatConnection({ url: URL, WebSocket: FakeSocket, auth });
    conn.joinRoom('general');
    conn.connect();
    await settle();
    const socket = FakeSocket.latest();
    socket.accept();
    socket.deliver({ type: 'authenticated', userId: '1', username: 'alice', expiresAt: (now + 300_000) / 1000 });
    socket.deliver({ type: 'joined', roomId: 'general', lastSeq: 0, messages: [], recovered: true });

    await vi.advanceTimersByTimeAsync(239_000);
    expect(auth.refresh).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(auth.refresh).toHaveBeenCalledTimes(1);
    expect(socket.sentActions('refreshToken')).toEqual([{ action: 'refreshToken', token: 't2' }]);
    socket.deliver({ type: 'authenticated', userId: '1', username: 'alice', expiresAt: (now + 600_000) / 1000 });

    expect(FakeSocket.instances).toHaveLength(1);
    expect(socket.closedByClient).toBeNull();
    expect(socket.sentActions('joinRoom')).toHaveLength(1);
    expect(conn.state).toBe(ConnectionState.LIVE);
  });

  it('refreshes a token that is about to expire before connecting', async () => {
    const auth = tokenAuth([{ token: jwtExpiringAt(Date.now() + 5_000) }, { token: 'fresh' }]);
    const conn = new ChatConnection({ url: URL, WebSocket: FakeSocket, auth });
    conn.connect();
    await settle();
    FakeSocket.latest().accept();
    expect(FakeSocket.latest().frames[0]).toEqual({ action: 'authenticate', token: 'fresh' });
  });

  it('after a 4401 refreshes once and reconnects, then asks the user to sign in', async () => {
    const auth = tokenAuth([{ token: 'stale' }, { token: 'fresh' }]);
    const conn = new ChatConnection({ url: URL, WebSocket: FakeSocket, auth });
    const states = record(conn, 'state');
    conn.connect();
    await settle();
    FakeSocket.latest().accept();
    FakeSocket.latest().serverClose(4401);
    await settle();
    expect(auth.refresh).toHaveBeenCalledTimes(1);
    expect(FakeSocket.instances).toHaveLength(2);
    FakeSocket.latest().accept();
    expect(FakeSocket.latest().frames[0]).toEqual({ action: 'authenticate', token: 'fresh' });
    FakeSocket.latest().serverClose(4401);
    await settle();
    expect(states.at(-1).state).toBe(ConnectionState.UNAUTHORIZED);
    await vi.advanceTimersByTimeAsync(120_000);
    expect(FakeSocket.instances).toHaveLength(2);
  });

  it('gives up waiting for an answer to authenticate', async () => {
    const auth = tokenAuth([{ token: 't1' }]);
    const conn = new ChatConnection({ url: URL, WebSocket: FakeSocket, auth, random: () => 0 });
    conn.connect();
    await settle();
    const socket = FakeSocket.latest();
    socket.accept();
    await vi.advanceTimersByTimeAsync(DEFAULT_TIMING.authTimeoutMs);
    expect(socket.closedByClient).not.toBeNull();
    await settle();
    expect(FakeSocket.instances).toHaveLength(2);
  });

  it('with no stored token asks the user to sign in without opening a socket', async () => {
    const conn = new ChatConnection({
      url: URL,
      WebSocket: FakeSocket,
      auth: { getToken: async () => null, refresh: async () => null },
    });
    conn.connect();
    await settle();
    expect(conn.state).toBe(ConnectionState.UNAUTHORIZED);
    expect(FakeSocket.instances).toHaveLength(0);
  });
});

describe('expiry parsing', () => {
  it('reads epoch seconds, epoch milliseconds, ISO 8601 and a JWT exp', () => {
    expect(parseExpiresAt(1_800_000_000)).toBe(1_800_000_000_000);
    expect(parseExpiresAt(1_800_000_000_000)).toBe(1_800_000_000_000);
    expect(parseExpiresAt('2027-01-15T08:00:00Z')).toBe(Date.parse('2027-01-15T08:00:00Z'));
    expect(parseExpiresAt('soon')).toBeNull();
    expect(tokenExpiry(jwtExpiringAt(1_800_000_000_000))).toBe(1_800_000_000_000);
    expect(tokenExpiry('not-a-jwt')).toBeNull();
  });
});
