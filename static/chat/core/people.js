/*
 * People and rooms, the client side of docs/protocol.md "Rooms users make": rooms made by
 * name, invitations, direct messages, members, roles, mutes, browsing. One module for both
 * UIs (the template's chat.js and the React app bundle it), on top of a ChatConnection.
 *
 * - Every action is a request: its promise resolves with the server's answer (`done`,
 *   `rooms`, `browse`, `members`) or rejects with the error frame's code and message.
 *   Answers to one socket come in the order asked, so each action's waiters are a queue.
 * - `rooms` is the user's room list (rooms and DMs they belong to), most recently active
 *   first, kept live by roomAdded / roomChanged / roomRemoved and read again with listRooms
 *   whenever the connection comes back. Listeners get a fresh sorted array on each change.
 */

import { errorText } from './words.js';

export const ANSWER_TIMEOUT_MS = 15000;

const ANSWER_TYPES = Object.freeze({ listRooms: 'rooms', browseRooms: 'browse', members: 'members' });

/** The actions this module asks (their errors are answered here, not as a notice). */
export const PEOPLE_ACTIONS = new Set([
  'createRoom',
  'updateRoom',
  'addMember',
  'removeMember',
  'setMemberRole',
  'muteRoom',
  'listRooms',
  'browseRooms',
  'openDirect',
  'members',
]);

/** Most recently active first, then by name (ISO timestamps sort as strings). */
export function sortRooms(rooms) {
  return [...rooms].sort((a, b) => {
    const byTime = String(b.lastActivity ?? '').localeCompare(String(a.lastActivity ?? ''));
    return byTime !== 0 ? byTime : String(a.name).localeCompare(String(b.name));
  });
}

/** {rooms, directs}: the room list split into its two sidebar sections. */
export function splitRooms(rooms) {
  const sorted = sortRooms(rooms);
  return { rooms: sorted.filter((r) => r.kind !== 'direct'), directs: sorted.filter((r) => r.kind === 'direct') };
}

/** The room everyone reads (protocol.DEFAULT_ROOM): in every sidebar, member or not. */
export const HOME_ROOM = 'general';

/**
 * The sidebar's rooms section in both UIs (issue 15's rule): the rooms the user belongs to
 * (DMs have a section of their own), most recently active first; then, when the user is no
 * member of them, the home room and the room open, as keepsLink says. Other public rooms are
 * found through "Browse rooms". `names` (roomId -> name) names the rooms the user is no member
 * of; `openKind` is the open room's kind when known ('public', 'private', 'direct': the room
 * may have left the list, the user removed from it).
 */
export function sidebarRooms(rooms, { openRoomId = null, openKind = null, names = new Map() } = {}) {
  const mine = sortRooms(rooms).filter((r) => r.kind !== 'direct');
  const listed = new Set(rooms.map((r) => r.roomId));
  const kindOf = (id) => (id === openRoomId ? openKind : null);
  const extra = [...new Set([HOME_ROOM, openRoomId])].filter(
    (id) => id && !listed.has(id) && keepsLink(id, openRoomId, kindOf(id)),
  );
  return [...mine, ...extra.map((roomId) => ({ roomId, name: names.get(roomId) || roomId }))];
}

/**
 * Whether the sidebar keeps a link to a room the user is no member of (or no longer one):
 * the home room, and the room open so it can be read and joined. Never a private room or a
 * DM: it is no longer there for a former member, even while open. `kind` is the room's
 * kind when known; a DM's id says what it is.
 */
export function keepsLink(roomId, openRoomId, kind = null) {
  if (!roomId || kind === 'private' || kind === 'direct' || String(roomId).startsWith('dm-')) return false;
  return roomId === HOME_ROOM || roomId === openRoomId;
}

/** The heading of the page both UIs show instead of a room that will not let the user in. */
export const ROOM_GONE_TITLE = 'Room not available';

/**
 * What that page says (issue 20's rule, one for both UIs): a room that turned the user away
 * (unknown, or private to them: the same answer, docs/auth.md) or took them out while open
 * (the client's roomError after a `left` frame with its `reason`). The room's messages and
 * composer go: a former member of a private room reads it no longer, and a page that says so
 * is clearer than a dead room under a banner. Both UIs add a link to the home room.
 */
export function roomGoneText({ code = null, reason = null, message = '' } = {}) {
  if (reason === 'removed') return 'You are no longer a member of this room: it is private, members only.';
  if (reason === 'private') return 'This room is now private: members only.';
  if (code === 'unknown_room' || code === 'forbidden') return errorText('unknown_room');
  return errorText(code, message);
}

