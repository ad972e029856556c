/**
 * rooms.js: what a client knows of one room, and the one rule that keeps it right
 * (docs/protocol.md, "Room events"). Pure: no socket, no DOM, no timers.
 *
 * Every frame that changes a room carries `roomId` and `seq`, its place in the room's one
 * sequence (messages, removals, edits, reactions, members and settings share a counter).
 * The client keeps one cursor per room, the highest seq applied, and for an event with
 * seq s:
 *   s <= cursor      a duplicate (a replay overlapping the live feed): drop it;
 *   s == cursor + 1  apply it and move the cursor;
 *   s >  cursor + 1  a gap: rejoin with lastSeq = cursor; the replay brings s again.
 * No part of the rule depends on the event's type, so an event type this client does not
 * know still moves the cursor (its content is ignored) and never looks like a gap.
 *
 * Two v1 exceptions, kept apart so they can be deleted once every server sends v2:
 * a `messageRemoved` without `messageSeq` (its `seq` was the message's own) and a
 * `roomUpdated` without `seq` are applied by id and leave the cursor alone.
 */

import { mergeReactions, reactionUsersOf } from './changes.js';

export const Verdict = Object.freeze({
  APPLIED: 'applied',
  DUPLICATE: 'duplicate',
  GAP: 'gap',
  IGNORED: 'ignored', // not a room event, or a room this client is not in sync with
});

/** Frames that carry roomId and seq but are answers, not room events. */
const NOT_ROOM_EVENTS = new Set(['ack', 'joined', 'history', 'error', 'authenticated', 'pong', 'left', 'reported', 'changed', 'thread']);

export function isSeq(value) {
  return Number.isInteger(value) && value > 0;
}

/** The cursor rule alone: what to do with seq `seq` when `cursor` has been applied. */
export function classify(cursor, seq) {
  if (seq <= cursor) return Verdict.DUPLICATE;
  if (seq === cursor + 1) return Verdict.APPLIED;
  return Verdict.GAP;
}

/** Whether a frame is a room event that takes part in the cursor rule. */
export function isRoomEvent(frame) {
  if (!frame || typeof frame !== 'object' || typeof frame.roomId !== 'string') return false;
  if (NOT_ROOM_EVENTS.has(frame.type)) return false;
  if (isV1Removal(frame) || isV1RoomUpdate(frame)) return false;
  return isSeq(frame.seq);
}

function isV1Removal(frame) {
  return frame.type === 'messageRemoved' && !isSeq(frame.messageSeq);
}

function isV1RoomUpdate(frame) {
  return frame.type === 'roomUpdated' && !isSeq(frame.seq);
}

/** A message as the UIs show it, from a `message` frame or a joined/history entry. */
export function messageOf(frame) {
  return {
    roomId: frame.roomId,
    messageId: frame.messageId,
    seq: frame.seq,
    userId: frame.userId,
    username: frame.username,
    message: frame.removed === true ? '' : frame.message,
    timestamp: frame.timestamp,
    clientMessageId: frame.clientMessageId ?? null,
    removed: frame.removed === true,
    removedBy: frame.removedBy ?? null,
    editedAt: frame.editedAt ?? null,
    reactions: Array.isArray(frame.reactions) ? frame.reactions : [],
    // changes.js: who reacted (for `me`), the quoted original, the thread's size.
    reactionUsers: reactionUsersOf(frame.reactions),
    replyTo: frame.replyTo && typeof frame.replyTo.messageId === 'string' ? frame.replyTo : null,
    replyCount: Number.isInteger(frame.replyCount) ? frame.replyCount : 0,
    mentions: Array.isArray(frame.mentions) && frame.removed !== true ? frame.mentions.map(String) : [],
    // Shared files (issue 18, uploads.js); a tombstone has none.
    attachments: frame.removed !== true && Array.isArray(frame.attachments) ? frame.attachments : [],
  };
}

function validMessage(m) {
  return m && typeof m === 'object' && isSeq(m.seq) && typeof m.messageId === 'string' && typeof m.message === 'string';
}

