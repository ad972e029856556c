/**
 * Chat: the rooms (list, create, switch, unread counts), the open room's messages and the
 * composer, and the connection's state. Every room opened in this tab stays joined, so its
 * unread count keeps counting; the protocol client (websocket.js, static/chat/core/) rejoins
 * them all after a reconnect and hands over each room's state whole: this file and
 * MessageList.jsx only render it.
 */

import { useCallback, useEffect, useReducer, useRef, useState } from 'react';

import MessageList from './MessageList.jsx';
import Search from './Search.jsx';
import { emptyRoom, roomsReducer } from './roomStore.js';
import { ConnectionState } from './websocket.js';

const MAX_MESSAGE_LENGTH = 4000;
const ROOM_ID_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;

function ConnectionBanner({ state, onReconnect }) {
  // No ticking countdown: this is a live region, and a screen reader would read every tick.
  let text;
  if (state === ConnectionState.LIVE) text = 'Live';
  else if (state === ConnectionState.OFFLINE) text = 'Offline — reconnecting…';
  else if (state === ConnectionState.FORBIDDEN) text = 'This account may not chat here.';
  else text = 'Connecting…';
  return (
    <div className={`connection connection-${state}`} role="status" data-state={state}>
      <span className="dot" aria-hidden="true" />
      <span>{text}</span>
      {state === ConnectionState.OFFLINE && (
        <button type="button" className="link-button" onClick={onReconnect}>
          Reconnect now
        </button>
      )}
    </div>
  );
}

/**
 * The offline bar: across the room, not a dot in a corner, from the first failed attempt
 * until the socket is live again (reconnect attempts in between do not hide it). The
 * composer stays usable: what is written meanwhile is kept (in this browser, across a
 * reload) and goes out when the connection is back.
 */
