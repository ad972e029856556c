import { describe, expect, it } from 'vitest';

import { byDay, roomsReducer } from './roomStore.js';

const m = (seq, timestamp = '2026-11-26T10:00:00.000Z') => ({ roomId: 'general', seq, timestamp, message: `m${seq}` });

describe('roomsReducer', () => {
  it('shows each seq once and in order, whatever the delivery order', () => {
    let state = roomsReducer({}, { type: 'joined', roomId: 'general', reset: true, messages: [m(3), m(4)] });
    state = roomsReducer(state, { type: 'message', roomId: 'general', message: m(6), active: true });
    state = roomsReducer(state, { type: 'joined', roomId: 'general', reset: false, messages: [m(5), m(6)] });
    state = roomsReducer(state, { type: 'history', roomId: 'general', messages: [m(1), m(2), m(3)], hasMore: false });
    expect(state.general.messages.map((x) => x.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(state.general.hasMore).toBe(false);
  });

  it('replaces the list when a room is reset and counts unread messages of other rooms', () => {
    let state = roomsReducer({}, { type: 'joined', roomId: 'general', reset: true, messages: [m(1), m(2)] });
    state = roomsReducer(state, { type: 'joined', roomId: 'general', reset: true, messages: [m(900)] });
    expect(state.general.messages.map((x) => x.seq)).toEqual([900]);
    expect(state.general.hasMore).toBe(true);
    state = roomsReducer(state, { type: 'message', roomId: 'general', message: m(901), active: false });
    state = roomsReducer(state, { type: 'message', roomId: 'general', message: m(901), active: false });
    expect(state.general.unread).toBe(1);
    expect(roomsReducer(state, { type: 'read', roomId: 'general' }).general.unread).toBe(0);
  });
});

describe('byDay', () => {
  it('starts a new group on each calendar day', () => {
    const days = byDay([m(1, '2026-11-25T12:00:00Z'), m(2, '2026-11-25T13:00:00Z'), m(3, '2026-11-27T12:00:00Z')], 'en-GB');
    expect(days.map((d) => d.messages.map((x) => x.seq))).toEqual([[1, 2], [3]]);
  });
});