/**
 * A new room: `lastSeq` is the cursor (null before the first joined), `messages` in seq
 * order (each messageId once), `settings` the room's settings (or null), `members`
 * userId -> username for the members the room's events named, `hasMore` whether older
 * messages may exist, `loaded` once a joined arrived.
 */
export function newRoom(roomId) {
  return { roomId, lastSeq: null, joined: false, messages: [], settings: null, members: new Map(), hasMore: false, loaded: false };
}

/** What the UIs render: a plain snapshot (new arrays, so React sees a change). */
export function snapshot(room) {
  return {
    roomId: room.roomId,
    lastSeq: room.lastSeq,
    messages: room.messages,
    settings: room.settings,
    members: [...room.members].map(([userId, username]) => ({ userId, username })),
    hasMore: room.hasMore,
    loaded: room.loaded,
  };
}

function indexOfId(room, messageId) {
  return room.messages.findIndex((m) => m.messageId === messageId);
}

/** Insert or replace one message, keeping seq order; a known message keeps its place. */
function upsert(room, message) {
  const at = indexOfId(room, message.messageId);
  const messages = room.messages.slice();
  if (at >= 0) {
    messages[at] = message;
  } else {
    let i = messages.length;
    while (i > 0 && messages[i - 1].seq > message.seq) i -= 1;
    if (i > 0 && messages[i - 1].seq === message.seq) messages[i - 1] = message;
    else messages.splice(i, 0, message);
  }
  room.messages = messages;
}

function update(room, messageId, change) {
  const at = indexOfId(room, messageId);
  if (at < 0) return false; // older than what is shown: history will bring it in its current state
  const messages = room.messages.slice();
  messages[at] = { ...messages[at], ...change };
  room.messages = messages;
  return true;
}

/** A removed message keeps its seq (no holes) and loses its text. */
function tombstone(room, messageId, removedBy = null) {
  return update(room, messageId, { message: '', removed: true, removedBy: removedBy ?? 'moderator' });
}

/** Apply one event's content (the cursor is the caller's business). Unknown types change nothing. */
export function applyContent(room, frame) {
  switch (frame.type) {
    case 'message':
      if (validMessage(frame)) upsert(room, messageOf(frame));
      break;
    case 'messageRemoved':
      tombstone(room, frame.messageId, frame.removedBy);
      break;
    case 'messageEdited': {
      const text = typeof frame.message === 'string' ? frame.message : frame.message?.message;
      if (typeof text === 'string') update(room, frame.messageId, { message: text, editedAt: frame.editedAt ?? null });
      break;
    }
    case 'reactions': {
      const at = indexOfId(room, frame.messageId);
      if (at >= 0 && Array.isArray(frame.reactions)) update(room, frame.messageId, mergeReactions(room.messages[at], frame));
      break;
    }
    case 'roomUpdated':
      room.settings = frame.room ?? null;
      break;
    case 'memberAdded':
      if (frame.userId !== undefined) room.members = new Map(room.members).set(String(frame.userId), frame.username ?? null);
      break;
    case 'memberRemoved':
      if (frame.userId !== undefined) {
        room.members = new Map(room.members);
        room.members.delete(String(frame.userId));
      }
      break;
    default:
      break;
  }
}

/**
 * A reply tells its original's thread size: `replyTo.replyCount` is the original's count
 * with this reply (its nth reply says n). The original keeps the largest it has seen, so
 * the count is the same whichever way the reply came (live, a resume's replay, a gap
 * repair, a history page) and however often, and an original that arrived in its current
 * state (with the count already in it) is never counted twice. A reply from a server that
 * does not number replies (no replyCount) adds one, once, live only.
 */
