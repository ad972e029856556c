/**
 * changes.js: the changes people make to messages (docs/protocol.md, "Changes people make
 * to messages"), for both UIs: edit, delete, react, reply, read a thread, load history
 * around a message. The state rules (reactions with `me`, reply counts) are pure and used
 * by rooms.js; `attachChanges(connection)` is the protocol side: each request is answered
 * by a promise that settles on the server's `changed` (or `thread`, `history`) frame, or
 * rejects with the error frame's code.
 */

/** The emoji both pickers offer (any single emoji is accepted by the server). */
export const QUICK_REACTIONS = ['👍', '❤️', '😂', '🎉', '😮', '😢', '🙏', '👀'];

/**
 * A message's reactions after a `reactions` event: the server's list (by emoji, user ids
 * capped), and the user ids this client knows per emoji (`reactionUsers`), kept exact for
 * the reader past the cap with the event's `change`.
 */
export function mergeReactions(message, frame) {
  const reactions = Array.isArray(frame.reactions) ? frame.reactions : [];
  const before = message.reactionUsers ?? {};
  const known = {};
  for (const r of reactions) {
    const users = new Set((r.userIds ?? []).map(String));
    if ((r.count ?? 0) > users.size) for (const u of before[r.emoji] ?? []) users.add(u);
    known[r.emoji] = users;
  }
  const change = frame.change;
  if (change && typeof change.emoji === 'string' && known[change.emoji]) {
    if (change.added) known[change.emoji].add(String(change.userId));
    else known[change.emoji].delete(String(change.userId));
  }
  const reactionUsers = Object.fromEntries(Object.entries(known).map(([emoji, users]) => [emoji, [...users]]));
  return { reactions, reactionUsers };
}

/** reactionUsers from a payload's reactions (history, joined): what its userIds say. */
export function reactionUsersOf(reactions) {
  const known = {};
  for (const r of Array.isArray(reactions) ? reactions : []) known[r.emoji] = (r.userIds ?? []).map(String);
  return known;
}

/** What a UI shows of a message's reactions: [{emoji, count, me}] in the server's order. */
export function reactionChips(message, userId) {
  const me = String(userId ?? '');
  return (message.reactions ?? [])
    .filter((r) => r.count > 0)
    .map((r) => ({ emoji: r.emoji, count: r.count, me: (message.reactionUsers?.[r.emoji] ?? []).includes(me) }));
}

/** Whether `userId` may edit / delete this message (the server has the last word). */
export function canEdit(message, userId) {
  return Boolean(message?.messageId) && !message.removed && String(message.userId) === String(userId);
}

/** The one-line quote of a reply: the tombstone's words when its original was removed. */
export function quoteText(replyTo) {
  if (!replyTo) return '';
  if (replyTo.removed) return 'Message removed';
  return replyTo.excerpt ?? '';
}

/**
 * The menu items of these changes, registered in a UI's per-message registry (core/actions.js),
 * so both UIs offer the same items on the same messages: Reply and React… on any stored,
 * live message, Edit and Delete on the reader's own (`ctx.own`; the server has the last
 * word). `run` is the UI's side, {reply, react, edit, remove}, each called with the ctx.
 */
export function registerChangeActions(registry, run) {
  const live = (ctx) => Boolean(ctx.message?.messageId) && !ctx.message.removed;
  const mine = (ctx) => live(ctx) && Boolean(ctx.own);
  registry.register({ id: 'reply', label: 'Reply', when: live, run: run.reply });
  registry.register({ id: 'react', label: 'React…', when: live, run: run.react });
  registry.register({ id: 'edit', label: 'Edit', when: mine, run: run.edit });
  registry.register({ id: 'delete', label: 'Delete', when: mine, run: run.remove });
}

const ANSWERS = new Set(['changed', 'thread']);
const CHANGE_ACTIONS = new Set(['editMessage', 'deleteMessage', 'addReaction', 'removeReaction', 'thread']);

let counter = 0;
function requestId() {
  counter += 1;
  return `chg-${Date.now().toString(36)}-${counter}`;
}

/**
 * The protocol side, on a ChatConnection: returns {edit, remove, react, unreact, toggle,
 * thread, around, reply}. Each returns a promise; a socket that drops first rejects it.
 */
export function attachChanges(connection, { timeoutMs = 15000 } = {}) {
  const waiting = new Map(); // clientMessageId (or thread:roomId:messageId) -> {resolve, reject, timer}

  function settle(key, ok, value) {
    const waiter = waiting.get(key);
    if (!waiter) return false;
    waiting.delete(key);
    clearTimeout(waiter.timer);
    if (ok) waiter.resolve(value);
    else waiter.reject(Object.assign(new Error(value.message || value.code), { code: value.code }));
    return true;
  }

  function request(key, frame) {
    return new Promise((resolve, reject) => {
      if (!connection.rawSend(frame)) {
        reject(Object.assign(new Error('not connected'), { code: 'offline' }));
        return;
      }
      const timer = setTimeout(() => settle(key, false, { code: 'timeout', message: 'no answer from the server' }), timeoutMs);
      waiting.set(key, { resolve, reject, timer });
    });
  }

  connection.on('changed', (frame) => settle(frame.clientMessageId, true, frame));
  connection.on('thread', (frame) => settle(`thread:${frame.roomId}:${frame.messageId}`, true, frame));
  connection.on('changeError', (frame) => {
    if (frame.clientMessageId && settle(frame.clientMessageId, false, frame)) return;
    if (frame.action === 'thread') {
      for (const key of waiting.keys()) if (key.startsWith(`thread:${frame.roomId}:`)) settle(key, false, frame);
    }
  });
  connection.on('state', ({ state }) => {
    if (state === 'live') return;
    for (const key of [...waiting.keys()]) settle(key, false, { code: 'offline', message: 'the connection dropped' });
  });

  function change(action, roomId, messageId, extra = {}) {
    const clientMessageId = requestId();
    return request(clientMessageId, { action, roomId, messageId, clientMessageId, ...extra });
  }

  return {
    edit: (roomId, messageId, message) => change('editMessage', roomId, messageId, { message }),
    remove: (roomId, messageId) => change('deleteMessage', roomId, messageId),
    react: (roomId, messageId, emoji) => change('addReaction', roomId, messageId, { emoji }),
    unreact: (roomId, messageId, emoji) => change('removeReaction', roomId, messageId, { emoji }),
    /** Add the reader's reaction, or take it back when it is there. */
    toggle(roomId, message, emoji, userId) {
      const mine = reactionChips(message, userId).find((c) => c.emoji === emoji)?.me;
      return change(mine ? 'removeReaction' : 'addReaction', roomId, message.messageId, { emoji });
    },
    thread: (roomId, messageId) => request(`thread:${roomId}:${messageId}`, { action: 'thread', roomId, messageId }),
    /** Load the page of history around a seq into the room (a reply's original), and what
     * lies between it and the messages shown (client.js historyAround). */
    around: (roomId, seq, limit = 50) => connection.historyAround(roomId, seq, limit),
    /** Send a reply (through the outbox, like any message). */
    reply: (roomId, text, replyTo) => connection.send(roomId, text, { replyTo }),
  };
}

/** Whether an error frame answers one of these requests (client.js routes it here). */
export function isChangeError(frame) {
  return frame?.type === 'error' && CHANGE_ACTIONS.has(frame.action);
}

/** Whether a frame is one of these answers (not a room event). */
export function isChangeAnswer(frame) {
  return ANSWERS.has(frame?.type);
}
