import { describe, expect, it } from 'vitest';

import { messageActions } from './messageActions.js';
import { roomsReducer } from './roomStore.js';

const message = { messageId: 'm1', username: 'ann', message: 'hi', removed: false };

describe('the React message menu', () => {
  it('offers Report on others’ messages only, once, and opens the dialog through ui', () => {
    const opened = [];
    const ctx = { message, own: false, roomId: 'general', ui: { openReport: (m) => opened.push(m) } };
    const actions = messageActions.for(ctx);
    expect(actions.map((a) => a.label)).toEqual(['Report…', 'Reply', 'React…']);
    actions.find((a) => a.id === 'report').run();
    expect(opened).toEqual([message]);
    expect(messageActions.for({ ...ctx, own: true }).map((a) => a.id)).not.toContain('report');
    expect(messageActions.for({ ...ctx, reported: true }).map((a) => a.id)).not.toContain('report');
    expect(messageActions.for({ ...ctx, message: { ...message, removed: true } })).toEqual([]);
  });

  it('has the template UI’s items: Reply, React…, and Edit, Delete on your own, each starting its change', () => {
    const started = [];
    const ui = { startReply: (m) => started.push(['reply', m.messageId]), startChange: (m, mode) => started.push([mode, m.messageId]) };
    const own = messageActions.for({ message, own: true, roomId: 'general', ui });
    expect(own.map((a) => a.label)).toEqual(['Reply', 'React…', 'Edit', 'Delete']);
    for (const action of own) action.run();
    expect(started).toEqual([['reply', 'm1'], ['react', 'm1'], ['edit', 'm1'], ['delete', 'm1']]);
    expect(messageActions.for({ message: { ...message, messageId: undefined }, own: true, ui })).toEqual([]); // not stored yet
  });

  it('takes a feature’s item with one call, and gives it back', () => {
    const remove = messageActions.register({ id: 'pin', label: 'Pin', when: (ctx) => ctx.own, run: () => {} });
    expect(messageActions.for({ message, own: true, ui: {} }).map((a) => a.id)).toContain('pin');
    remove();
    expect(messageActions.for({ message, own: true, ui: {} }).map((a) => a.id)).not.toContain('pin');
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