/**
 * The start of the id the server gives a room of this name (chat/people_rules.py): its
 * slug; the server adds '-' and a few random letters, so a preview shows "#book-club-…".
 * "room" for a name with no ASCII letter or digit, or one that would look like a DM's id.
 */
export function roomIdForName(name) {
  if (!String(name).trim()) return null;
  const ascii = String(name).normalize('NFKD').replace(/[\u0300-\u036f]/g, '').toLowerCase();
  const slug = ascii.replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 57).replace(/-+$/, '');
  return slug && !slug.startsWith('dm-') ? slug : 'room';
}

/** Whether a frame is a membership change of `roomId` (the member list is read again). */
export function changesMembersOf(frame, roomId) {
  return ['memberAdded', 'memberRemoved', 'memberUpdated'].includes(frame?.type) && frame.roomId === roomId;
}

/** A member list after a presence frame: that member's status and last-seen time (the same list when they are no member). */
export function withPresence(members, frame) {
  if (!Array.isArray(members) || frame?.type !== 'presence') return members;
  const userId = String(frame.userId);
  if (!members.some((m) => String(m.userId) === userId)) return members;
  return members.map((m) =>
    String(m.userId) === userId ? { ...m, status: frame.status, lastSeenAt: frame.lastSeenAt ?? null } : m,
  );
}

/** What a superseded read resolves to: a later call of the same reader has been made. */
export const STALE = Symbol('stale');

/**
 * A reader whose overlapping calls answer in the order they were made: a call resolves to
 * STALE once a later call has started, so a slow answer to an early read (the member list
 * before the second invitation) never paints over a newer one. Errors of stale calls are
 * dropped the same way.
 */
export function latestOnly(read) {
  let latest = 0;
  return async (...args) => {
    const mine = ++latest;
    try {
      const value = await read(...args);
      return mine === latest ? value : STALE;
    } catch (error) {
      if (mine !== latest) return STALE;
      throw error;
    }
  };
}

/** "alice, bob" or "alice bob" -> ["alice", "bob"]. */
export function parseUsernames(text) {
  return String(text)
    .split(/[\s,]+/)
    .map((name) => name.replace(/^@/, '').trim())
    .filter(Boolean);
}

export class People {
  constructor(connection, { timeoutMs = ANSWER_TIMEOUT_MS } = {}) {
    this.connection = connection;
    this.timeoutMs = timeoutMs;
    /** roomId -> room summary (docs/protocol.md) */
    this.rooms = new Map();
    /** action -> [{resolve, reject, timer, roomId}] */
    this.waiters = new Map();
    this.listeners = new Set();
    /** listeners of frames that change a member list on show (onMembers) */
    this.memberListeners = new Set();
    this.loaded = false;
    this.offFrame = connection.on('frame', (frame) => this.onFrame(frame));
    this.offState = connection.on('state', ({ state }) => {
      if (state === 'live') this.refresh().catch(() => {});
    });
  }

  dispose() {
    this.offFrame();
    this.offState();
    for (const queue of this.waiters.values()) for (const w of queue) clearTimeout(w.timer);
    this.waiters.clear();
  }

