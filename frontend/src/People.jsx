/**
 * People and rooms in the React app (docs/protocol.md "Rooms users make"): the user's room
 * list and direct messages kept live, starting a room by name (public or private), a
 * direct message (one person or a group), browsing public rooms, and a room's members
 * (invite, remove, hand ownership on, settings, mute, leave). The protocol is the shared
 * client's people.js (static/chat/core/), the same module the template page uses.
 */

import { useEffect, useMemo, useState } from 'react';

import {
  People,
  STALE,
  changesMembersOf,
  describeError,
  latestOnly,
  parseUsernames,
  roomIdForName,
  withPresence,
} from '../../static/chat/core/people.js';

/** The People helper of a connection, and its room list (most recently active first). */
export function usePeople(connection) {
  const [people, setPeople] = useState(null);
  const [list, setList] = useState([]);
  useEffect(() => {
    if (!connection) return undefined;
    const made = new People(connection);
    setPeople(made);
    const off = made.onChange(setList);
    if (connection.state === 'live') made.refresh().catch(() => {});
    return () => {
      off();
      made.dispose();
      setPeople(null);
    };
  }, [connection]);
  return { people, list };
}

function ErrorLine({ error }) {
  return error ? (
    <p className="error" role="alert">
      {describeError(error)}
    </p>
  ) : null;
}

