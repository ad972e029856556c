/**
 * Presence and typing state both UIs render (static/chat/core/presence.js, typing.js).
 */
import { describe, expect, it, vi } from 'vitest';

import { createPresenceBook, presenceText, watchActivity } from '../../static/chat/core/presence.js';
import { createTypingSender, createTypingTracker, typingLabel } from '../../static/chat/core/typing.js';

describe('typing', () => {
  it('names one, two, then several typists', () => {
    expect(typingLabel([])).toBe('');
    expect(typingLabel(['alice'])).toBe('alice is typing…');
    expect(typingLabel(['alice', 'bob'])).toBe('alice and bob are typing…');
    expect(typingLabel(['alice', 'bob', 'carol'])).toBe('several people are typing…');
  });

  it('drops a typist 6 s after their last frame, or when their message arrives', () => {
    let clock = 0;
    const timers = [];
    const changes = [];
    const tracker = createTypingTracker({
      now: () => clock,
      setTimer: (fn, ms) => timers.push({ fn, at: clock + ms }) - 1,
      clearTimer: (id) => {
        timers[id] = null;
      },
      onChange: (roomId) => changes.push(roomId),
    });
    const fire = () => {
      for (const t of timers.splice(0)) if (t && t.at <= clock) t.fn();
    };
    tracker.typing({ type: 'typing', roomId: 'r', userId: '1', username: 'alice' });
    tracker.typing({ type: 'typing', roomId: 'r', userId: '2', username: 'bob' });
    expect(tracker.label('r')).toBe('alice and bob are typing…');
    expect(tracker.label('other')).toBe('');
    clock = 4000;
    tracker.typing({ type: 'typing', roomId: 'r', userId: '2', username: 'bob' }); // bob goes on
    clock = 6000;
    fire();
    expect(tracker.names('r')).toEqual(['bob']);
    tracker.message({ roomId: 'r', userId: '2' });
    expect(tracker.label('r')).toBe('');
    expect(changes).toEqual(['r', 'r', 'r', 'r']);
  });

  it('sends one typing frame per room per 2 s, and again at once after a send', () => {
    let clock = 0;
    const sent = [];
    const sender = createTypingSender((roomId) => sent.push(roomId), { now: () => clock });
    sender.keystroke('r');
    clock = 1999;
    sender.keystroke('r');
    sender.keystroke('s');
    clock = 2000;
    sender.keystroke('r');
    sender.sent('s');
    sender.keystroke('s');
    expect(sent).toEqual(['r', 's', 'r', 's']);
  });
});

describe('presence', () => {
  it('keeps the latest status per user and says when it changed', () => {
    const onChange = vi.fn();
    const book = createPresenceBook({ onChange });
    expect(book.of('7')).toEqual({ status: 'offline', lastSeenAt: null });
    book.presence({ type: 'presence', userId: '7', status: 'online', lastSeenAt: null });
    book.presence({ type: 'presence', userId: '7', status: 'online', lastSeenAt: null });
    book.presence({ type: 'presence', userId: '7', status: 'busy' }); // not a status: ignored
    expect(book.of('7').status).toBe('online');
    expect(onChange).toHaveBeenCalledTimes(1);
    expect(presenceText({ status: 'away', lastSeenAt: null })).toBe('away');
    expect(presenceText({ status: 'offline', lastSeenAt: '2020-01-02T03:04:05.000Z' })).toMatch(/^offline · last seen /);
  });

  it('says away while the tab is hidden and online when it is back', () => {
    const listeners = {};
    const doc = { visibilityState: 'visible', addEventListener: (n, f) => (listeners[n] = f), removeEventListener() {} };
    const win = { document: doc, addEventListener() {}, removeEventListener() {} };
    const said = [];
    const stop = watchActivity({ setPresence: (s) => said.push(s) }, win);
    doc.visibilityState = 'hidden';
    listeners.visibilitychange();
    doc.visibilityState = 'visible';
    listeners.visibilitychange();
    expect(said).toEqual(['away', 'online']);
    stop();
  });
});
