/**
 * People and rooms in the React app (docs/protocol.md "Rooms users make"): the user's room
 * list and direct messages kept live, starting a room by name (public or private), a
 * direct message (one person or a group), browsing public rooms, and a room's members
 * (invite, remove, hand ownership on, rename, topic, private or public, mute, leave). The
 * protocol is the shared client's people.js (static/chat/core/), the same module the template
 * page uses.
 */

import { useCallback, useEffect, useMemo, useState } from 'react';

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
import { LevelSelect } from './Notifications.jsx';
import { useModal } from './useModal.js';

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
      <h2 id="directs-title" className="sidebar-title sidebar-section">
        Direct messages
      </h2>
      <ul className="room-links dm-links" aria-labelledby="directs-title">
        {directs.map((r) => {
          const unread = r.roomId === roomId || r.muted ? 0 : unreadOf(r.roomId);
          return (
            <li key={r.roomId}>
              <a href={`#/rooms/${r.roomId}`} aria-current={r.roomId === roomId ? 'page' : undefined} data-kind="direct">
                <span className="room-link-name" dir="auto">
                  {r.name}
                </span>
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

/** A button opening a dialog, as the template's buttons open its <dialog>s: `dialog(close)`
 * draws it while open (useModal shows it), and it goes when closed. */
function DialogButton({ id, className = 'link-button', label, dialog }) {
  const [opened, setOpened] = useState(false);
  const close = useCallback(() => setOpened(false), []);
  return (
    <>
      <button type="button" className={className} id={id} aria-haspopup="dialog" onClick={() => setOpened(true)}>
        {label}
      </button>
      {opened && dialog(close)}
    </>
  );
}

/** "+ New room": the New room dialog (the template's #create-room-dialog). */
export function NewRoom({ people }) {
  return <DialogButton id="new-room-button" label="+ New room" dialog={(close) => <NewRoomDialog people={people} onClose={close} />} />;
}

function NewRoomDialog({ people, onClose }) {
  const dialog = useModal(onClose);
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
      dialog.current?.close();
      open(answer.roomId);
    } catch (err) {
      setError(err);
    }
  }

  return (
    <dialog className="dialog" id="create-room-dialog" ref={dialog} aria-labelledby="create-room-title">
      <form className="stack" onSubmit={submit}>
        <h2 id="create-room-title">New room</h2>
        <div className="field">
          <label htmlFor="new-room-name">Name</label>
          <input id="new-room-name" value={name} maxLength={100} required autoComplete="off" onChange={(e) => setName(e.target.value)} />
          <p className="muted field-help" aria-live="polite">
            {preview ? `Its address: #${preview}-…` : ''}
          </p>
        </div>
        <div className="field">
          <label htmlFor="new-room-topic">Topic (optional)</label>
          <input id="new-room-topic" value={topic} maxLength={250} autoComplete="off" onChange={(e) => setTopic(e.target.value)} />
        </div>
        <label className="check">
          <input type="checkbox" checked={isPrivate} onChange={(e) => setPrivate(e.target.checked)} /> Private: only people you
          invite can see it
        </label>
        <ErrorLine error={error} />
        <div className="dialog-buttons">
          <button type="button" className="secondary" onClick={() => dialog.current?.close()}>
            Cancel
          </button>
          <button type="submit" className="primary">
            Create room
          </button>
        </div>
      </form>
    </dialog>
  );
}

/** "+ New message": the New direct message dialog (the template's #direct-dialog). */
export function NewMessage({ people }) {
  return (
    <DialogButton id="new-dm-button" label="+ New message" dialog={(close) => <NewMessageDialog people={people} onClose={close} />} />
  );
}

function NewMessageDialog({ people, onClose }) {
  const dialog = useModal(onClose);
  const [names, setNames] = useState('');
  const [error, setError] = useState(null);

  async function submit(event) {
    event.preventDefault();
    setError(null);
    const usernames = parseUsernames(names);
    if (usernames.length === 0) return;
    try {
      const answer = await people.openDirect(usernames);
      dialog.current?.close();
      open(answer.roomId);
    } catch (err) {
      setError(err);
    }
  }

  return (
    <dialog className="dialog" id="direct-dialog" ref={dialog} aria-labelledby="direct-title">
      <form className="stack" onSubmit={submit}>
        <h2 id="direct-title">New direct message</h2>
        <div className="field">
          <label htmlFor="direct-usernames">To (usernames, separated by commas for a group)</label>
          <input
            id="direct-usernames"
            value={names}
            required
            autoComplete="off"
            autoCapitalize="none"
            placeholder="alice, bob"
            onChange={(e) => setNames(e.target.value)}
          />
        </div>
        <ErrorLine error={error} />
        <div className="dialog-buttons">
          <button type="button" className="secondary" onClick={() => dialog.current?.close()}>
            Cancel
          </button>
          <button type="submit" className="primary">
            Open
          </button>
        </div>
      </form>
    </dialog>
  );
}

/** "Browse rooms": the public rooms to join (the template's #browse-dialog). */
export function BrowseRooms({ people }) {
  return <DialogButton id="browse-rooms-button" label="Browse rooms" dialog={(close) => <BrowseDialog people={people} onClose={close} />} />;
}

function BrowseDialog({ people, onClose }) {
  const dialog = useModal(onClose);
  const [query, setQuery] = useState('');
  const [found, setFound] = useState(null);
  const [error, setError] = useState(null);
  const browse = useMemo(() => latestOnly((q) => people.browse(q)), [people]);

  // Every public room at first, then as the query is typed (a quarter second after the last key).
  useEffect(() => {
    let cancelled = false;
    const timer = setTimeout(async () => {
      setError(null);
      try {
        const rooms = await browse(query.trim());
        if (!cancelled && rooms !== STALE) setFound(rooms);
      } catch (err) {
        if (!cancelled) setError(err);
      }
    }, query ? 250 : 0);
    return () => {
      cancelled = true;
      clearTimeout(timer);
    };
  }, [browse, query]);

  async function join(room) {
    setError(null);
    try {
      if (!room.joined) await people.join(room.roomId);
      dialog.current?.close();
      open(room.roomId);
    } catch (err) {
      setError(err);
    }
  }

  return (
    <dialog className="dialog" id="browse-dialog" ref={dialog} aria-labelledby="browse-title">
      <div className="stack">
        <h2 id="browse-title">Browse rooms</h2>
        <label htmlFor="browse-query" className="sr-only">
          Search rooms
        </label>
        <input
          id="browse-query"
          type="search"
          placeholder="Search public rooms"
          autoComplete="off"
          value={query}
          onChange={(e) => setQuery(e.target.value)}
        />
        <ul className="people-list" id="browse-list" aria-label="Public rooms">
          {found?.length === 0 && <li className="muted">No public rooms match.</li>}
          {(found ?? []).map((room) => (
            <li key={room.roomId}>
              <span className="people-name">
                {room.name}{' '}
                <span className="muted">
                  #{room.roomId}
                  {room.topic ? ` · ${room.topic}` : ''}
                </span>
              </span>
              <button type="button" onClick={() => join(room)} aria-label={`${room.joined ? 'Open' : 'Join'} ${room.name}`}>
                {room.joined ? 'Open' : 'Join'}
              </button>
            </li>
          ))}
        </ul>
        <ErrorLine error={error} />
        <div className="dialog-buttons">
          <button type="button" onClick={() => dialog.current?.close()}>
            Close
          </button>
        </div>
      </div>
    </dialog>
  );
}

/**
 * An owner's room settings (the template's #room-settings-form): name, topic, private. Its
 * fields start from the room as the user's list has it and follow it when it changes (the
 * roomChanged after a save, or another owner's); an error shows once, in the dialog's line.
 */
function RoomSettingsForm({ room, onSave }) {
  const [name, setName] = useState(room.name);
  const [topic, setTopic] = useState(room.topic ?? '');
  const [isPrivate, setPrivate] = useState(room.kind === 'private');
  useEffect(() => {
    setName(room.name);
    setTopic(room.topic ?? '');
    setPrivate(room.kind === 'private');
  }, [room.name, room.topic, room.kind]);

  return (
    <form
      id="room-settings-form"
      className="stack"
      onSubmit={(e) => {
        e.preventDefault();
        onSave({ name, topic, private: isPrivate });
      }}
    >
      <div className="field">
        <label htmlFor="room-settings-name">Name</label>
        <input
          id="room-settings-name"
          value={name}
          maxLength={100}
          required
          autoComplete="off"
          onChange={(e) => setName(e.target.value)}
        />
      </div>
      <div className="field">
        <label htmlFor="room-settings-topic">Topic</label>
        <input id="room-settings-topic" value={topic} maxLength={250} autoComplete="off" onChange={(e) => setTopic(e.target.value)} />
      </div>
      <label className="check">
        <input type="checkbox" id="room-settings-private" checked={isPrivate} onChange={(e) => setPrivate(e.target.checked)} /> Private
      </label>
      <button type="submit">Save room settings</button>
    </form>
  );
}

/** The room head's "Members": a button opening the room's dialog (the template's #members-dialog),
 * which holds its members, the notification level, mute and leave, and an owner's room settings,
 * so the head keeps its name. */
export function MembersPanel(props) {
  return (
    <DialogButton
      className="members-button"
      label="Members"
      dialog={(close) => <MembersDialog {...props} onClose={close} />}
    />
  );
}

function MembersDialog({ people, roomId, roomName, mine, me, notifySettings, onClose }) {
  const dialog = useModal(onClose);
  const [members, setMembers] = useState(null);
  const [invitee, setInvitee] = useState('');
  const [error, setError] = useState(null);
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
    load();
    // eslint-disable-next-line react-hooks/exhaustive-deps -- reload when the room changes
  }, [roomId]);

  // The open list follows the room live: a member added, taken out (by an owner, or a
  // moderator from the admin) or re-roled reads it again; a presence frame patches a status.
  useEffect(
    () =>
      people.onMembers((frame) => {
        if (frame.type === 'presence') setMembers((list) => withPresence(list, frame));
        else if (changesMembersOf(frame, roomId)) load();
      }),
    // eslint-disable-next-line react-hooks/exhaustive-deps -- load reads the current room
    [people, roomId],
  );

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
    <dialog className="dialog" id="members-dialog" ref={dialog} aria-labelledby="members-title">
      <div className="stack">
        <h2 id="members-title">Members</h2>
        <p className="muted" id="members-room">
          {mine
            ? `${mine.name || roomName} · #${roomId} · ${mine.kind}${mine.topic ? ` · ${mine.topic}` : ''}`
            : `${roomName} · #${roomId}`}
        </p>
        <LevelSelect settings={notifySettings} roomId={roomId} />
        <ul className="people-list" id="members-list" aria-label="Members">
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
        {manage && <RoomSettingsForm key={roomId} room={mine} onSave={(changes) => act(() => people.updateRoom(roomId, changes))} />}
        <ErrorLine error={error} />
        <div className="dialog-buttons">
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
                  dialog.current?.close();
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
          <button type="button" className="primary" onClick={() => dialog.current?.close()}>
            Close
          </button>
        </div>
      </div>
    </dialog>
  );
}
