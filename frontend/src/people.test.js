import { describe, expect, it } from 'vitest';

import {
  People,
  STALE,
  changesMembersOf,
  latestOnly,
  parseUsernames,
  keepsLink,
  roomGoneText,
  roomIdForName,
  sidebarRooms,
  sortRooms,
  splitRooms,
  withPresence,
} from '../../static/chat/core/people.js';

function fakeConnection() {
  const listeners = new Map();
  return {
    state: 'live',
    sent: [],
    on(name, fn) {
      if (!listeners.has(name)) listeners.set(name, new Set());
      listeners.get(name).add(fn);
      return () => listeners.get(name).delete(fn);
    },
    emit(name, value) {
      for (const fn of listeners.get(name) ?? []) fn(value);
    },
    rawSend(frame) {
      this.sent.push(frame);
      return true;
    },
  };
}

describe('people.js', () => {
  it('derives the id the server gives a room name', () => {
    expect(roomIdForName('Book Club!')).toBe('book-club');
    expect(roomIdForName('  Café  Crème ')).toBe('cafe-creme');
    expect(roomIdForName('日本')).toBe('room');
    expect(roomIdForName('dm secrets')).toBe('room'); // a DM's prefix: the server says "room"
    expect(roomIdForName('   ')).toBeNull();
    expect(roomIdForName('x'.repeat(100))).toBe('x'.repeat(57)); // room for '-' and the tail
  });

  it('reads usernames separated by commas or spaces', () => {
    expect(parseUsernames(' @alice, bob  carol,')).toEqual(['alice', 'bob', 'carol']);
  });

  it('sorts rooms by last activity and splits off direct messages', () => {
    const rooms = [
      { roomId: 'a', name: 'A', kind: 'public', lastActivity: '2026-01-01T00:00:00.000Z' },
      { roomId: 'dm-1', name: 'bob', kind: 'direct', lastActivity: '2026-03-01T00:00:00.000Z' },
      { roomId: 'b', name: 'B', kind: 'private', lastActivity: '2026-02-01T00:00:00.000Z' },
    ];
    expect(sortRooms(rooms).map((r) => r.roomId)).toEqual(['dm-1', 'b', 'a']);
    const { rooms: plain, directs } = splitRooms(rooms);
    expect(plain.map((r) => r.roomId)).toEqual(['b', 'a']);
    expect(directs.map((r) => r.roomId)).toEqual(['dm-1']);
  });

  it('answers each request in order and keeps the room list live', async () => {
    const connection = fakeConnection();
    const people = new People(connection);
    const seen = [];
    people.onChange((list) => seen.push(list.map((r) => r.roomId)));
    const listed = people.refresh();
    expect(connection.sent.at(-1)).toEqual({ action: 'listRooms' });
    connection.emit('frame', { type: 'rooms', rooms: [{ roomId: 'a', name: 'A', kind: 'public', lastActivity: '1' }] });
    expect((await listed).map((r) => r.roomId)).toEqual(['a']);

    const refused = people.invite('a', 'ghost');
    connection.emit('frame', { type: 'error', action: 'addMember', code: 'unknown_user', message: 'no user' });
    await expect(refused).rejects.toMatchObject({ code: 'unknown_user' });

    connection.emit('frame', { type: 'roomAdded', room: { roomId: 'b', name: 'B', kind: 'private', lastActivity: '2' } });
    connection.emit('frame', { type: 'roomRemoved', roomId: 'a' });
    expect(seen.at(-1)).toEqual(['b']);
    people.dispose();
  });

  it('tells a member list on show of membership changes and presence', () => {
    const connection = fakeConnection();
    const people = new People(connection);
    const heard = [];
    const off = people.onMembers((frame) => heard.push(frame.type));
    connection.emit('frame', { type: 'memberRemoved', roomId: 'plans', seq: 4, userId: '2', username: 'bob' });
    connection.emit('frame', { type: 'presence', userId: '3', status: 'away', lastSeenAt: null });
    connection.emit('frame', { type: 'message', roomId: 'plans', seq: 5 });
    off();
    connection.emit('frame', { type: 'memberAdded', roomId: 'plans', seq: 6, userId: '2', username: 'bob' });
    expect(heard).toEqual(['memberRemoved', 'presence']);
    expect(changesMembersOf({ type: 'memberRemoved', roomId: 'plans' }, 'plans')).toBe(true);
    expect(changesMembersOf({ type: 'memberRemoved', roomId: 'other' }, 'plans')).toBe(false);
    const list = [
      { userId: '2', username: 'bob', role: 'member', status: 'online', lastSeenAt: null },
      { userId: '3', username: 'carol', role: 'owner', status: 'online', lastSeenAt: null },
    ];
    const after = withPresence(list, { type: 'presence', userId: 3, status: 'offline', lastSeenAt: 'T' });
    expect(after.map((m) => [m.status, m.lastSeenAt])).toEqual([['online', null], ['offline', 'T']]);
    expect(withPresence(list, { type: 'presence', userId: '9', status: 'away' })).toBe(list);
    people.dispose();
  });
});