function OfflineBar({ conn, wasDown, onReconnect }) {
  const [now, setNow] = useState(() => Date.now());
  const down = conn.state === ConnectionState.OFFLINE || (wasDown && conn.state === ConnectionState.CONNECTING);
  const retryAt = conn.state === ConnectionState.OFFLINE && typeof conn.retryInMs === 'number' ? conn.at + conn.retryInMs : null;
  useEffect(() => {
    if (retryAt === null) return undefined;
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [retryAt]);
  if (!down) return null;
  const seconds = retryAt === null ? 0 : Math.max(0, Math.ceil((retryAt - now) / 1000));
  return (
    <div className="offline-bar" role="status" data-testid="offline-bar">
      <span>
        <strong>Offline.</strong> Messages you write are kept and go out when the connection is back.
      </span>
      <span className="offline-detail" aria-hidden="true">
        {seconds > 0 ? `Reconnecting in ${seconds} s` : 'Reconnecting…'}
      </span>
      <button type="button" className="link-button" onClick={onReconnect}>
        Reconnect now
      </button>
    </div>
  );
}

/** What a room's moderation settings mean for whoever writes in it (docs/moderation.md). */
function RoomSettings({ settings }) {
  if (!settings) return null;
  const notes = [];
  if (settings.archived) notes.push('Archived: this room takes no new messages.');
  else if (settings.readOnly) notes.push('Read-only: only moderators post here.');
  if (settings.slowModeSeconds > 0 && !settings.archived) notes.push(`Slow mode: one message every ${settings.slowModeSeconds} s.`);
  if (settings.private) notes.push('Private room: members only.');
  return notes.length ? (
    <p className="room-settings" role="status">
      {notes.join(' ')}
    </p>
  ) : null;
}

function Composer({ onSend, roomName, offline }) {
  const [text, setText] = useState('');
  const tooLong = text.length > MAX_MESSAGE_LENGTH;

  function submit(event) {
    event.preventDefault();
    if (!text.trim() || tooLong) return;
    onSend(text);
    setText('');
  }

  function onKeyDown(event) {
    // Enter sends, Shift+Enter starts a new line (and IME composition is left alone).
    if (event.key === 'Enter' && !event.shiftKey && !event.nativeEvent.isComposing) submit(event);
  }

  return (
    <form className="composer" onSubmit={submit}>
      <label htmlFor="composer-text" className="sr-only">
        Message {roomName}
      </label>
      <textarea
        id="composer-text"
        rows={2}
        value={text}
        placeholder={`Message ${roomName}`}
        aria-describedby="composer-hint"
        aria-invalid={tooLong || undefined}
        onChange={(e) => setText(e.target.value)}
        onKeyDown={onKeyDown}
      />
      <span id="composer-hint" className={tooLong ? 'hint error' : 'hint'}>
        {tooLong
          ? `${text.length - MAX_MESSAGE_LENGTH} characters over the limit`
          : offline
            ? 'Offline: what you send now goes out when the connection is back.'
            : 'Enter to send, Shift+Enter for a new line'}
      </span>
      <button type="submit" disabled={!text.trim() || tooLong}>
        Send
      </button>
    </form>
  );
}

function NewRoom({ api, onCreated }) {
  const [roomId, setRoomId] = useState('');
  const [name, setName] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  async function submit(event) {
    event.preventDefault();
    const id = roomId.trim().toLowerCase();
    if (!ROOM_ID_RE.test(id)) {
      setError('Use 1–64 lowercase letters, digits, “-” or “_”, starting with a letter or digit.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await api.createRoom(id, name.trim() || id);
      setRoomId('');
      setName('');
      onCreated(id);
    } catch (err) {
      setError(err.message || 'The room could not be created.');
    } finally {
      setBusy(false);
    }
  }

  return (
    <details className="new-room">
      <summary>New room</summary>
      <form onSubmit={submit}>
        <label htmlFor="new-room-id">Room id</label>
        <input
          id="new-room-id"
          value={roomId}
          autoCapitalize="none"
          spellCheck={false}
          maxLength={64}
          required
          onChange={(e) => setRoomId(e.target.value)}
        />
        <label htmlFor="new-room-name">Name (optional)</label>
        <input id="new-room-name" value={name} maxLength={100} onChange={(e) => setName(e.target.value)} />
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          Create room
        </button>
      </form>
    </details>
  );
}

export default function Chat({ connection, api, user, roomId, onSignOut }) {
  const [rooms, setRooms] = useState([]);
  const [roomsError, setRoomsError] = useState(null);
  const [state, dispatch] = useReducer(roomsReducer, {});
  const [outbox, setOutbox] = useState([]);
  const [conn, setConn] = useState({ state: connection?.state ?? ConnectionState.CONNECTING });
  const [wasDown, setWasDown] = useState(false);
  const [announcement, setAnnouncement] = useState('');
  const current = useRef({ roomId, user });
  current.current = { roomId, user };

  const isOwn = useCallback(
    (m) => (user?.userId ? m.userId === user.userId : !!user?.username && m.username === user.username),
    [user],
  );

  const loadRooms = useCallback(async () => {
    try {
      const body = await api.rooms();
      setRooms(body.rooms ?? []);
      setRoomsError(null);
    } catch (err) {
      setRoomsError(err.status === 404 ? null : 'The room list could not be loaded.');
    }
  }, [api]);

  useEffect(() => {
    loadRooms();
  }, [loadRooms]);

  useEffect(() => {
    if (!connection) return undefined;
    const offs = [
      connection.on('state', (s) => {
        setConn({ ...s, at: Date.now() });
        if (s.state === ConnectionState.OFFLINE) setWasDown(true);
        else if (s.state !== ConnectionState.CONNECTING) setWasDown(false);
      }),
      connection.on('room', ({ roomId: id, room: snapshot }) => dispatch({ type: 'room', roomId: id, room: snapshot })),
      connection.on('message', (message) => {
        const { roomId: open, user: me } = current.current;
        const active = message.roomId === open && document.visibilityState !== 'hidden';
        dispatch({ type: 'message', roomId: message.roomId, active });
        const mine = me?.userId ? message.userId === me.userId : message.username === me?.username;
        if (message.roomId === open && !mine) {
          setAnnouncement(`${message.username}: ${message.message.slice(0, 200)}`);
        }
      }),
      connection.on('outbox', (items) => setOutbox(items)),
      connection.on('reported', () => setAnnouncement('Thank you: the moderators will look at this message.')),
      connection.on('roomError', (e) => dispatch({ type: 'roomError', roomId: e.roomId, message: e.message })),
    ];
    setConn({ state: connection.state, at: Date.now() });
    setOutbox(connection.outboxItems());
    return () => offs.forEach((off) => off());
  }, [connection]);

  useEffect(() => {
    if (!connection) return;
    connection.joinRoom(roomId);
    dispatch({ type: 'read', roomId });
    // A room that failed to join (unknown, say) can be tried again by opening it again.
  }, [connection, roomId]);

  const room = state[roomId] ?? emptyRoom;
  const roomInfo = rooms.find((r) => r.roomId === roomId);
  const roomName = roomInfo?.name || roomId;

  useEffect(() => {
    document.title = `${roomName} · Chatsite`;
  }, [roomName]);

  const loadMore = useCallback(async () => {
    if (!connection || room.loadingHistory || !room.hasMore || room.messages.length === 0) return;
    dispatch({ type: 'historyStart', roomId });
    try {
      await connection.history(roomId, room.messages[0].seq); // the page arrives as a room event
    } catch {
      // the socket dropped: the button stays, and asks again
    }
    dispatch({ type: 'historyDone', roomId });
  }, [connection, room, roomId]);

  const roomOutbox = outbox.filter((item) => item.roomId === roomId);
  const shownRooms = rooms.some((r) => r.roomId === roomId) ? rooms : [...rooms, { roomId, name: roomId }];

  return (
    <div className="chat">
      <header className="topbar">
        <h1 className="brand">Chatsite</h1>
        <ConnectionBanner state={conn.state} onReconnect={() => connection.reconnectNow()} />
        <div className="who">
          <span className="username" data-testid="username">
            {user?.username ?? ''}
          </span>
          <button type="button" className="secondary" onClick={onSignOut}>
            Sign out
          </button>
        </div>
      </header>
      <nav className="rooms" aria-label="Rooms">
        <Search api={api} connection={connection} onOpenRoom={(id) => (window.location.hash = `#/rooms/${id}`)} />
        <ul>
          {shownRooms.map((r) => {
            const unread = state[r.roomId]?.unread ?? 0;
            return (
              <li key={r.roomId}>
                <a href={`#/rooms/${r.roomId}`} aria-current={r.roomId === roomId ? 'page' : undefined}>
                  <span className="room-name">{r.name || r.roomId}</span>
                  {unread > 0 && r.roomId !== roomId && (
                    <span className="badge">
                      {unread}
                      <span className="sr-only"> unread</span>
                    </span>
                  )}
                </a>
              </li>
            );
          })}
        </ul>
        {roomsError && <p className="error">{roomsError}</p>}
        <NewRoom
          api={api}
          onCreated={(id) => {
            loadRooms();
            window.location.hash = `#/rooms/${id}`;
          }}
        />
      </nav>
      <main className="room" aria-labelledby="room-title">
        <h2 id="room-title">{roomName}</h2>
        <OfflineBar conn={conn} wasDown={wasDown} onReconnect={() => connection.reconnectNow()} />
        {room.error && (
          <p className="error" role="alert">
            {room.error}
          </p>
        )}
        <MessageList
          roomId={roomId}
          messages={room.messages}
          loaded={room.loaded}
          outbox={roomOutbox}
          isOwn={isOwn}
          hasMore={room.hasMore}
          loadingHistory={room.loadingHistory}
          onLoadMore={loadMore}
          onRetry={(id) => connection.retry(id)}
          onDiscard={(id) => connection.discard(id)}
          onReport={(m) => {
            const reason = window.prompt('Why should the moderators look at this message?', '');
            if (reason && reason.trim()) connection.reportMessage(roomId, m.messageId, reason.trim());
          }}
        />
        <RoomSettings settings={room.settings} />
        <Composer
          roomName={roomName}
          offline={conn.state !== ConnectionState.LIVE}
          onSend={(text) => connection.send(roomId, text)}
        />
      </main>
      <div className="sr-only" aria-live="polite" aria-atomic="true" data-testid="announcer">
        {announcement}
      </div>
    </div>
  );
}
