/**
 * The protocol client (static/chat/core/client.js) beyond the socket basics in
 * websocket.test.js: room state through a gap, the outbox across a reload, the backoff cap,
 * reconnecting when the user is back.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { FakeSocket, liveInGeneral, message, payload, record, settle as settleTimers } from './test/fakeSocket.js';
import {
  ChatConnection,
  ConnectionState,
  DEFAULT_TIMING,
  clearOutboxes,
  fullJitterDelay,
  localOutboxStore,
  watchBrowser,
} from './websocket.js';

const URL = 'ws://chat.test/ws/';

/** localStorage as the browser has it, in memory. */
class MemoryStorage {
  constructor() {
    this.map = new Map();
  }
  get length() {
    return this.map.size;
  }
  key(i) {
    return [...this.map.keys()][i] ?? null;
  }
  getItem(key) {
    return this.map.has(key) ? this.map.get(key) : null;
  }
  setItem(key, value) {
    this.map.set(key, String(value));
  }
  removeItem(key) {
    this.map.delete(key);
  }
}

const settle = () => settleTimers(vi);
const joinGeneral = (conn, lastSeq = 2) => liveInGeneral(conn, vi, lastSeq);

function connection(options = {}) {
  return new ChatConnection({ url: URL, WebSocket: FakeSocket, random: () => 0.5, ...options });
}

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(new Date('2026-11-26T10:00:00Z'));
  FakeSocket.reset();
});

afterEach(() => {
  vi.useRealTimers();
});

describe('room state over the socket', () => {
  it('repairs a gap by rejoining from its cursor and applies the replayed events in order', async () => {
    const conn = connection();
    const rooms = record(conn, 'room');
    const socket = await joinGeneral(conn, 2);
    socket.deliver({ type: 'messageEdited', roomId: 'general', seq: 5, messageId: 'm-general-1', message: 'late', editedAt: 'x' });
    expect(socket.sentActions('joinRoom').at(-1)).toEqual({ action: 'joinRoom', roomId: 'general', lastSeq: 2 });
    expect(rooms.at(-1).room.messages[0].message).toBe('message 1'); // nothing applied past the gap
    socket.deliver({
      type: 'joined',
      roomId: 'general',
      lastSeq: 5,
      recovered: true,
      messages: [payload(message('general', 3))],
      events: [
        message('general', 3),
        { type: 'messageRemoved', roomId: 'general', seq: 4, messageId: 'm-general-2', messageSeq: 2, removedBy: 'moderator' },
        { type: 'messageEdited', roomId: 'general', seq: 5, messageId: 'm-general-1', message: 'late', editedAt: 'x' },
      ],
    });
    const room = rooms.at(-1).room;
    expect(room.lastSeq).toBe(5);
    expect(room.messages.map((m) => [m.seq, m.message, m.removed])).toEqual([
      [1, 'late', false],
      [2, '', true],
      [3, 'message 3', false],
    ]);
    // the live copy of an event the replay already brought is dropped
    const count = rooms.length;
    socket.deliver({ type: 'messageEdited', roomId: 'general', seq: 5, messageId: 'm-general-1', message: 'late', editedAt: 'x' });
    expect(rooms).toHaveLength(count);
  });

  it('adds a page of history to the room state without moving the cursor', async () => {
    const conn = connection();
    const rooms = record(conn, 'room');
    const socket = await joinGeneral(conn, 0);
    socket.deliver({ type: 'joined', roomId: 'general', lastSeq: 12, recovered: false, messages: [payload(message('general', 12))] });
    const page = conn.history('general', 12, 2);
    socket.deliver({ type: 'history', roomId: 'general', messages: [10, 11].map((n) => payload(message('general', n))), hasMore: true });
    await page;
    expect(rooms.at(-1).room).toMatchObject({ lastSeq: 12, hasMore: true });
    expect(rooms.at(-1).room.messages.map((m) => m.seq)).toEqual([10, 11, 12]);
  });
});

