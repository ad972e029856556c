import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { join, newRoom, receive } from '../../static/chat/core/rooms.js';
import { FakeSocket, message, payload } from './test/fakeSocket.js';
import { ChatConnection } from './websocket.js';

function record(conn, name) {
  const seen = [];
  conn.on(name, (value) => seen.push(value));
  return seen;
}

async function live(roomId = 'general') {
  const conn = new ChatConnection({ url: 'ws://chat.test/ws/', WebSocket: FakeSocket, random: () => 0.5 });
  conn.joinRoom(roomId);
  conn.connect();
  await vi.advanceTimersByTimeAsync(1);
  const socket = FakeSocket.latest();
  socket.accept();
  return { conn, socket };
}

beforeEach(() => {
  vi.useFakeTimers();
  FakeSocket.reset();
});

afterEach(() => {
  vi.useRealTimers();
});

describe('moderation on the socket', () => {
  it('passes on removals, room settings and report answers, and sends reportMessage', async () => {
    const { conn, socket } = await live();
    const joined = record(conn, 'joined');
    const removed = record(conn, 'messageRemoved');
    const updated = record(conn, 'roomUpdated');
    const reported = record(conn, 'reported');
    const settings = { name: 'General', private: false, readOnly: true, archived: false, slowModeSeconds: 30 };
    socket.deliver({
      type: 'joined',
      roomId: 'general',
      lastSeq: 2,
      messages: [payload(message('general', 1)), payload(message('general', 2, { message: '', removed: true }))],
      recovered: true,
      room: settings,
    });
    expect(joined[0].room).toEqual(settings);
    expect(joined[0].messages.map((m) => m.removed)).toEqual([false, true]);
    socket.deliver({ type: 'messageRemoved', roomId: 'general', messageId: 'm-general-1', seq: 1 });
    socket.deliver({ type: 'roomUpdated', roomId: 'general', room: { ...settings, archived: true } });
    expect(removed).toEqual([{ roomId: 'general', messageId: 'm-general-1', seq: 1 }]);
    expect(updated[0].room.archived).toBe(true);

    expect(conn.reportMessage('general', 'm-general-2', 'spam')).toBe(true);
    expect(socket.sentActions('reportMessage')).toEqual([
      { action: 'reportMessage', roomId: 'general', messageId: 'm-general-2', reason: 'spam' },
    ]);
    socket.deliver({ type: 'reported', roomId: 'general', messageId: 'm-general-2' });
    expect(reported).toEqual([{ roomId: 'general', messageId: 'm-general-2' }]);
  });

  it('stops rejoining a private room the server took it out of', async () => {
    const { conn, socket } = await live('team');
    const errors = record(conn, 'roomError');
    socket.deliver({ type: 'joined', roomId: 'team', lastSeq: 0, messages: [], recovered: true });
    socket.deliver({ type: 'left', roomId: 'team', reason: 'removed' });
    expect(errors).toEqual([
      { roomId: 'team', code: 'forbidden', message: 'You are no longer a member of this room.', reason: 'removed' },
    ]);
    socket.serverClose(1006);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeSocket.latest().sentActions('joinRoom')).toEqual([]);
  });

  it('still says why when a join asked after the removal is refused, until the room is joined again', async () => {
    const { conn, socket } = await live('team');
    const errors = record(conn, 'roomError');
    socket.deliver({ type: 'joined', roomId: 'team', lastSeq: 0, messages: [], recovered: true });
    socket.deliver({ type: 'left', roomId: 'team', reason: 'removed' });
    // A room list read before the removal still names the room: the page asks to join it.
    conn.joinRoom('team');
    const refusal = { type: 'error', action: 'joinRoom', roomId: 'team', code: 'forbidden', message: 'Not allowed.' };
    socket.deliver(refusal);
    expect(errors.map((e) => e.reason)).toEqual(['removed', 'removed']);
    // Invited again and joined: a later refusal is an ordinary one.
    conn.joinRoom('team');
    socket.deliver({ type: 'joined', roomId: 'team', lastSeq: 0, messages: [], recovered: true });
    socket.deliver({ type: 'left', roomId: 'team' });
    conn.leaveRoom('team');
    conn.joinRoom('team');
    socket.deliver(refusal);
    expect(errors.at(-1)).toEqual({ roomId: 'team', code: 'forbidden', message: 'Not allowed.' });
  });
});

describe('tombstones in the room state', () => {
  const m = (seq, text = `m${seq}`) => ({ roomId: 'general', messageId: `id-${seq}`, seq, message: text, timestamp: '' });

  it('keeps the seq of a removed message and drops its text, live or on a resume', () => {
    const room = newRoom('general');
    join(room, { type: 'joined', roomId: 'general', lastSeq: 3, messages: [m(1), m(2), m(3)] }, null);
    receive(room, { type: 'messageRemoved', roomId: 'general', messageId: 'id-2', seq: 2 });
    expect(room.messages.map((x) => [x.seq, x.message, x.removed])).toEqual([
      [1, 'm1', false],
      [2, '', true],
      [3, 'm3', false],
    ]);
    join(
      room,
      {
        type: 'joined',
        roomId: 'general',
        lastSeq: 3,
        recovered: true,
        messages: [],
        removed: [{ messageId: 'id-1', seq: 1 }],
        room: { slowModeSeconds: 10 },
      },
      3,
    );
    expect(room.messages.map((x) => x.message)).toEqual(['', '', 'm3']);
    expect(room.settings).toEqual({ slowModeSeconds: 10 });
  });
});
