/**
 * The room state both UIs render (static/chat/core/rooms.js): the one cursor rule, and
 * replays that end in exactly the state `history` shows.
 */
import { describe, expect, it } from 'vitest';

import { Verdict, addHistory, classify, join, newRoom, receive, snapshot } from '../../static/chat/core/rooms.js';

const T = '2026-11-26T10:00:00.000Z';

function msg(seq, extra = {}) {
  return { type: 'message', roomId: 'general', messageId: `id-${seq}`, seq, userId: '2', username: 'bob', message: `m${seq}`, timestamp: T, ...extra };
}

/** A joined room with messages 1..n and the cursor at n. */
function joinedRoom(n) {
  const room = newRoom('general');
  join(room, { type: 'joined', roomId: 'general', lastSeq: n, messages: Array.from({ length: n }, (_, i) => msg(i + 1)) }, null);
  return room;
}

const view = (room) => room.messages.map((m) => [m.seq, m.message, m.removed]);

describe('the cursor rule', () => {
  it('drops an old seq, applies the next one and calls anything further a gap', () => {
    expect([classify(5, 4), classify(5, 5), classify(5, 6), classify(5, 7), classify(0, 1)]).toEqual([
      Verdict.DUPLICATE,
      Verdict.DUPLICATE,
      Verdict.APPLIED,
      Verdict.GAP,
      Verdict.APPLIED,
    ]);
  });

  it('applies each event once whatever its type, and reports a gap without applying it', () => {
    const room = joinedRoom(2);
    expect(receive(room, msg(2))).toBe(Verdict.DUPLICATE);
    expect(receive(room, { type: 'messageEdited', roomId: 'general', seq: 4, messageId: 'id-1', message: 'edited', editedAt: T })).toBe(
      Verdict.GAP,
    );
    expect(view(room)).toEqual([
      [1, 'm1', false],
      [2, 'm2', false],
    ]);
    expect(room.lastSeq).toBe(2);
    expect(receive(room, { type: 'messageEdited', roomId: 'general', seq: 3, messageId: 'id-1', message: 'edited', editedAt: T })).toBe(
      Verdict.APPLIED,
    );
    expect(room.messages[0]).toMatchObject({ message: 'edited', editedAt: T });
    expect(room.lastSeq).toBe(3);
  });

  it('moves the cursor over an event type it does not know and changes nothing else', () => {
    const room = joinedRoom(1);
    const before = room.messages;
    expect(receive(room, { type: 'pollClosed', roomId: 'general', seq: 2, pollId: 'p' })).toBe(Verdict.APPLIED);
    expect(room.lastSeq).toBe(2);
    expect(room.messages).toBe(before);
    expect(receive(room, msg(3))).toBe(Verdict.APPLIED); // no gap behind the unknown event
  });

  it('applies a v1 removal (no messageSeq) by messageId and leaves the cursor alone', () => {
    const room = joinedRoom(3);
    expect(receive(room, { type: 'messageRemoved', roomId: 'general', messageId: 'id-2', seq: 2 })).toBe(Verdict.APPLIED);
    expect(room.lastSeq).toBe(3);
    expect(view(room)[1]).toEqual([2, '', true]);
    // v2: the removal takes a seq of its own
    expect(
      receive(room, { type: 'messageRemoved', roomId: 'general', seq: 4, messageId: 'id-3', messageSeq: 3, removedBy: 'author' }),
    ).toBe(Verdict.APPLIED);
    expect(room.lastSeq).toBe(4);
    expect(room.messages[2]).toMatchObject({ removed: true, removedBy: 'author', message: '' });
  });

  it('ignores everything before the first joined: that answer covers it', () => {
    const room = newRoom('general');
    expect(receive(room, msg(1))).toBe(Verdict.IGNORED);
    expect(room.messages).toEqual([]);
  });

  it('shows each message once and in seq order, whatever order live, replay and scroll-back deliver them in', () => {
    const room = newRoom('general');
    join(room, { type: 'joined', roomId: 'general', lastSeq: 4, messages: [msg(3), msg(4)] }, null);
    expect(snapshot(room).hasMore).toBe(true);
    expect(receive(room, msg(6))).toBe(Verdict.GAP);
    join(room, { type: 'joined', roomId: 'general', lastSeq: 6, recovered: true, messages: [msg(4), msg(5), msg(6)] }, 4);
    addHistory(room, [msg(1), msg(2), msg(3, { message: 'stale copy' })], false);
    expect(view(room).map(([seq, text]) => [seq, text])).toEqual([
      [1, 'm1'],
      [2, 'm2'],
      [3, 'm3'],
      [4, 'm4'],
      [5, 'm5'],
      [6, 'm6'],
    ]);
    expect(snapshot(room)).toMatchObject({ lastSeq: 6, hasMore: false, loaded: true });
  });

  it('replaces what it showed when the server could not replay the gap', () => {
    const room = joinedRoom(3);
    join(room, { type: 'joined', roomId: 'general', lastSeq: 901, recovered: false, messages: [msg(900), msg(901)] }, 3);
    expect(room.messages.map((m) => m.seq)).toEqual([900, 901]);
    expect(room.lastSeq).toBe(901);
    expect(room.hasMore).toBe(true);
  });
});

