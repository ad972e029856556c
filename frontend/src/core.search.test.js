/** The search core both UIs share (static/chat/core/search.js): the request, its errors, and opening a result in context. */
import { describe, expect, it } from 'vitest';

import { SearchError, loadUntilSeq, searchMessages, searchPath } from '../../static/chat/core/search.js';

function fakeConnection({ messages, hasMore = true, joined = true }) {
  const room = { joined, messages, hasMore };
  const listeners = new Map();
  const calls = [];
  return {
    calls,
    room,
    rooms: new Map([['r', room]]),
    on(name, fn) {
      listeners.set(name, fn);
      return () => listeners.delete(name);
    },
    join() {
      room.joined = true;
      listeners.get('joined')?.({ roomId: 'r' });
    },
    async history(roomId, beforeSeq, limit) {
      calls.push(beforeSeq);
      const older = [];
      for (let seq = Math.max(1, beforeSeq - limit); seq < beforeSeq; seq += 1) older.push({ seq });
      room.messages = [...older, ...room.messages];
      room.hasMore = older[0]?.seq > 1;
    },
  };
}

describe('search core', () => {
  it('builds the request path with the query and cursor', () => {
    expect(searchPath('a b', { cursor: 'c1', limit: 5 })).toBe('/api/search?q=a+b&cursor=c1&limit=5');
  });

  it('answers an empty query without asking the server', async () => {
    const request = () => {
      throw new Error('no request expected');
    };
    await expect(searchMessages(request, '   ')).resolves.toEqual({ results: [], nextCursor: null });
  });

  it("turns the server's refusal into a SearchError with its code and message", async () => {
    const request = async () => {
      throw Object.assign(new Error('HTTP 400'), { status: 400, body: { error: 'invalid_query', message: 'a quote is not closed' } });
    };
    const error = await searchMessages(request, '"open').catch((e) => e);
    expect(error).toBeInstanceOf(SearchError);
    expect([error.code, error.message, error.status]).toEqual(['invalid_query', 'a quote is not closed', 400]);
  });

  it('pages history back until the message is held', async () => {
    const connection = fakeConnection({ messages: [{ seq: 300 }, { seq: 301 }] });
    await expect(loadUntilSeq(connection, 'r', 120, { pageSize: 100 })).resolves.toBe(true);
    expect(connection.calls).toEqual([300, 200]);
  });

  it('waits for the join first, and stops when the room has no more history', async () => {
    const connection = fakeConnection({ messages: [{ seq: 5 }], hasMore: false, joined: false });
    const done = loadUntilSeq(connection, 'r', 2);
    connection.join();
    await expect(done).resolves.toBe(false);
    expect(connection.calls).toEqual([]);
  });
});
