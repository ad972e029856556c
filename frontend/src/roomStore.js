/**
 * What the UI shows of each room, as a pure reducer: messages in seq order, each seq
 * once, whatever order the socket, the replay and scroll-back deliver them in.
 */

export const emptyRoom = Object.freeze({
  messages: [],
  loaded: false,
  hasMore: false,
  loadingHistory: false,
  unread: 0,
  error: null,
  settings: null, // moderation settings (readOnly, slowModeSeconds, archived, private) or null
});

/** A moderator removed these messages: keep the seqs (no holes), drop the text. */
export function removeMessages(messages, removed) {
  const gone = new Set(removed.map((r) => r.messageId));
  if (!messages.some((m) => gone.has(m.messageId))) return messages;
  return messages.map((m) => (gone.has(m.messageId) ? { ...m, message: '', removed: true } : m));
}

export function mergeMessages(existing, incoming) {
  if (incoming.length === 0) return existing;
  const bySeq = new Map(existing.map((m) => [m.seq, m]));
  for (const m of incoming) bySeq.set(m.seq, m);
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
}

function room(state, roomId) {
  return state[roomId] ?? emptyRoom;
}

/** Whether there may be older messages than these: the server's word, or seq 1 not yet seen. */
function olderMayExist(messages) {
  return messages.length > 0 && messages[0].seq > 1;
}

export function roomsReducer(state, action) {
  const current = room(state, action.roomId);
  switch (action.type) {
    case 'joined': {
      const merged = action.reset ? mergeMessages([], action.messages) : mergeMessages(current.messages, action.messages);
      const messages = removeMessages(merged, action.removed ?? []);
      const hasMore = action.reset ? olderMayExist(messages) : current.hasMore;
      const settings = action.room ?? null;
      return { ...state, [action.roomId]: { ...current, messages, hasMore, loaded: true, error: null, settings } };
    }
    case 'message': {
      if (current.messages.some((x) => x.seq === action.message.seq)) return state;
      const messages = mergeMessages(current.messages, [action.message]);
      const unread = action.active ? current.unread : current.unread + 1;
      return { ...state, [action.roomId]: { ...current, messages, unread } };
    }
    case 'messageRemoved':
      return { ...state, [action.roomId]: { ...current, messages: removeMessages(current.messages, [action]) } };
    case 'roomUpdated':
      return { ...state, [action.roomId]: { ...current, settings: action.room } };
    case 'historyStart':
      return { ...state, [action.roomId]: { ...current, loadingHistory: true } };
    case 'history':
      return {
        ...state,
        [action.roomId]: {
          ...current,
          messages: mergeMessages(current.messages, action.messages),
          hasMore: action.hasMore,
          loadingHistory: false,
        },
      };
    case 'historyFailed':
      return { ...state, [action.roomId]: { ...current, loadingHistory: false } };
    case 'read':
      return current.unread === 0 ? state : { ...state, [action.roomId]: { ...current, unread: 0 } };
    case 'roomError':
      return { ...state, [action.roomId]: { ...current, error: action.message } };
    default:
      return state;
  }
}

/** Group messages by local calendar day for the day separators. */
export function byDay(messages, locale) {
  const days = [];
  for (const m of messages) {
    const date = new Date(m.timestamp);
    const key = Number.isNaN(date.getTime()) ? 'unknown' : `${date.getFullYear()}-${date.getMonth()}-${date.getDate()}`;
    if (days.length === 0 || days.at(-1).key !== key) {
      const label = key === 'unknown' ? 'Unknown date' : date.toLocaleDateString(locale, { weekday: 'long', year: 'numeric', month: 'long', day: 'numeric' });
      days.push({ key, label, messages: [] });
    }
    days.at(-1).messages.push(m);
  }
  return days;
}