export function DirectList({ list, roomId, unreadOf }) {
  const directs = list.filter((r) => r.kind === 'direct');
  return (
    <section className="directs" aria-labelledby="directs-title">
      <h2 id="directs-title" className="rooms-section">
        Direct messages
      </h2>
      <ul>
        {directs.map((r) => {
          const unread = r.roomId === roomId || r.muted ? 0 : unreadOf(r.roomId);
          return (
            <li key={r.roomId}>
              <a href={`#/rooms/${r.roomId}`} aria-current={r.roomId === roomId ? 'page' : undefined} data-kind="direct">
                <span className="room-name">{r.name}</span>
                {unread > 0 && (
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
    </section>
  );
}

function open(roomId) {
  window.location.hash = `#/rooms/${roomId}`;
}

export function StartRoom({ people }) {
  const [name, setName] = useState('');
  const [topic, setTopic] = useState('');
  const [isPrivate, setPrivate] = useState(false);
  const [error, setError] = useState(null);
  const preview = roomIdForName(name);

  async function submit(event) {
    event.preventDefault();
    setError(null);
    try {
      const answer = await people.createRoom({ name, topic, isPrivate });
      setName('');
      setTopic('');
      setPrivate(false);
      open(answer.roomId);
    } catch (err) {
      setError(err);
    }
  }

  return (
    <details className="new-room people-start">
      <summary>Start a room</summary>
      <form onSubmit={submit}>
        <label htmlFor="start-room-name">Room name</label>
        <input id="start-room-name" value={name} maxLength={100} required onChange={(e) => setName(e.target.value)} />
        {preview && <p className="hint">Its address: #{preview}-…</p>}
        <label htmlFor="start-room-topic">Topic</label>
        <input id="start-room-topic" value={topic} maxLength={250} onChange={(e) => setTopic(e.target.value)} />
        <label className="check">
          <input type="checkbox" checked={isPrivate} onChange={(e) => setPrivate(e.target.checked)} /> Private: invited
          people only
        </label>
        <ErrorLine error={error} />
        <button type="submit">Start room</button>
      </form>
    </details>
  );
}

export function MessageSomeone({ people }) {
  const [names, setNames] = useState('');
  const [error, setError] = useState(null);

  async function submit(event) {
    event.preventDefault();
    setError(null);
    const usernames = parseUsernames(names);
    if (usernames.length === 0) return;
    try {
      const answer = await people.openDirect(usernames);
      setNames('');
      open(answer.roomId);
    } catch (err) {
      setError(err);
    }
  }

  return (
    <details className="new-room people-direct">
      <summary>Message someone</summary>
      <form onSubmit={submit}>
        <label htmlFor="direct-to">Usernames (commas for a group)</label>
        <input id="direct-to" value={names} required autoCapitalize="none" onChange={(e) => setNames(e.target.value)} />
        <ErrorLine error={error} />
        <button type="submit">Open conversation</button>
      </form>
    </details>
  );
}

export function BrowseRooms({ people }) {
  const [query, setQuery] = useState('');
  const [found, setFound] = useState(null);
  const [error, setError] = useState(null);

  async function search(event) {
    event?.preventDefault();
    setError(null);
    try {
      setFound(await people.browse(query.trim()));
    } catch (err) {
      setError(err);
    }
  }

  async function join(room) {
    setError(null);
    try {
      if (!room.joined) await people.join(room.roomId);
      open(room.roomId);
    } catch (err) {
      setError(err);
    }
  }

  return (
    <details className="new-room people-browse" onToggle={(e) => e.currentTarget.open && search()}>
      <summary>Browse rooms</summary>
      <form onSubmit={search}>
        <label htmlFor="browse-rooms-query">Search public rooms</label>
        <input id="browse-rooms-query" type="search" value={query} onChange={(e) => setQuery(e.target.value)} />
        <button type="submit">Search</button>
      </form>
      <ErrorLine error={error} />
      {found && (
        <ul className="people-list" aria-label="Public rooms">
          {found.length === 0 && <li className="hint">No public rooms match.</li>}
          {found.map((room) => (
            <li key={room.roomId}>
              <span className="people-name">
                {room.name} <span className="hint">#{room.roomId}</span>
              </span>
              <button type="button" onClick={() => join(room)} aria-label={`${room.joined ? 'Open' : 'Join'} ${room.name}`}>
                {room.joined ? 'Open' : 'Join'}
              </button>
            </li>
          ))}
        </ul>
      )}
    </details>
  );
}

export function MembersPanel({ people, roomId, mine, me }) {
  const [members, setMembers] = useState(null);
  const [invitee, setInvitee] = useState('');
  const [error, setError] = useState(null);
  const [opened, setOpened] = useState(false);
  const owner = mine?.role === 'owner';
  const direct = mine?.kind === 'direct';
  const manage = owner && !direct;

  const readMembers = useMemo(() => latestOnly((id) => people.members(id)), [people]);

  async function load() {
    setError(null);
    try {
      const list = await readMembers(roomId);
      if (list !== STALE) setMembers(list);
    } catch (err) {
      setMembers([]);
      setError(err);
    }
  }

  useEffect(() => {
    setMembers(null);
    if (opened) load();
    // eslint-disable-next-line react-hooks/exhaustive-deps -- reload when the room changes
  }, [roomId, opened]);

  // The open list follows the room live: a member added, taken out (by an owner, or a
  // moderator from the admin) or re-roled reads it again; a presence frame patches a status.
  useEffect(() => {
    if (!opened) return undefined;
    return people.onMembers((frame) => {
      if (frame.type === 'presence') setMembers((list) => withPresence(list, frame));
      else if (changesMembersOf(frame, roomId)) load();
    });
    // eslint-disable-next-line react-hooks/exhaustive-deps -- load reads the current room
  }, [people, roomId, opened]);

  async function act(fn) {
    setError(null);
    try {
      await fn();
      await load();
    } catch (err) {
      setError(err);
    }
  }

  return (
    <details className="members-panel" onToggle={(e) => setOpened(e.currentTarget.open)}>
      <summary>Members</summary>
      {mine && (
        <p className="hint">
          {mine.kind}
          {mine.topic ? ` · ${mine.topic}` : ''}
        </p>
      )}
      <ul className="people-list" aria-label="Members">
        {(members ?? []).map((m) => (
          <li key={m.userId}>
            <span className="people-name">
              {m.username}{' '}
              <span className="hint" data-status={m.status}>
                {m.role === 'owner' ? 'owner · ' : ''}
                {m.status}
              </span>
            </span>
            {manage && String(m.userId) !== String(me?.userId ?? '') && m.username !== me?.username && (
              <>
                <button
                  type="button"
                  onClick={() => act(() => people.setRole(roomId, m.username, m.role === 'owner' ? 'member' : 'owner'))}
                >
                  {m.role === 'owner' ? 'Make member' : 'Make owner'}
                </button>
                <button type="button" aria-label={`Remove ${m.username}`} onClick={() => act(() => people.remove(roomId, m.username))}>
                  Remove
                </button>
              </>
            )}
          </li>
        ))}
      </ul>
      {manage && (
        <form
          className="inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            const name = invitee.trim().replace(/^@/, '');
            if (!name) return;
            // Emptied at once so the next name can be typed while this one is on its way;
            // given back when the invitation fails and nothing new has been typed.
            setInvitee('');
            act(async () => {
              try {
                await people.invite(roomId, name);
              } catch (err) {
                setInvitee((typed) => typed || name);
                throw err;
              }
            });
          }}
        >
          <label htmlFor="invite-who" className="sr-only">
            Invite by username
          </label>
          <input id="invite-who" placeholder="Invite by username" value={invitee} onChange={(e) => setInvitee(e.target.value)} />
          <button type="submit">Invite</button>
        </form>
      )}
      <ErrorLine error={error} />
      <div className="members-actions">
        {mine && (
          <button type="button" onClick={() => act(() => people.mute(roomId, !mine.muted))}>
            {mine.muted ? 'Unmute room' : 'Mute room'}
          </button>
        )}
        {mine ? (
          <button
            type="button"
            onClick={async () => {
              setError(null);
              try {
                await people.leave(roomId);
                setMembers(null);
              } catch (err) {
                setError(err);
              }
            }}
          >
            Leave room
          </button>
        ) : (
          !direct && (
            <button type="button" onClick={() => act(() => people.join(roomId))}>
              Join room
            </button>
          )
        )}
      </div>
    </details>
  );
}
