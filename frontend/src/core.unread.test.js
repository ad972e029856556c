/**
 * Read state in the client core (static/chat/core/unread.js): coalesced marks, counts kept
 * forward only, the divider's place and the "99+" badge.
 */
import { describe, expect, it } from 'vitest';

import {
  COUNT_WINDOW,
  ReadState,
  badge,
  firstUnreadSeq,
  mentionsUser,
  pageSeen,
  seenUpTo,
} from '../../static/chat/core/unread.js';

class FakeConnection {
  constructor() {
    this.listeners = new Map();
    this.sent = [];
  }
  on(name, fn) {
    if (!this.listeners.has(name)) this.listeners.set(name, new Set());
    this.listeners.get(name).add(fn);
    return () => this.listeners.get(name).delete(fn);
  }
  emit(name, value) {
    for (const fn of this.listeners.get(name) ?? []) fn(value);
  }
  rawSend(frame) {
    this.sent.push(frame);
    return true;
  }
}

function clock() {
  let now = 0;
  const pending = [];
  return {
    now: () => now,
    timers: {
      setTimeout(fn, ms) {
        pending.push({ at: now + ms, fn });
        return pending.length;
      },
    },
    advance(ms) {
      now += ms;
      for (const t of pending.splice(0).sort((a, b) => a.at - b.at)) {
        if (t.at <= now) t.fn();
        else pending.push(t);
      }
    },
  };
}

describe('ReadState', () => {
  it('asks for every count on connect and applies readState frames', () => {
    const conn = new FakeConnection();
    const reads = new ReadState(conn, { userId: '1' });
    conn.emit('state', { state: 'live' });
    expect(conn.sent).toEqual([{ action: 'readStates' }]);
    conn.emit('readStates', { rooms: [{ roomId: 'a', lastReadSeq: 2, unread: 3, mentions: 1 }] });
    expect(reads.state('a')).toEqual({ lastReadSeq: 2, unread: 3, mentions: 1 });
    expect(reads.totalUnread()).toBe(3);
  });

  it('sends at most one markRead per room per second, with the highest seq', () => {
    const conn = new FakeConnection();
    const c = clock();
    const reads = new ReadState(conn, { userId: '1', now: c.now, timers: c.timers });
    conn.emit('readStates', { rooms: [{ roomId: 'a', lastReadSeq: 0, unread: 9, mentions: 0 }] });
    reads.markRead('a', 3);
    reads.markRead('a', 5);
    reads.markRead('a', 7);
    reads.markRead('a', 6);
    expect(conn.sent).toEqual([{ action: 'markRead', roomId: 'a', seq: 3 }]);
    expect(reads.state('a').unread).toBe(0);
    c.advance(999);
    expect(conn.sent).toHaveLength(1);
    c.advance(1);
    expect(conn.sent.at(-1)).toEqual({ action: 'markRead', roomId: 'a', seq: 7 });
    reads.markRead('a', 7);
    c.advance(5000);
    expect(conn.sent).toHaveLength(2); // nothing new to say
  });

  it('counts messages of others after the mark, mentions apart', () => {
    const conn = new FakeConnection();
    const reads = new ReadState(conn, { userId: '1' });
    conn.emit('readStates', { rooms: [{ roomId: 'a', lastReadSeq: 4, unread: 0, mentions: 0 }] });
    conn.emit('message', { roomId: 'a', seq: 5, userId: '2', mentions: ['1'] });
    conn.emit('message', { roomId: 'a', seq: 6, userId: '1', mentions: [] });
    conn.emit('message', { roomId: 'a', seq: 4, userId: '2', mentions: [] });
    expect(reads.state('a')).toEqual({ lastReadSeq: 4, unread: 1, mentions: 1 });
  });

  it('shows "Seen by" under the last message each other reader has read', () => {
    const conn = new FakeConnection();
    const reads = new ReadState(conn, { userId: '1' });
    conn.emit('receipts', {
      roomId: 'dm',
      readers: [
        { userId: '2', username: 'bob', lastReadSeq: 3 },
        { userId: '1', username: 'me', lastReadSeq: 9 },
      ],
    });
    const seen = reads.seenBy('dm', [{ seq: 1 }, { seq: 2 }, { seq: 4 }]);
    expect([...seen]).toEqual([[2, ['bob']]]);
  });
});

describe('helpers', () => {
  it('reads 100 as 99+', () => {
    expect(COUNT_WINDOW).toBe(100);
    expect([badge(0), badge(5), badge(99), badge(100)]).toEqual(['', '5', '99', '99+']);
  });

  it('puts the divider at the first unread message of someone else', () => {
    const messages = [
      { seq: 3, userId: '2' },
      { seq: 4, userId: '1' },
      { seq: 5, userId: '2', removed: true },
      { seq: 6, userId: '2' },
    ];
    expect(firstUnreadSeq(messages, 3, '1')).toBe(6);
    expect(firstUnreadSeq(messages, null, '1')).toBe(null);
    expect(mentionsUser({ mentions: ['7'] }, 7)).toBe(true);
  });
});

describe('what is seen is what is marked read', () => {
  const messages = [1, 2, 3, 4, 5].map((seq) => ({ seq, messageId: `m${seq}`, userId: '2' }));
  // Lines 100 px tall from y = 0; the view's bottom edge at 250 shows lines 1 and 2 whole.
  const bottomOf = (m) => m.seq * 100;

  it('is the lowest line on screen when scrolled up, the room\'s last at the bottom', () => {
    expect(seenUpTo(messages, { atBottom: false, viewBottom: 250, bottomOf })).toBe(2);
    expect(seenUpTo(messages, { atBottom: true, lastSeq: 9, viewBottom: 250, bottomOf })).toBe(9);
    expect(seenUpTo(messages, { atBottom: false, viewBottom: 50, bottomOf })).toBeNull();
    expect(seenUpTo([], { atBottom: true, viewBottom: 250, bottomOf })).toBeNull();
  });

  it('needs the tab visible and focused', () => {
    expect(pageSeen({ visibilityState: 'visible', hasFocus: () => true })).toBe(true);
    expect(pageSeen({ visibilityState: 'visible', hasFocus: () => false })).toBe(false);
    expect(pageSeen({ visibilityState: 'hidden', hasFocus: () => true })).toBe(false);
  });

  it('markSeen sends markRead for what is on screen, and nothing for a hidden tab', () => {
    const connection = new FakeConnection();
    const reads = new ReadState(connection, { userId: '1' });
    const view = { atBottom: false, viewBottom: 250, bottomOf };
    reads.markSeen('r', messages, view, { visibilityState: 'hidden', hasFocus: () => true });
    expect(connection.sent).toEqual([]);
    reads.markSeen('r', messages, view, { visibilityState: 'visible', hasFocus: () => true });
    expect(connection.sent).toEqual([{ action: 'markRead', roomId: 'r', seq: 2 }]);
  });
});
