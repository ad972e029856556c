/**
 * Notifications in the client core (static/chat/core/notify.js): a hidden tab shows a
 * message as the room's level says, and the settings travel through /api/notifications.
 */
import { describe, expect, it } from 'vitest';

import { DEFAULT_LEVEL, NotifySettings, wants } from '../../static/chat/core/notify.js';

const ME = '7';
const plain = { roomId: 'r', seq: 3, userId: '8', username: 'ben', message: 'lunch?' };
const mention = { ...plain, seq: 4, message: '@ann look', mentions: [ME] };

function fakeWindow(visibility = 'hidden') {
  const shown = [];
  class FakeNotification {
    static permission = 'granted';
    constructor(title, options) {
      this.title = title;
      this.options = options;
      shown.push(this);
    }
    close() {}
  }
  return { Notification: FakeNotification, document: { visibilityState: visibility }, shown };
}

function fakeServer(rooms = {}) {
  const calls = [];
  const state = { rooms, receipts: true };
  async function fetchJson(path, body) {
    calls.push([path, body]);
    if (path === '/api/notifications/rooms') state.rooms = { ...state.rooms, [body.roomId]: { level: body.level, muted: false } };
    if (path === '/api/notifications' && body) state.receipts = body.receipts;
    return { vapidPublicKey: null, receipts: state.receipts, rooms: state.rooms };
  }
  return { fetchJson, calls };
}

describe('wants: the one rule for a message in a hidden tab', () => {
  it('by default tells mentions and direct messages only', () => {
    expect(DEFAULT_LEVEL).toBe('mentions');
    expect(wants(plain, { userId: ME })).toBe(false);
    expect(wants(mention, { userId: ME })).toBe(true);
    expect(wants(plain, { userId: ME, direct: true })).toBe(true);
  });

  it('tells every message at "all", none at "nothing" or in a muted room, never your own', () => {
    expect(wants(plain, { userId: ME, level: 'all' })).toBe(true);
    expect(wants(mention, { userId: ME, level: 'nothing' })).toBe(false);
    expect(wants(plain, { userId: ME, level: 'nothing', direct: true })).toBe(false);
    expect(wants(mention, { userId: ME, level: 'all', muted: true })).toBe(false);
    expect(wants({ ...plain, userId: ME }, { userId: ME, level: 'all' })).toBe(false);
  });
});

describe('NotifySettings', () => {
  it('loads the levels, sets one through the API and follows it for a hidden tab', async () => {
    const server = fakeServer({ quiet: { level: 'nothing', muted: false } });
    const settings = await new NotifySettings({ fetchJson: server.fetchJson }).load();
    expect(settings.level('quiet')).toBe('nothing');
    expect(settings.level('r')).toBe('mentions');
    const win = fakeWindow();
    expect(settings.arrived(plain, { userId: ME, room: { name: 'Room' }, win })).toBeNull();
    await settings.setLevel('r', 'all');
    expect(server.calls.at(-1)).toEqual(['/api/notifications/rooms', { roomId: 'r', level: 'all' }]);
    const note = settings.arrived(plain, { userId: ME, room: { name: 'Room' }, win });
    expect(note.title).toBe('ben in #Room');
    expect(note.options.body).toBe('lunch?');
    await settings.setLevel('r', 'nothing');
    expect(settings.arrived(mention, { userId: ME, room: { name: 'Room' }, win })).toBeNull();
    expect(win.shown).toHaveLength(1);
  });

  it('shows nothing while the tab is visible, or in a room muted either way', async () => {
    const server = fakeServer({ r: { level: 'all', muted: true }, s: { level: 'all', muted: false } });
    const settings = await new NotifySettings({ fetchJson: server.fetchJson }).load();
    expect(settings.arrived(mention, { userId: ME, win: fakeWindow() })).toBeNull();
    const other = { ...plain, roomId: 's' };
    expect(settings.arrived(other, { userId: ME, room: { muted: true }, win: fakeWindow() })).toBeNull();
    expect(settings.arrived(other, { userId: ME, win: fakeWindow('visible') })).toBeNull();
    expect(settings.arrived(other, { userId: ME, win: fakeWindow() })).not.toBeNull();
  });

  it('turns sending read receipts off and on, and tells its listeners', async () => {
    const server = fakeServer();
    const settings = new NotifySettings({ fetchJson: server.fetchJson });
    const seen = [];
    settings.onChange((s) => seen.push(s.receipts));
    expect(settings.receipts).toBe(true);
    await settings.setReceipts(false);
    expect(server.calls.at(-1)).toEqual(['/api/notifications', { receipts: false }]);
    await settings.setReceipts(true);
    expect(seen).toEqual([false, true]);
  });
});
