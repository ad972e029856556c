import { describe, expect, it } from 'vitest';

import { messageActions } from './messageActions.js';
import { roomsReducer } from './roomStore.js';

const message = { messageId: 'm1', username: 'ann', message: 'hi', removed: false };

describe('the React message menu', () => {
  it('offers Report on others’ messages only, once, and opens the dialog through ui', () => {
    const opened = [];
    const ctx = { message, own: false, roomId: 'general', ui: { openReport: (m) => opened.push(m) } };
    const actions = messageActions.for(ctx);
    expect(actions.map((a) => a.label)).toEqual(['Report…']);
    actions[0].run();
    expect(opened).toEqual([message]);
    expect(messageActions.for({ ...ctx, own: true })).toEqual([]);
    expect(messageActions.for({ ...ctx, reported: true })).toEqual([]);
    expect(messageActions.for({ ...ctx, message: { ...message, removed: true } })).toEqual([]);
  });

  it('takes a feature’s item with one call, and gives it back', () => {
    const remove = messageActions.register({ id: 'edit', label: 'Edit', when: (ctx) => ctx.own, run: () => {} });
    expect(messageActions.for({ message, own: true, ui: {} }).map((a) => a.id)).toEqual(['edit']);
    remove();
    expect(messageActions.for({ message, own: true, ui: {} })).toEqual([]);
  });
});

describe('a refused room', () => {
  it('is remembered until the room is opened again or loads', () => {
    let state = roomsReducer({}, { type: 'roomError', roomId: 'x', code: 'unknown_room', message: 'gone', refused: true });
    expect(state.x).toMatchObject({ refused: true, errorCode: 'unknown_room', error: 'gone' });
    state = roomsReducer(state, { type: 'retry', roomId: 'x' });
    expect(state.x).toMatchObject({ refused: false, errorCode: null, error: null });
  });
});