describe('a jump to a message far back', () => {
  /** The server's answer to a `history` request over messages 1..last: the `limit` just below beforeSeq, around aroundSeq, or just above afterSeq. */
  function serve(frame, last) {
    let seqs;
    if (frame.aroundSeq) {
      const half = Math.floor(frame.limit / 2);
      seqs = [];
      for (let s = Math.max(1, frame.aroundSeq - (frame.limit - half) + 1); s <= Math.min(last, frame.aroundSeq + half); s += 1) seqs.push(s);
    } else if (frame.afterSeq !== undefined) {
      seqs = [];
      for (let s = frame.afterSeq + 1; s <= Math.min(last, frame.afterSeq + frame.limit); s += 1) seqs.push(s);
      return {
        type: 'history',
        roomId: frame.roomId,
        messages: seqs.map((n) => payload(message('general', n))),
        hasMore: true,
        afterSeq: frame.afterSeq,
        hasNewer: seqs.length > 0 && seqs.at(-1) < last,
      };
    } else {
      seqs = [];
      for (let s = Math.max(1, frame.beforeSeq - frame.limit); s < frame.beforeSeq; s += 1) seqs.push(s);
    }
    return {
      type: 'history',
      roomId: frame.roomId,
      messages: seqs.map((n) => payload(message('general', n))),
      hasMore: seqs[0] > 1,
      ...(frame.aroundSeq ? { aroundSeq: frame.aroundSeq, hasNewer: seqs.at(-1) < last } : {}),
    };
  }

  it('loads what lies between the page around it and the live end: no message is missing', async () => {
    const conn = connection();
    const rooms = record(conn, 'room');
    const socket = await joinGeneral(conn, 0);
    const latest = Array.from({ length: 10 }, (_, i) => payload(message('general', 191 + i)));
    socket.deliver({ type: 'joined', roomId: 'general', lastSeq: 200, recovered: false, messages: latest });
    const jump = conn.historyAround('general', 40, 10, { fillPage: 50 });
    for (let asked = 0; asked < 10; asked += 1) {
      await settle();
      const sent = socket.sentActions('history');
      if (sent.length === asked) break; // done: nothing more asked
      socket.deliver(serve(sent[asked], 200));
    }
    const page = await jump;
    expect(page.messages.map((m) => m.seq)).toEqual([36, 37, 38, 39, 40, 41, 42, 43, 44, 45]);
    expect(socket.sentActions('history').map((f) => f.afterSeq ?? null)).toEqual([null, 45, 95, 145]);
    const room = rooms.at(-1).room;
    const seqs = room.messages.map((m) => m.seq);
    expect(seqs).toEqual(Array.from({ length: 165 }, (_, i) => 36 + i)); // 36..200: no hole up to the live end
    expect(room).toMatchObject({ lastSeq: 200, hasMore: true });
  });

  it('fills a gap of any length, however many pages it takes (no page budget leaves a hole)', async () => {
    const conn = connection();
    const rooms = record(conn, 'room');
    const socket = await joinGeneral(conn, 0);
    socket.deliver({ type: 'joined', roomId: 'general', lastSeq: 1000, recovered: false, messages: [payload(message('general', 1000))] });
    const jump = conn.historyAround('general', 40, 10, { fillPage: 20 });
    for (let asked = 0; asked < 100; asked += 1) {
      await settle();
      const sent = socket.sentActions('history');
      if (sent.length === asked) break;
      socket.deliver(serve(sent[asked], 1000));
    }
    await jump;
    expect(socket.sentActions('history')).toHaveLength(1 + 48); // 46..1000 in pages of 20: more than 25 of them
    const room = rooms.at(-1).room;
    expect(room.messages.map((m) => m.seq)).toEqual(Array.from({ length: 965 }, (_, i) => 36 + i)); // 36..1000
    expect(room).toMatchObject({ lastSeq: 1000, hasMore: true });
  });

  it('asks for nothing more when the page around the message reaches the live end', async () => {
    const conn = connection();
    const socket = await joinGeneral(conn, 0);
    socket.deliver({ type: 'joined', roomId: 'general', lastSeq: 20, recovered: false, messages: [payload(message('general', 20))] });
    const jump = conn.historyAround('general', 15, 10);
    await settle();
    socket.deliver(serve(socket.sentActions('history')[0], 20));
    await jump;
    await settle();
    expect(socket.sentActions('history')).toHaveLength(1);
    expect(conn.rooms.get('general').messages.map((m) => m.seq)).toEqual([11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
  });
});

describe('the outbox across a reload', () => {
  it('keeps an unacknowledged message and sends it once, with its original clientMessageId, when the page comes back', async () => {
    const storage = new MemoryStorage();
    const before = connection({ outboxStore: localOutboxStore('alice', storage) });
    const socket = await joinGeneral(before);
    socket.serverClose(1006); // offline
    const id = before.send('general', 'typed while offline');
    before.close(); // the reload

    FakeSocket.reset();
    const after = connection({ outboxStore: localOutboxStore('alice', storage) });
    expect(after.outboxItems()).toEqual([expect.objectContaining({ clientMessageId: id, text: 'typed while offline', status: 'pending' })]);
    expect(connection({ outboxStore: localOutboxStore('bob', storage) }).outboxItems()).toEqual([]); // per user
    const back = await joinGeneral(after);
    expect(back.sentActions('sendMessage')).toEqual([
      { action: 'sendMessage', roomId: 'general', message: 'typed while offline', clientMessageId: id },
    ]);
    back.deliver({ type: 'ack', roomId: 'general', clientMessageId: id, messageId: 'x', seq: 3 });
    expect(storage.length).toBe(0); // stored by the server: nothing left to keep

    // a second reload sends nothing again
    FakeSocket.reset();
    const again = await joinGeneral(connection({ outboxStore: localOutboxStore('alice', storage) }));
    expect(again.sentActions('sendMessage')).toEqual([]);
  });

  it('keeps messages of other rooms for when those rooms are opened, and forgets everything on sign-out', async () => {
    const storage = new MemoryStorage();
    const store = localOutboxStore('alice', storage);
    store.put({ clientMessageId: 'c-1', roomId: 'random', text: 'elsewhere', createdAt: 1 });
    const conn = connection({ outboxStore: store });
    const socket = await joinGeneral(conn);
    expect(socket.sentActions('sendMessage')).toEqual([]);
    conn.discard('c-1');
    expect(storage.length).toBe(0);

    store.put({ clientMessageId: 'c-2', roomId: 'general', text: 'x', createdAt: 2 });
    localOutboxStore('bob', storage).put({ clientMessageId: 'c-3', roomId: 'general', text: 'y', createdAt: 3 });
    storage.setItem('chatsite.auth', '{}');
    clearOutboxes(storage);
    expect([...storage.map.keys()]).toEqual(['chatsite.auth']);
  });
});

describe('reconnecting', () => {
  it('never waits longer than about 10 s between attempts, and spreads clients out', async () => {
    expect(DEFAULT_TIMING.backoffCapMs).toBe(10_000);
    const worst = [0, 1, 2, 3, 4, 5, 6, 10, 50].map((n) => fullJitterDelay(n, DEFAULT_TIMING, () => 0.999999));
    expect(worst).toEqual([499, 999, 1999, 3999, 7999, 9999, 9999, 9999, 9999]);
    expect(new Set([0.1, 0.4, 0.7].map((r) => fullJitterDelay(8, DEFAULT_TIMING, () => r)))).toEqual(new Set([1000, 4000, 7000]));

    // A server down for a while: the attempts keep coming at most 10 s apart.
    const conn = connection({ random: () => 0.999999 });
    const states = record(conn, 'state');
    conn.connect();
    await settle();
    for (let attempt = 0; attempt < 12; attempt += 1) {
      const socket = FakeSocket.latest();
      socket.serverClose(1006);
      const delay = states.at(-1).retryInMs;
      expect(delay).toBeLessThanOrEqual(DEFAULT_TIMING.backoffCapMs);
      await vi.advanceTimersByTimeAsync(delay);
      expect(FakeSocket.latest()).not.toBe(socket);
    }
    FakeSocket.latest().accept();
    expect(conn.state).toBe(ConnectionState.LIVE);
  });

  it('starts the backoff over once a join is answered, not when a socket merely opens', async () => {
    // A server that accepts sockets but closes them before admitting them (1011 in a
    // reconnect storm): the waits keep growing, as for a server that refuses the handshake.
    const conn = connection({ random: () => 0.999999 });
    const states = record(conn, 'state');
    conn.joinRoom('general');
    conn.connect();
    await settle();
    const waits = [];
    for (let attempt = 0; attempt < 4; attempt += 1) {
      const socket = FakeSocket.latest();
      socket.accept();
      expect(socket.sentActions('joinRoom')).toHaveLength(1);
      socket.serverClose(1011);
      waits.push(states.at(-1).retryInMs);
      await vi.advanceTimersByTimeAsync(states.at(-1).retryInMs);
    }
    expect(waits).toEqual([499, 999, 1999, 3999]);
    // Admitted at last: the join is answered, and the next blip starts from the shortest wait.
    const socket = FakeSocket.latest();
    socket.accept();
    socket.deliver({ type: 'joined', roomId: 'general', lastSeq: 0, messages: [], recovered: true });
    socket.serverClose(1006);
    expect(states.at(-1).retryInMs).toBe(499);
  });

  it('tries again at once when the tab regains focus or the browser goes online', async () => {
    const win = new EventTarget();
    win.document = new EventTarget();
    win.document.visibilityState = 'visible';
    const conn = connection({ random: () => 0.999999 });
    const unwatch = watchBrowser(conn, win);
    conn.connect();
    await settle();
    for (const event of ['focus', 'online']) {
      FakeSocket.latest().serverClose(1006);
      const count = FakeSocket.instances.length;
      win.dispatchEvent(new Event(event));
      await settle();
      expect([event, FakeSocket.instances.length]).toEqual([event, count + 1]);
    }
    FakeSocket.latest().serverClose(1006);
    win.document.dispatchEvent(new Event('visibilitychange'));
    await settle();
    expect(FakeSocket.instances).toHaveLength(4);

    // with a socket open, coming back checks it instead of opening another
    FakeSocket.latest().accept();
    win.dispatchEvent(new Event('focus'));
    expect(FakeSocket.latest().sentActions('ping')).toHaveLength(1);
    unwatch();
    FakeSocket.latest().serverClose(1006);
    win.dispatchEvent(new Event('online'));
    await settle();
    expect(FakeSocket.instances).toHaveLength(4);
  });

  it('marks a message with no ack failed after 15 s, checks the socket, and resends it on the next one', async () => {
    const conn = connection({ random: () => 0 });
    const outbox = record(conn, 'outbox');
    const first = await joinGeneral(conn);
    first.autoPong = false;
    const id = conn.send('general', 'into the void');
    await vi.advanceTimersByTimeAsync(DEFAULT_TIMING.ackTimeoutMs);
    expect(outbox.at(-1)[0]).toMatchObject({ status: 'failed', code: 'timeout' });
    expect(first.sentActions('ping')).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(DEFAULT_TIMING.pongTimeoutMs);
    expect(outbox.at(-1)[0].status).toBe('pending'); // the socket is gone: waiting for the next
    await settle();
    const second = FakeSocket.latest();
    second.accept();
    second.deliver({ type: 'joined', roomId: 'general', lastSeq: 2, messages: [], recovered: true });
    expect(second.sentActions('sendMessage').map((f) => f.clientMessageId)).toEqual([id]);
  });
});

describe('presence frames', () => {
  it('hands on a window of presence changes as one event per user, to both listeners', async () => {
    const conn = connection({ presence: true });
    const heard = record(conn, 'presence');
    const frames = [];
    conn.on('frame', (frame) => frames.push(frame));
    const socket = await joinGeneral(conn);
    socket.deliver({ type: 'presence', userId: '7', status: 'online', lastSeenAt: null });
    socket.deliver({
      type: 'presence',
      users: [
        { type: 'presence', userId: '8', status: 'away', lastSeenAt: '2026-11-26T09:59:00.000Z' },
        null,
        { type: 'presence', userId: '9', status: 'offline', lastSeenAt: '2026-11-26T09:58:00.000Z' },
      ],
    });
    expect(heard.map((p) => [p.userId, p.status])).toEqual([
      ['7', 'online'],
      ['8', 'away'],
      ['9', 'offline'],
    ]);
    const presenceFrames = frames.filter((f) => f.type === 'presence');
    expect(presenceFrames.map((f) => f.userId)).toEqual(['7', '8', '9']);
    expect(presenceFrames.every((f) => f.users === undefined)).toBe(true);
  });
});
