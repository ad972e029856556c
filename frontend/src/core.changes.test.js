import { describe, expect, it } from 'vitest';

import { canEdit, mergeReactions, quoteText, reactionChips } from '../../static/chat/core/changes.js';
import { join, newRoom, receive, Verdict } from '../../static/chat/core/rooms.js';

function joinedRoom(messages, lastSeq) {
  const room = newRoom('r');
  join(room, { type: 'joined', roomId: 'r', lastSeq, messages, recovered: true }, null);
  return room;
}

const base = { roomId: 'r', userId: '1', username: 'alice', timestamp: '2026-12-03T05:00:00.000Z' };

describe('changes in a room', () => {
  it('applies an edit and keeps the message in place, marked edited', () => {
    const room = joinedRoom([{ ...base, messageId: 'a', seq: 1, message: 'helo' }], 1);
    expect(receive(room, { type: 'messageEdited', roomId: 'r', seq: 2, messageId: 'a', messageSeq: 1, message: 'hello', editedAt: 'x' })).toBe(Verdict.APPLIED);
    expect(room.messages[0]).toMatchObject({ message: 'hello', editedAt: 'x', seq: 1 });
  });

  it('keeps `me` exact past the user-id cap with the change', () => {
    const message = { reactions: [{ emoji: '👍', count: 30, userIds: ['2'] }], reactionUsers: { '👍': ['2'] } };
    const added = mergeReactions(message, {
      reactions: [{ emoji: '👍', count: 31, userIds: ['2'] }],
      change: { userId: '1', emoji: '👍', added: true },
    });
    expect(reactionChips({ ...message, ...added }, '1')).toEqual([{ emoji: '👍', count: 31, me: true }]);
    const removed = mergeReactions({ ...message, ...added }, {
      reactions: [{ emoji: '👍', count: 30, userIds: ['2'] }],
      change: { userId: '1', emoji: '👍', added: false },
    });
    expect(reactionChips({ ...message, ...removed }, '1')[0].me).toBe(false);
  });

  it('counts a live reply under its original, and a "changed" answer is no room event', () => {
    const room = joinedRoom([{ ...base, messageId: 'a', seq: 1, message: 'q' }], 1);
    receive(room, { type: 'message', ...base, messageId: 'b', seq: 2, message: 'r', replyTo: { messageId: 'a', seq: 1, username: 'alice', excerpt: 'q' } });
    expect(room.messages[0].replyCount).toBe(1);
    expect(room.messages[1].replyTo.messageId).toBe('a');
    expect(receive(room, { type: 'changed', roomId: 'r', seq: 9, action: 'editMessage' })).toBe(Verdict.IGNORED);
    expect(room.lastSeq).toBe(2);
  });

  it('ends a resume with the reply counts history shows: replies replayed while away count, none twice', () => {
    const quote = (n) => ({ messageId: 'a', seq: 1, username: 'alice', excerpt: 'q', replyCount: n });
    const room = joinedRoom([{ ...base, messageId: 'a', seq: 1, message: 'q', replyCount: 1 }, { ...base, messageId: 'b', seq: 2, message: 'r1', replyTo: quote(1) }], 2);
    expect(room.messages[0].replyCount).toBe(1);
    // Away; two more replies, and a reply to a message sent while away (it comes in its current state).
    const replay = {
      type: 'joined',
      roomId: 'r',
      lastSeq: 6,
      recovered: true,
      events: [
        { type: 'message', ...base, messageId: 'c', seq: 3, message: 'r2', replyTo: quote(2) },
        { type: 'message', ...base, messageId: 'd', seq: 4, message: 'new', replyCount: 1 },
        { type: 'message', ...base, messageId: 'e', seq: 5, message: 'r3', replyTo: quote(3) },
        { type: 'message', ...base, messageId: 'f', seq: 6, message: 'on d', replyTo: { messageId: 'd', seq: 4, username: 'alice', excerpt: 'new', replyCount: 1 } },
      ],
    };
    join(room, replay, 2);
    const count = (id) => room.messages.find((m) => m.messageId === id).replyCount;
    expect([count('a'), count('d')]).toEqual([3, 1]);
    // The same reply again (a repair overlapping the live feed) or an older one changes nothing.
    receive(room, { type: 'message', ...base, messageId: 'g', seq: 7, message: 'r4', replyTo: quote(4) });
    join(room, { ...replay, lastSeq: 7, events: [{ type: 'message', ...base, messageId: 'g', seq: 7, message: 'r4', replyTo: quote(4) }] }, 6);
    expect([count('a'), count('d')]).toEqual([4, 1]);
  });

  it('shows a removed original as a tombstone in the quote, and only the author may edit', () => {
    expect(quoteText({ excerpt: '', removed: true })).toBe('Message removed');
    expect(canEdit({ messageId: 'a', userId: '1', removed: false }, '1')).toBe(true);
    expect(canEdit({ messageId: 'a', userId: '2', removed: false }, '1')).toBe(false);
    expect(canEdit({ messageId: 'a', userId: '1', removed: true }, '1')).toBe(false);
  });
});