  /** Call `fn(sortedRooms)` on every change of the room list; returns the unsubscribe. */
  onChange(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /**
   * Call `fn(frame)` on every frame that changes a member list on show: memberAdded,
   * memberRemoved, memberUpdated (room events of a room the socket has open: read the list
   * again) and presence (patch it: withPresence). Returns the unsubscribe.
   */
  onMembers(fn) {
    this.memberListeners.add(fn);
    return () => this.memberListeners.delete(fn);
  }

  list() {
    return sortRooms(this.rooms.values());
  }

  changed() {
    const list = this.list();
    for (const fn of [...this.listeners]) {
      try {
        fn(list);
      } catch (error) {
        console.error('people.js: a listener threw', error);
      }
    }
  }

  onFrame(frame) {
    switch (frame.type) {
      case 'roomAdded':
      case 'roomChanged':
        if (frame.room?.roomId) {
          this.rooms.set(frame.room.roomId, { ...(this.rooms.get(frame.room.roomId) ?? {}), ...frame.room });
          this.changed();
        }
        return;
      case 'roomRemoved':
        if (this.rooms.delete(frame.roomId)) this.changed();
        return;
      case 'message':
        this.touch(frame.roomId, frame.timestamp);
        return;
      case 'roomUpdated': {
        const room = this.rooms.get(frame.roomId);
        if (room && frame.room) {
          const kind = room.kind === 'direct' ? 'direct' : frame.room.private ? 'private' : 'public';
          this.rooms.set(frame.roomId, { ...room, name: frame.room.name, topic: frame.room.topic ?? '', kind });
          this.changed();
        }
        return;
      }
      case 'memberAdded':
      case 'memberRemoved':
      case 'memberUpdated':
      case 'presence':
        for (const fn of [...this.memberListeners]) {
          try {
            fn(frame);
          } catch (error) {
            console.error('people.js: a member listener threw', error);
          }
        }
        return;
      case 'done':
        this.settle(frame.action, frame, null);
        return;
      case 'error':
        if (frame.action) this.settle(frame.action, null, frame);
        return;
      default:
        for (const [action, type] of Object.entries(ANSWER_TYPES)) {
          if (frame.type === type) this.settle(action, frame, null);
        }
    }
  }

  /** A message moves its room up the list (its last activity). */
  touch(roomId, timestamp) {
    const room = this.rooms.get(roomId);
    if (!room || !timestamp || String(timestamp) <= String(room.lastActivity ?? '')) return;
    this.rooms.set(roomId, { ...room, lastActivity: timestamp });
    this.changed();
  }

  settle(action, answer, error) {
    const queue = this.waiters.get(action);
    const waiter = queue?.shift();
    if (!waiter) return;
    clearTimeout(waiter.timer);
    if (error) waiter.reject(Object.assign(new Error(error.message || error.code), { code: error.code }));
    else waiter.resolve(answer);
  }

  request(frame) {
    return new Promise((resolve, reject) => {
      if (!this.connection.rawSend(frame)) {
        reject(Object.assign(new Error('Not connected: try again in a moment.'), { code: 'offline' }));
        return;
      }
      const queue = this.waiters.get(frame.action) ?? [];
      this.waiters.set(frame.action, queue);
      const waiter = { resolve, reject, timer: null };
      waiter.timer = setTimeout(() => {
        const at = queue.indexOf(waiter);
        if (at >= 0) queue.splice(at, 1);
        reject(Object.assign(new Error('No answer from the server.'), { code: 'timeout' }));
      }, this.timeoutMs);
      queue.push(waiter);
    });
  }

  async refresh() {
    const answer = await this.request({ action: 'listRooms' });
    this.rooms = new Map((answer.rooms ?? []).map((room) => [room.roomId, room]));
    this.loaded = true;
    this.changed();
    return this.list();
  }

  async createRoom({ name, isPrivate = false, topic = '' }) {
    const answer = await this.request({ action: 'createRoom', name, private: Boolean(isPrivate), topic });
    if (answer.room) this.onFrame({ type: 'roomAdded', room: answer.room });
    return answer;
  }

  updateRoom(roomId, changes) {
    return this.request({ action: 'updateRoom', roomId, ...changes });
  }

  invite(roomId, username) {
    return this.request({ action: 'addMember', roomId, username });
  }

  /** Join a public room (the membership: it enters the room list). */
  join(roomId) {
    return this.request({ action: 'addMember', roomId });
  }

  /** Leave a room (the membership, not just the socket). */
  leave(roomId) {
    return this.request({ action: 'removeMember', roomId });
  }

  remove(roomId, username) {
    return this.request({ action: 'removeMember', roomId, username });
  }

  setRole(roomId, username, role) {
    return this.request({ action: 'setMemberRole', roomId, username, role });
  }

  mute(roomId, muted = true) {
    return this.request({ action: 'muteRoom', roomId, muted });
  }

  async browse(query = '') {
    const frame = { action: 'browseRooms' };
    if (query) frame.query = query;
    return (await this.request(frame)).rooms ?? [];
  }

  async openDirect(usernames) {
    const answer = await this.request({ action: 'openDirect', usernames });
    if (answer.room) this.onFrame({ type: 'roomAdded', room: answer.room });
    return answer;
  }

  /** Every member of a room, page after page. */
  async members(roomId) {
    const all = [];
    let next = null;
    do {
      const frame = { action: 'members', roomId };
      if (next) frame.next = next;
      const page = await this.request(frame);
      all.push(...(page.members ?? []));
      next = page.next ?? null;
    } while (next);
    return all;
  }
}

/** Words for an error code of a people action (the server's message otherwise). */
export function describeError(error) {
  const words = {
    unknown_user: 'There is no user of that name.',
    self_invite: 'That is you.',
    direct_room: 'A direct message keeps the people it was opened with.',
    too_many_members: 'Too many people for a group direct message.',
    last_owner: 'Make someone else an owner first.',
    room_name_taken: 'A room of that name exists already.',
    empty_room_name: 'Give the room a name.',
    not_owner: 'Only the room’s owners can do that.',
    not_member: 'Not a member of this room.',
  };
  return words[error?.code] ?? error?.message ?? 'Something went wrong.';
}
