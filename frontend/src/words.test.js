import { describe, expect, it } from 'vitest';

import { errorText, pendingText, secondsUntil } from './words.js';

describe('errors in words', () => {
  it('says what a code means, never the code', () => {
    expect(errorText('slow_mode', 'slow mode')).toBe('Slow mode is on in this room.');
    expect(errorText('unknown_room')).toMatch(/does not exist/);
    expect(errorText('something_new', 'the server said so')).toBe('The server said so');
    expect(errorText(undefined, undefined)).toBe('Something went wrong.');
  });

  it('counts down a message waiting out slow mode', () => {
    const item = { status: 'pending', retrying: 'slow_mode', retryAt: 23_000 };
    expect(pendingText(item, 0)).toBe('Slow mode: you can post again in 23 s');
    expect(pendingText(item, 22_500)).toBe('Slow mode: you can post again in 1 s');
    expect(pendingText(item, 23_000)).toBe('Sending again…');
    expect(pendingText({ status: 'pending', retrying: 'not_joined', retryAt: 2000 }, 0)).toMatch(/Trying again in 2 s$/);
  });

  it('names a failure and a plain pending message', () => {
    expect(pendingText({ status: 'failed', code: 'room_archived', error: 'room is archived' })).toBe(
      'Not sent: This room is archived: it takes no new messages.',
    );
    expect(pendingText({ status: 'pending' })).toBe('Sending…');
    expect(secondsUntil(undefined)).toBe(0);
  });
});
