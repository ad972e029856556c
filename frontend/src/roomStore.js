/**
 * What the UI shows of each room, as a pure reducer. The room itself (messages in seq
 * order with edits and removals applied, settings, whether older pages exist) comes whole
 * from the protocol client's `room` event: static/chat/core/rooms.js applies the room
 * events, the same code the template page runs. This adds what only this UI keeps: unread
 * counts, a scroll-back request in flight, a room's error.
 */

export const emptyRoom = Object.freeze({
  messages: [],
  loaded: false,
  hasMore: false,
  loadingHistory: false,
  unread: 0,
  error: null, // what went wrong joining, in words
  errorCode: null, // its code (chat/errors.py)
  refused: false, // the room will not let us in (unknown, private, forbidden): asking again would not help
  settings: null, // moderation settings (readOnly, slowModeSeconds, archived, private) or null
});

function room(state, roomId) {
  return state[roomId] ?? emptyRoom;
}

export function roomsReducer(state, action) {
  const current = room(state, action.roomId);
  switch (action.type) {
    case 'room': {
      const { messages, settings, hasMore, loaded } = action.room;
      const error = loaded ? null : current.error;
      const errorCode = loaded ? null : current.errorCode;
      const refused = loaded ? false : current.refused;
      return { ...state, [action.roomId]: { ...current, messages, settings, hasMore, loaded, error, errorCode, refused } };
    }
    case 'message':
      // A new message arrived live: count it unless the reader is looking at its room.
      return action.active ? state : { ...state, [action.roomId]: { ...current, unread: current.unread + 1 } };
    case 'historyStart':
      return { ...state, [action.roomId]: { ...current, loadingHistory: true } };
    case 'historyDone':
      return { ...state, [action.roomId]: { ...current, loadingHistory: false } };
    case 'read':
      return current.unread === 0 ? state : { ...state, [action.roomId]: { ...current, unread: 0 } };
    case 'roomError':
      return {
        ...state,
        [action.roomId]: { ...current, error: action.message, errorCode: action.code ?? null, refused: Boolean(action.refused) },
      };
    case 'retry':
      return { ...state, [action.roomId]: { ...current, error: null, errorCode: null, refused: false } };
    default:
      return state;
  }
}

const dayOf = (date) => `${date.getFullYear()}-${date.getMonth()}-${date.getDate()}`;

/** A day separator's words, as the template UI says them: Today, Yesterday, else the date (the year when not this one). */
export function dayLabel(date, locale, now = new Date()) {
  const yesterday = new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1);
  if (dayOf(date) === dayOf(now)) return 'Today';
  if (dayOf(date) === dayOf(yesterday)) return 'Yesterday';
  const options = { weekday: 'long', month: 'long', day: 'numeric' };
  if (date.getFullYear() !== now.getFullYear()) options.year = 'numeric';
  return date.toLocaleDateString(locale, options);
}

/** Group messages by local calendar day for the day separators. */
export function byDay(messages, locale, now = new Date()) {
  const days = [];
  for (const m of messages) {
    const date = new Date(m.timestamp);
    const key = Number.isNaN(date.getTime()) ? 'unknown' : dayOf(date);
    if (days.length === 0 || days.at(-1).key !== key) {
      const label = key === 'unknown' ? 'Unknown date' : dayLabel(date, locale, now);
      days.push({ key, label, messages: [] });
    }
    days.at(-1).messages.push(m);
  }
  return days;
}