describe('sidebarRooms (the rule both UIs list rooms by)', () => {
  const mine = [
    { roomId: 'old', name: 'Old', kind: 'public', lastActivity: '2026-01-01T00:00:00Z' },
    { roomId: 'dm-ab', name: 'bob', kind: 'direct', lastActivity: '2026-03-01T00:00:00Z' },
    { roomId: 'busy', name: 'Busy', kind: 'private', lastActivity: '2026-02-01T00:00:00Z' },
  ];
  const names = new Map([['general', 'General'], ['lobby', 'Lobby']]);

  it('lists the user rooms by last activity, then general, never a DM', () => {
    expect(sidebarRooms(mine, { names }).map((r) => r.roomId)).toEqual(['busy', 'old', 'general']);
    expect(sidebarRooms(mine, { names }).at(-1).name).toBe('General');
  });

  it('adds the open room when not a member, and no other public room', () => {
    expect(sidebarRooms(mine, { openRoomId: 'lobby', names }).map((r) => r.roomId)).toEqual([
      'busy',
      'old',
      'general',
      'lobby',
    ]);
    const withGeneral = [...mine, { roomId: 'general', name: 'General', kind: 'public' }];
    expect(sidebarRooms(withGeneral, { openRoomId: 'old' }).map((r) => r.roomId)).toEqual([
      'busy',
      'old',
      'general',
    ]);
    expect(keepsLink('general', null)).toBe(true);
    expect(keepsLink('lobby', 'lobby')).toBe(true);
    expect(keepsLink('lobby', 'old')).toBe(false);
  });

  it('drops a private room or DM the user was removed from, even while it is open', () => {
    // The open room left the list (roomRemoved): public stays to be read, private goes.
    expect(sidebarRooms(mine, { openRoomId: 'lobby', openKind: 'public' }).map((r) => r.roomId)).toContain('lobby');
    expect(sidebarRooms(mine, { openRoomId: 'secret', openKind: 'private' }).map((r) => r.roomId)).toEqual([
      'busy',
      'old',
      'general',
    ]);
    expect(sidebarRooms(mine, { openRoomId: 'dm-xy' }).map((r) => r.roomId)).toEqual(['busy', 'old', 'general']);
    expect(keepsLink('secret', 'secret', 'private')).toBe(false);
    expect(keepsLink('dm-xy', 'dm-xy', 'direct')).toBe(false);
    expect(keepsLink('dm-xy', 'dm-xy')).toBe(false);
    expect(keepsLink('lobby', 'lobby', 'public')).toBe(true);
    expect(keepsLink('general', null, 'public')).toBe(true);
    expect(keepsLink(null, null)).toBe(false);
  });
});

describe('latestOnly', () => {
  function deferred() {
    let resolve;
    let reject;
    const promise = new Promise((ok, fail) => {
      resolve = ok;
      reject = fail;
    });
    return { promise, resolve, reject };
  }

  it('drops an earlier read that answers after a later one', async () => {
    const answers = [deferred(), deferred()];
    let call = 0;
    const read = latestOnly(() => answers[call++].promise);
    const first = read('plans');
    const second = read('plans');
    answers[1].resolve(['alice', 'bob', 'carol']);
    answers[0].resolve(['alice', 'bob']);
    expect(await second).toEqual(['alice', 'bob', 'carol']);
    expect(await first).toBe(STALE);
  });

  it('gives the latest call its error and swallows a stale one', async () => {
    const answers = [deferred(), deferred()];
    let call = 0;
    const read = latestOnly(() => answers[call++].promise);
    const first = read();
    const second = read();
    answers[0].reject(new Error('old'));
    answers[1].reject(new Error('new'));
    expect(await first).toBe(STALE);
    await expect(second).rejects.toThrow('new');
  });

  it('answers a lone call as it is', async () => {
    const read = latestOnly(async (id) => `members of ${id}`);
    expect(await read('plans')).toBe('members of plans');
  });
});

describe('roomGoneText', () => {
  it('says why a room is not available: removed, made private, unknown or hidden alike', () => {
    expect(roomGoneText({ code: 'forbidden', reason: 'removed' })).toBe(
      'You are no longer a member of this room: it is private, members only.',
    );
    expect(roomGoneText({ code: 'forbidden', reason: 'private' })).toBe('This room is now private: members only.');
    const hidden = 'This room does not exist, or is private: members only.';
    expect(roomGoneText({ code: 'unknown_room', message: 'no such room' })).toBe(hidden);
    expect(roomGoneText({ code: 'forbidden' })).toBe(hidden);
    expect(roomGoneText({ code: 'invalid_room' })).toBe('That is not a valid room name.');
  });
});