export function countReply(room, frame, { live = false } = {}) {
  if (!frame?.replyTo || typeof frame.replyTo.messageId !== 'string') return;
  const at = indexOfId(room, frame.replyTo.messageId);
  if (at < 0) return; // not shown: history brings it with its count
  const count = room.messages[at].replyCount ?? 0;
  const told = frame.replyTo.replyCount;
  if (Number.isInteger(told)) {
    if (told > count) update(room, frame.replyTo.messageId, { replyCount: told });
  } else if (live && indexOfId(room, frame.messageId) < 0) {
    update(room, frame.replyTo.messageId, { replyCount: count + 1 });
  }
}

/**
 * One live frame for this room. Returns a Verdict: APPLIED (the room changed), DUPLICATE,
 * GAP (the caller rejoins with lastSeq = room.lastSeq) or IGNORED (not in sync yet: the
 * joined that is on its way covers it).
 */
export function receive(room, frame) {
  if (isV1Removal(frame)) {
    // v1: `seq` was the removed message's seq, not a place of its own.
    tombstone(room, frame.messageId, frame.removedBy);
    return Verdict.APPLIED;
  }
  if (isV1RoomUpdate(frame)) {
    applyContent(room, frame);
    return Verdict.APPLIED;
  }
  if (!isRoomEvent(frame) || !room.joined || room.lastSeq === null) return Verdict.IGNORED;
  const verdict = classify(room.lastSeq, frame.seq);
  if (verdict !== Verdict.APPLIED) return verdict;
  if (frame.type === 'message') countReply(room, frame, { live: true });
  applyContent(room, frame);
  room.lastSeq = frame.seq;
  return verdict;
}

/**
 * A `joined` answer. `requested` is the lastSeq the join asked from (null: a first join).
 * A replay (recovered, with a lastSeq asked) applies `events` in order when the server sent
 * them (protocol v2), else the v1 `messages` after `requested`; anything else replaces
 * what the room showed with the server's current page. Returns {reset, messages}: the
 * messages that are new to the caller.
 */
export function join(room, frame, requested) {
  const replay = frame.recovered === true && requested !== null && requested !== undefined;
  let fresh = [];
  if (replay && Array.isArray(frame.events)) {
    for (const event of frame.events) {
      if (!isRoomEvent(event) && !isV1Removal(event)) continue;
      if (isRoomEvent(event) && event.seq <= room.lastSeq) continue;
      applyContent(room, event);
      if (isRoomEvent(event)) room.lastSeq = Math.max(room.lastSeq, event.seq);
      if (event.type === 'message' && validMessage(event)) fresh.push(messageOf({ ...event, roomId: room.roomId }));
    }
    // Once every event is in: the original may be in the replay too, in its current state.
    for (const event of frame.events) if (event?.type === 'message') countReply(room, event);
  } else {
    const incoming = (Array.isArray(frame.messages) ? frame.messages : [])
      .filter(validMessage)
      .map((m) => messageOf({ ...m, roomId: m.roomId ?? room.roomId }))
      .filter((m) => !replay || m.seq > requested);
    if (!replay) room.messages = [];
    for (const m of incoming) upsert(room, m);
    for (const m of incoming) countReply(room, m);
    fresh = incoming;
  }
  for (const r of Array.isArray(frame.removed) ? frame.removed : []) tombstone(room, r.messageId, r.removedBy);
  if (frame.room !== undefined) room.settings = frame.room ?? null;
  const serverLast = Number.isInteger(frame.lastSeq) ? frame.lastSeq : (room.messages.at(-1)?.seq ?? 0);
  room.lastSeq = replay ? Math.max(room.lastSeq ?? 0, serverLast) : serverLast;
  if (!replay) room.hasMore = room.messages.length > 0 && room.messages[0].seq > 1;
  room.joined = true;
  room.loaded = true;
  return { reset: !replay, messages: fresh };
}

/** A page of older messages (history): known messages keep the state the events gave them. */
export function addHistory(room, messages, hasMore) {
  for (const m of messages) {
    if (validMessage(m) && indexOfId(room, m.messageId) < 0) upsert(room, messageOf({ ...m, roomId: m.roomId ?? room.roomId }));
  }
  for (const m of messages) if (validMessage(m)) countReply(room, m);
  room.hasMore = hasMore === true;
}
