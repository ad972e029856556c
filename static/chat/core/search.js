/**
 * Message search, shared by both UIs: the request to GET /api/search, a result's snippet
 * as parts, and opening a result's room at its message (the room is joined, then history
 * is loaded until the message's seq is in view; the live view continues from there).
 *
 * The HTTP call is the caller's: `request(path)` resolves with the parsed JSON body or
 * rejects with an error carrying `status` and `body` (the React app's Api.request does;
 * the template UI passes `sameOriginRequest`).
 */

export const SEARCH_PATH = '/api/search';
export const SEARCH_MAX_CHARS = 500;
/** How long a result waits for its room's join before it gives up. */
export const JOIN_WAIT_MS = 10000;

export class SearchError extends Error {
  constructor(code, message, status = 0) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

export function searchPath(q, { cursor = null, limit = null } = {}) {
  const params = new URLSearchParams({ q });
  if (cursor) params.set('cursor', cursor);
  if (limit) params.set('limit', String(limit));
  return `${SEARCH_PATH}?${params}`;
}

/** A fetch of a same-origin JSON endpoint with the session cookie (the template UI). */
export function sameOriginRequest(fetchImpl = (...args) => globalThis.fetch(...args)) {
  return async (path) => {
    let response;
    try {
      response = await fetchImpl(path, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    } catch (error) {
      throw Object.assign(new Error('The server cannot be reached.'), { status: 0, body: null });
    }
    const body = await response.json().catch(() => null);
    if (!response.ok) throw Object.assign(new Error(body?.message ?? `HTTP ${response.status}`), { status: response.status, body });
    return body;
  };
}

/**
 * One page of results: resolves {results, nextCursor}; rejects with a SearchError whose
 * `code` is the server's (invalid_query with a message for the user, unauthorized, ...).
 */
export async function searchMessages(request, q, { cursor = null, limit = null } = {}) {
  const text = (q ?? '').trim();
  if (!text) return { results: [], nextCursor: null };
  if (text.length > SEARCH_MAX_CHARS) {
    throw new SearchError('invalid_query', `a search is at most ${SEARCH_MAX_CHARS} characters`, 400);
  }
  try {
    const body = await request(searchPath(text, { cursor, limit }));
    return { results: body?.results ?? [], nextCursor: body?.nextCursor ?? null };
  } catch (error) {
    const body = error?.body ?? {};
    throw new SearchError(body.error ?? 'unavailable', body.message ?? error?.message ?? 'Search failed.', error?.status ?? 0);
  }
}

/** Wait until the connection has joined the room: resolves true, or false after `timeoutMs`. */
export function waitJoined(connection, roomId, timeoutMs = JOIN_WAIT_MS) {
  if (connection.rooms.get(roomId)?.joined) return Promise.resolve(true);
  return new Promise((resolve) => {
    let off = () => {};
    const timer = setTimeout(() => {
      off();
      resolve(false);
    }, timeoutMs);
    off = connection.on('joined', (event) => {
      if (event.roomId !== roomId) return;
      clearTimeout(timer);
      off();
      resolve(true);
    });
  });
}

/**
 * Load the room's history until the message of `seq` is held (the caller joins the room
 * first). Uses `history` with `aroundSeq` when the client offers it (historyAround), else
 * pages back from the oldest message held. Resolves true when the message is held.
 */
export async function loadUntilSeq(connection, roomId, seq, { pageSize = 100, maxPages = 50 } = {}) {
  if (!(await waitJoined(connection, roomId))) return false;
  const held = () => (connection.rooms.get(roomId)?.messages ?? []).some((m) => m.seq === seq);
  if (typeof connection.historyAround === 'function' && !held()) {
    try {
      await connection.historyAround(roomId, seq, pageSize);
    } catch {
      // fall back to paging back
    }
  }
  for (let page = 0; page < maxPages && !held(); page += 1) {
    const room = connection.rooms.get(roomId);
    const lowest = room?.messages[0]?.seq;
    if (!room || lowest === undefined || lowest < seq || !room.hasMore) break;
    await connection.history(roomId, lowest, pageSize);
  }
  return held();
}
