import { describe, expect, it } from 'vitest';

import { byDay, dayLabel, roomsReducer } from './roomStore.js';

const m = (seq, timestamp = '2026-11-26T10:00:00.000Z') => ({ roomId: 'general', seq, timestamp, message: `m${seq}` });

describe('roomsReducer', () => {
  const snapshot = (seqs, extra = {}) => ({ messages: seqs.map((seq) => m(seq)), settings: null, hasMore: false, loaded: true, ...extra });

  it('shows the room the protocol client hands over, whole', () => {
    let state = roomsReducer({}, { type: 'roomError', roomId: 'general', message: 'try again' });
    state = roomsReducer(state, { type: 'room', roomId: 'general', room: snapshot([3, 4], { hasMore: true }) });
    expect(state.general.messages.map((x) => x.seq)).toEqual([3, 4]);
    expect(state.general).toMatchObject({ hasMore: true, loaded: true, error: null });
  });

  it('counts unread messages of rooms not being read', () => {
    let state = roomsReducer({}, { type: 'room', roomId: 'general', room: snapshot([1]) });
    state = roomsReducer(state, { type: 'message', roomId: 'general', active: false });
    state = roomsReducer(state, { type: 'message', roomId: 'general', active: true });
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

describe('dayLabel', () => {
  it('says Today and Yesterday as the template UI does, else the date', () => {
    const now = new Date(2026, 11, 3, 12);
    expect(dayLabel(new Date(2026, 11, 3, 1), 'en-GB', now)).toBe('Today');
    expect(dayLabel(new Date(2026, 11, 2, 23), 'en-GB', now)).toBe('Yesterday');
    expect(dayLabel(new Date(2026, 10, 25), 'en-GB', now)).toBe('Wednesday 25 November');
    expect(dayLabel(new Date(2025, 10, 25), 'en-GB', now)).toMatch(/2025/);
  });
});