describe('resume after edits and removals', () => {
  // Seqs 1-3 are messages; while a client is away: 4 edits 1, 5 removes 2 (by its author),
  // 6 is a new message, 7 reacts to it, 8 adds a member, 9 changes the settings.
  const events = [
    { type: 'messageEdited', roomId: 'general', seq: 4, messageId: 'id-1', message: 'm1, edited', editedAt: T },
    { type: 'messageRemoved', roomId: 'general', seq: 5, messageId: 'id-2', messageSeq: 2, removedBy: 'author' },
    msg(6),
    { type: 'reactions', roomId: 'general', seq: 7, messageId: 'id-6', reactions: [{ emoji: '👍', count: 1, userIds: ['3'] }] },
    { type: 'memberAdded', roomId: 'general', seq: 8, userId: '3', username: 'carol' },
    { type: 'roomUpdated', roomId: 'general', seq: 9, room: { slowModeSeconds: 5 } },
  ];
  // What `history` (and a fresh join) shows afterwards: each message in its current state.
  const current = [
    msg(1, { message: 'm1, edited', editedAt: T }),
    msg(2, { message: '', removed: true, removedBy: 'author' }),
    msg(3),
    msg(6, { reactions: [{ emoji: '👍', count: 1, userIds: ['3'] }] }),
  ];

  function fromHistory() {
    const room = newRoom('general');
    join(room, { type: 'joined', roomId: 'general', lastSeq: 9, messages: current, room: { slowModeSeconds: 5 } }, null);
    return room;
  }

  it('reaches the state history shows from the events of joined.events', () => {
    const room = joinedRoom(3);
    join(room, { type: 'joined', roomId: 'general', lastSeq: 9, recovered: true, messages: [msg(6)], events }, 3);
    const expected = fromHistory();
    expect(room.messages).toEqual(expected.messages);
    expect(room.settings).toEqual(expected.settings);
    expect(room.lastSeq).toBe(9);
    expect(snapshot(room).members).toEqual([{ userId: '3', username: 'carol' }]);
  });

  it('reaches the same state from the same events received live, in any split between replay and live', () => {
    for (let split = 0; split <= events.length; split += 1) {
      const room = joinedRoom(3);
      join(room, { type: 'joined', roomId: 'general', lastSeq: 3 + split, recovered: true, events: events.slice(0, split) }, 3);
      // the live feed overlaps the replay: duplicates are dropped
      for (const event of events.slice(Math.max(0, split - 1))) receive(room, event);
      expect([split, room.messages]).toEqual([split, fromHistory().messages]);
      expect(room.lastSeq).toBe(9);
    }
  });
});
