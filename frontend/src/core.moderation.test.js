/**
 * A moderator's message actions (static/chat/core/moderation.js) and their frames in the
 * protocol client: offered to moderators only, sent with a reason, and a ban's reason kept
 * for the 4403 that follows.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { createActionRegistry } from '../../static/chat/core/actions.js';
import {
  bannedText,
  moderatedText,
  moderationWords,
  registerModeratorActions,
  sendModeration,
} from '../../static/chat/core/moderation.js';
import { FakeSocket, liveInGeneral } from './test/fakeSocket.js';
import { ChatConnection, ConnectionState } from './websocket.js';

const MESSAGE = { messageId: 'm-1', userId: '17', username: 'bob', message: 'buy pills', removed: false };

async function live() {
  const conn = new ChatConnection({ url: 'ws://chat.test/ws/', WebSocket: FakeSocket, random: () => 0.5 });
  return { conn, socket: await liveInGeneral(conn, vi) };
}

beforeEach(() => {
  vi.useFakeTimers();
  FakeSocket.reset();
});

afterEach(() => {
  vi.useRealTimers();
});

describe('the menu items', () => {
  const registry = createActionRegistry();
  const opened = [];
  registerModeratorActions(registry, (kind, ctx) => opened.push([kind, ctx.message.messageId]));
  const ids = (ctx) => registry.for(ctx).map((a) => a.id);

  it('are offered to moderators only, and never on a tombstone', () => {
    expect(ids({ message: MESSAGE, own: false, moderator: false })).toEqual([]);
    expect(ids({ message: MESSAGE, own: false })).toEqual([]);
    expect(ids({ message: MESSAGE, own: false, moderator: true })).toEqual([
      'moderate-hide',
      'moderate-delete',
      'moderate-ban',
    ]);
    expect(ids({ message: { ...MESSAGE, removed: true }, own: false, moderator: true })).toEqual([]);
    expect(ids({ message: { ...MESSAGE, messageId: null }, own: false, moderator: true })).toEqual([]);
  });

  it('do not offer a moderator to ban themselves', () => {
    expect(ids({ message: MESSAGE, own: true, moderator: true })).toEqual(['moderate-hide', 'moderate-delete']);
  });

  it('open the dialog of their kind', () => {
    registry.for({ message: MESSAGE, own: false, moderator: true }).find((a) => a.id === 'moderate-ban').run();
    expect(opened).toEqual([['ban', 'm-1']]);
    expect(moderationWords('ban', 'bob').confirm).toBe('Ban bob');
  });
});

describe('the frames', () => {
  it('send moderateMessage and banUser with the reason, and nothing without one', async () => {
    const { conn, socket } = await live();
    const ctx = { roomId: 'general', message: MESSAGE };
    expect(sendModeration(conn, 'hide', ctx, { reason: ' spam ' })).toBe(true);
    expect(sendModeration(conn, 'delete', ctx, { reason: 'spam' })).toBe(true);
    expect(sendModeration(conn, 'ban', ctx, { reason: 'threats', duration: '86400' })).toBe(true);
    expect(sendModeration(conn, 'ban', ctx, { reason: '   ' })).toBe(false);
    expect(socket.sentActions('moderateMessage')).toEqual([
      { action: 'moderateMessage', roomId: 'general', messageId: 'm-1', removal: 'hidden', reason: 'spam' },
      { action: 'moderateMessage', roomId: 'general', messageId: 'm-1', removal: 'deleted', reason: 'spam' },
    ]);
    expect(socket.sentActions('banUser')).toEqual([
      { action: 'banUser', userId: '17', reason: 'threats', durationSeconds: 86400, roomId: 'general', messageId: 'm-1' },
    ]);
  });

  it('emit the answers, and a ban reaches the FORBIDDEN state with its reason', async () => {
    const { conn, socket } = await live();
    const seen = [];
    conn.on('moderated', (f) => seen.push(moderatedText(f)));
    conn.on('userBanned', (f) => seen.push(moderatedText(f)));
    const states = [];
    conn.on('state', (s) => states.push(s));
    socket.deliver({ type: 'moderated', roomId: 'general', messageId: 'm-1', removal: 'deleted' });
    socket.deliver({ type: 'userBanned', userId: '17', username: 'bob', until: null });
    expect(seen).toEqual(['Message deleted.', 'bob is banned until a moderator lifts it.']);

    socket.deliver({ type: 'banned', reason: 'threatening other users', until: null });
    socket.serverClose(4403);

    const last = states.at(-1);
    expect(last.state).toBe(ConnectionState.FORBIDDEN);
    expect(bannedText(last.ban)).toBe('Banned until a moderator lifts it. Reason: threatening other users');
    expect(bannedText(null)).toBe('Banned: you can no longer take part in this chat.');
  });

  it('carry the moderator flag of authenticated', async () => {
    const { conn, socket } = await live();
    const who = [];
    conn.on('authenticated', (w) => who.push(w.moderator));
    socket.deliver({ type: 'authenticated', userId: '1', username: 'mod', expiresAt: null, moderator: true });
    socket.deliver({ type: 'authenticated', userId: '1', username: 'mod', expiresAt: null });
    expect(who).toEqual([true, false]);
  });
});
