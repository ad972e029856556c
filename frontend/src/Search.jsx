/**
 * Search: the search box and its results (issue 19), over the shared core
 * (static/chat/core/search.js). A result opens its room at that message: the room is
 * opened, history is loaded until the message's seq, and the line is scrolled to and marked.
 */

import { useEffect, useRef, useState } from 'react';

import { loadUntilSeq, searchMessages } from '../../static/chat/core/search.js';

const TYPE_DELAY_MS = 300;

function Snippet({ parts }) {
  return (
    <span className="search-snippet" dir="auto">
      {parts.map((part, i) => (part.match ? <mark key={i}>{part.text}</mark> : <span key={i}>{part.text}</span>))}
    </span>
  );
}

/** Scroll to the room's line of `seq`, focus it and mark it for a moment; false when it is not shown. */
export function revealMessage(roomId, seq) {
  const li = document.querySelector(`.message-list[data-room="${CSS.escape(roomId)}"] li[data-seq="${Number(seq)}"]`);
  if (!li) return false;
  li.scrollIntoView({ block: 'center' });
  li.focus({ preventScroll: true });
  li.classList.add('found');
  setTimeout(() => li.classList.remove('found'), 4000);
  return true;
}

/**
 * The room (already being opened) at the message of `seq`: history loaded back to it, the
 * line revealed once React has rendered it (a search result, a clicked notification).
 * False when the message is no longer in the room.
 */
export async function showInContext(connection, roomId, seq) {
  const held = await loadUntilSeq(connection, roomId, seq);
  // The list renders after React commits the room's new messages: try on the next frames.
  for (let attempt = 0; attempt < 20; attempt += 1) {
    if (revealMessage(roomId, seq)) return true;
    await new Promise((resolve) => requestAnimationFrame(resolve));
  }
  return held;
}

export default function Search({ api, connection, onOpenRoom }) {
  const [q, setQ] = useState('');
  const [results, setResults] = useState([]);
  const [cursor, setCursor] = useState(null);
  const [status, setStatus] = useState('');
  const generation = useRef(0);

  async function run(text, { append = false } = {}) {
    const mine = ++generation.current;
    if (!text.trim()) {
      setResults([]);
      setStatus('');
      setCursor(null);
      return;
    }
    setStatus('Searching…');
    try {
      const page = await searchMessages((path) => api.request(path), text, { cursor: append ? cursor : null });
      if (mine !== generation.current) return;
      const all = append ? [...results, ...page.results] : page.results;
      setResults(all);
      setCursor(page.nextCursor);
      setStatus(all.length ? `${all.length}${page.nextCursor ? '+' : ''} result${all.length === 1 ? '' : 's'}` : 'No messages found.');
    } catch (error) {
      if (mine !== generation.current) return;
      setResults([]);
      setCursor(null);
      setStatus(error.code === 'invalid_query' ? error.message : 'Search is unavailable right now.');
    }
  }

  useEffect(() => {
    const timer = setTimeout(() => run(q), TYPE_DELAY_MS);
    return () => clearTimeout(timer);
    // eslint-disable-next-line react-hooks/exhaustive-deps -- run on typing only
  }, [q]);

  async function open(result) {
    onOpenRoom(result.roomId);
    if (!(await showInContext(connection, result.roomId, result.seq))) {
      setStatus('That message is no longer in the room.');
    }
  }

  return (
    <div className="search">
      <form
        role="search"
        className="search-box"
        onSubmit={(event) => {
          event.preventDefault();
          run(q);
        }}
      >
        <label htmlFor="search-input" className="sr-only">
          Search messages
        </label>
        <input
          id="search-input"
          type="search"
          maxLength={500}
          placeholder="Search messages"
          value={q}
          onChange={(event) => setQ(event.target.value)}
          onKeyDown={(event) => {
            if (event.key === 'Escape') setQ('');
          }}
        />
      </form>
      {(status || results.length > 0) && (
        <div className="search-panel">
          <p className="search-status" role="status">
            {status}
          </p>
          <ol className="search-results" aria-label="Search results">
            {results.map((r) => (
              <li key={r.messageId}>
                <button type="button" className="search-result" onClick={() => open(r)}>
                  <span className="search-meta">
                    #{r.roomName} · {r.username} · {new Date(r.timestamp).toLocaleString()}
                  </span>
                  <Snippet parts={r.snippet} />
                </button>
              </li>
            ))}
          </ol>
          {cursor && (
            <button type="button" className="link-button" onClick={() => run(q, { append: true })}>
              More results
            </button>
          )}
        </div>
      )}
    </div>
  );
}
