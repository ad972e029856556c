/**
 * Chat: the layout both UIs share (issue 20): the rooms in a sidebar (a drawer on a phone)
 * with unread counts, the open room in the main pane (its messages, the composer, the
 * connection's state), switched in place. Every room opened in this tab stays joined, so
 * its unread count keeps counting; the protocol client (websocket.js, static/chat/core/)
 * rejoins them all after a reconnect and hands over each room's state whole: this file and
 * MessageList.jsx only render it. Per-message actions come from messageActions.js.
 */

import { useCallback, useEffect, useMemo, useReducer, useRef, useState } from 'react';

import { attachChanges } from '../../static/chat/core/changes.js';
import { ReplyBar, ThreadPanel, scrollToMessage } from './MessageChanges.jsx';
import { enable as enableNotifications, permission } from '../../static/chat/core/notify.js';
import { ReadState, badge, mentionQuery, suggestNames } from '../../static/chat/core/unread.js';
import { FileLinksContext, FilePicker, useDropTarget, useFileLinks, useUploads } from './Files.jsx';
import MessageList from './MessageList.jsx';
import { TypingLine, usePresence } from './Presence.jsx';
import { ReceiptsToggle, useNotifySettings } from './Notifications.jsx';
import { BrowseRooms, DirectList, MembersPanel, NewMessage, NewRoom, usePeople } from './People.jsx';
import MessageMenu from './MessageMenu.jsx';
import { messageActions } from './messageActions.js';
import ReportDialog from './ReportDialog.jsx';
import ModerateDialog from './ModerateDialog.jsx';
import { bannedText, moderatedText, sendModeration } from '../../static/chat/core/moderation.js';
import { HOME_ROOM, PEOPLE_ACTIONS, ROOM_GONE_TITLE, roomGoneText, sidebarRooms } from '../../static/chat/core/people.js';
import Search, { showInContext } from './Search.jsx';
import { emptyRoom, roomsReducer } from './roomStore.js';
import { ConnectionState } from './websocket.js';
import { errorText, secondsUntil } from './words.js';

const MAX_MESSAGE_LENGTH = 4000;

function ConnectionBanner({ state }) {
  // No ticking countdown: this is a live region, and a screen reader would read every tick.
  let text;
  if (state === ConnectionState.LIVE) text = 'Live';
  else if (state === ConnectionState.OFFLINE) text = 'Offline — reconnecting…';
  else if (state === ConnectionState.FORBIDDEN) text = 'Banned';
  else text = 'Connecting…';
  return (
    <div className={`status connection connection-${state}`} role="status" data-state={state}>
      <span className="dot" aria-hidden="true" />
      <span>{text}</span>
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
  const seconds = secondsUntil(retryAt, now);
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

function Composer({ onSend, roomName, offline, disabledReason, inputRef, onType, names = () => [], self = null, files = null, onFiles = () => {} }) {
  const [text, setText] = useState('');
  const [complete, setComplete] = useState(null); // {start, options, active} while typing an @name
  const tooLong = text.length > MAX_MESSAGE_LENGTH;
  const disabled = Boolean(disabledReason);
  // Shared files (issue 18): a message takes the finished uploads; it waits for those on their way.
  const ready = files ? files.items.some((i) => i.status === 'done') : false;
  const uploading = files ? files.items.some((i) => i.status === 'uploading') : false;

  function onChange(event) {
    setText(event.target.value);
    const at = mentionQuery(event.target.value, event.target.selectionStart);
    const options = at ? suggestNames(at.query, names(), { self }) : [];
    setComplete(options.length ? { start: at.start, options, active: 0 } : null);
  }

  function take(event, name) {
    const box = event.currentTarget.form?.elements['composer-text'] ?? event.currentTarget;
    const caret = box.selectionStart;
    setText(`${text.slice(0, complete.start)}@${name} ${text.slice(caret)}`);
    setComplete(null);
  }

  function submit(event) {
    event.preventDefault();
    if (disabled || (!text.trim() && !ready) || tooLong || uploading) return;
    onSend(text.trim() ? text : '', files ? files.tray.takeDone() : []);
    setText('');
  }

  function onKeyDown(event) {
    if (complete) {
      const n = complete.options.length;
      if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
        event.preventDefault();
        setComplete({ ...complete, active: (complete.active + (event.key === 'ArrowDown' ? 1 : n - 1)) % n });
        return;
      }
      if (event.key === 'Tab' || event.key === 'Enter') {
        event.preventDefault();
        take(event, complete.options[complete.active]);
        return;
      }
      if (event.key === 'Escape') {
        setComplete(null);
        return;
      }
    }
    // Enter sends, Shift+Enter starts a new line (and IME composition is left alone).
    if (event.key === 'Enter' && !event.shiftKey && !event.nativeEvent.isComposing) submit(event);
  }

  let hint = 'Enter to send, Shift+Enter for a new line';
  if (disabled) hint = disabledReason;
  else if (tooLong) hint = `${text.length - MAX_MESSAGE_LENGTH} characters over the limit`;
  else if (uploading) hint = 'Files are uploading: send when they are done.';
  else if (offline) hint = 'Offline: what you send now goes out when the connection is back.';

  return (
    <form className={`composer${files ? ' with-files' : ''}${disabled ? ' disabled' : ''}`} onSubmit={submit}>
      {files && <FilePicker tray={files.tray} items={files.items} onFiles={onFiles} />}
      {complete && (
        <ul className="mention-suggestions" id="mention-suggestions" role="listbox">
          {complete.options.map((name, i) => (
            <li
              key={name}
              id={`mention-option-${i}`}
              role="option"
              aria-selected={i === complete.active}
              onMouseDown={(event) => {
                event.preventDefault();
                take(event, name);
              }}
            >
              @{name}
            </li>
          ))}
        </ul>
      )}
      <label htmlFor="composer-text" className="sr-only">
        Message {roomName}
      </label>
      <textarea
        id="composer-text"
        ref={inputRef}
        rows={2}
        value={text}
        disabled={disabled}
        placeholder={disabled ? '' : `Message ${roomName}`}
        aria-describedby="composer-hint"
        aria-invalid={tooLong || undefined}
        onChange={(e) => {
          onChange(e);
          if (e.target.value.trim()) onType?.();
        }}
        onKeyDown={onKeyDown}
        onBlur={() => setComplete(null)}
        aria-controls={complete ? 'mention-suggestions' : undefined}
        aria-activedescendant={complete ? `mention-option-${complete.active}` : undefined}
        onPaste={(e) => {
          if (e.clipboardData?.files?.length) {
            e.preventDefault(); // a pasted screenshot is a file, not text
            onFiles(e.clipboardData.files);
          }
        }}
      />
      <button type="submit" className="primary" disabled={disabled || (!text.trim() && !ready) || tooLong || uploading}>
        Send
      </button>
      <span id="composer-hint" className={tooLong || disabled ? 'hint error' : 'hint'}>
        {hint}
      </span>
    </form>
  );
}

/** The latest messages that mention the user, each a link to its room. */
function MentionsList({ reads }) {
  const [open, setOpen] = useState(false);
  return (
    <div className="mentions">
      <button
        type="button"
        className="link-button mentions-toggle"
        aria-expanded={open}
        onClick={() => {
          if (!open) reads?.askMentions();
          setOpen(!open);
        }}
      >
        Mentions
      </button>
      {open && (
        <ol className="mentions-list" aria-label="Messages that mention you">
          {(reads?.mentionList ?? []).length === 0 && <li>No mentions yet.</li>}
          {(reads?.mentionList ?? []).map((m) => (
            <li key={`${m.roomId}-${m.seq}`}>
              <a href={`#/rooms/${m.roomId}`}>{`#${m.roomId} · ${m.username}: ${String(m.message).slice(0, 120)}`}</a>
            </li>
          ))}
        </ol>
      )}
    </div>
  );
}

/** Whether a media query matches, kept in step with the window (the phone layout's drawer). */
function useMedia(query) {
  const [matches, setMatches] = useState(() => window.matchMedia(query).matches);
  useEffect(() => {
    const list = window.matchMedia(query);
    const onChange = () => setMatches(list.matches);
    onChange();
    list.addEventListener('change', onChange);
    return () => list.removeEventListener('change', onChange);
  }, [query]);
  return matches;
}

// The width below which the sidebar is a drawer: the same as styles.css's and chat.css's.
const DRAWER_QUERY = '(max-width: 48rem)';

/** An unknown, private or forbidden room, or one the user was taken out of: a clear page with
 * a way back, no composer (the template's, chat.js showGone; the words are core/people.js's). */
function RoomGone({ roomId, text }) {
  const title = useRef(null);
  const home = useRef(null);
  // The composer went with the room: focus left on the body goes to the page's way out.
  useEffect(() => {
    const focus = document.activeElement;
    if (!focus || focus === document.body) (home.current ?? title.current)?.focus();
  }, [roomId, text]);
  return (
    <div className="room-gone" role="alert" data-testid="room-gone">
      <h2 ref={title} tabIndex={-1}>
        {ROOM_GONE_TITLE}
      </h2>
      <p>{text}</p>
      {roomId !== HOME_ROOM && (
        <p>
          <a ref={home} href={`#/rooms/${HOME_ROOM}`}>
            Go to #{HOME_ROOM}
          </a>
        </p>
      )}
    </div>
  );
}

export default function Chat({ connection, api, user, roomId }) {
  const [rooms, setRooms] = useState([]);
  const [roomsError, setRoomsError] = useState(null);
  const [state, dispatch] = useReducer(roomsReducer, {});
  const [outbox, setOutbox] = useState([]);
  const [conn, setConn] = useState({ state: connection?.state ?? ConnectionState.CONNECTING });
  const [wasDown, setWasDown] = useState(false);
  const [announcement, setAnnouncement] = useState('');
  const [notice, setNotice] = useState(null); // {kind: 'info' | 'error', text}
  const [drawerOpen, setDrawerOpen] = useState(false);
  const [menu, setMenu] = useState(null); // {message, trigger, actions}
  const [reporting, setReporting] = useState(null); // the message being reported
  const [moderating, setModerating] = useState(null); // {kind, message}: a moderator's dialog
  const [reported, setReported] = useState(() => new Set());
  const composer = useRef(null);
  const drawerButton = useRef(null);
  const sidebar = useRef(null);
  const notifySettings = useNotifySettings(api);
  const current = useRef({ roomId, user });
  current.current = { ...current.current, roomId, user, notifySettings };
  const live = usePresence(connection, roomId); // presence dots and typing (Presence.jsx)
  // Read state (issue 16): the server's counts, in step across tabs (static/chat/core/unread.js).
  const [reads, setReads] = useState(null);
  const [, setReadsVersion] = useState(0);
  const [notify, setNotify] = useState(() => permission());
  useEffect(() => {
    if (!connection) return undefined;
    const tracker = new ReadState(connection, { userId: user?.userId ?? null });
    setReads(tracker);
    if (connection.state === ConnectionState.LIVE) tracker.refresh();
    const offs = [
      tracker.onChange(() => setReadsVersion((v) => v + 1)),
      // A message while the tab is hidden: a notification as the room's level says (the
      // core's rule, as in the template UI: all, mentions and DMs, nothing; never muted).
      connection.on('message', (m) => {
        const { user: me, notifySettings, roomOf } = current.current;
        const room = roomOf(m.roomId);
        notifySettings?.arrived(m, {
          userId: me?.userId,
          room: { name: room?.name, direct: room?.kind === 'direct', muted: room?.muted },
          // The room at the message, as a search result opens (Search.jsx).
          onClick: () => {
            window.location.hash = `#/rooms/${m.roomId}`;
            showInContext(connection, m.roomId, m.seq);
          },
        });
      }),
    ];
    return () => offs.forEach((off) => off());
  }, [connection, user?.userId]);
  // The divider's place: the mark as it was when the room opened, taken while rendering,
  // before the list's effects mark the room read.
  const divider = useRef({ roomId: null, seq: null });
  if (reads && (divider.current.roomId !== roomId || divider.current.seq === null)) {
    divider.current = { roomId, seq: reads.counts.has(roomId) ? reads.state(roomId).lastReadSeq : null };
  }
  const dividerAfter = divider.current.seq;
  const onSeen = useCallback((seq) => reads?.markRead(roomId, seq), [reads, roomId]);
  // Rooms in the list are joined (up to 20), so what arrives in them counts at once.
  useEffect(() => {
    if (!connection || !reads) return;
    for (const r of rooms.slice(0, 20)) connection.joinRoom(r.roomId);
  }, [connection, reads, rooms]);

  const isOwn = useCallback(
    (m) => (user?.userId ? m.userId === user.userId : !!user?.username && m.username === user.username),
    [user],
  );

  // Reads of the list overlap (each membership change asks again); only the last one asked
  // is shown, so a slow answer from before a removal cannot bring the room back.
  const roomsAsked = useRef(0);
  const loadRooms = useCallback(async () => {
    const asked = ++roomsAsked.current;
    try {
      const body = await api.rooms();
      if (asked !== roomsAsked.current) return;
      setRooms(body.rooms ?? []);
      setRoomsError(null);
    } catch (err) {
      if (asked !== roomsAsked.current) return;
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
      connection.on('reported', ({ messageId }) => {
        setReported((done) => new Set(done).add(messageId));
        setNotice({ kind: 'info', text: 'Thank you: the moderators will look at this message.' });
      }),
      connection.on('moderated', (frame) => setNotice({ kind: 'info', text: moderatedText(frame) })),
      connection.on('userBanned', (frame) => setNotice({ kind: 'info', text: moderatedText(frame) })),
      connection.on('roomError', (e) => {
        const refused = !connection.rooms.has(e.roomId);
        dispatch({
          type: 'roomError',
          roomId: e.roomId,
          code: e.code,
          message: refused ? roomGoneText(e) : errorText(e.code, e.message),
          refused,
        });
      }),
      connection.on('error', (frame) => {
        // A people action's error is answered in its dialog (People.jsx), as in the template
        // UI (chat.js): shown there once, not again as a notice.
        if (PEOPLE_ACTIONS.has(frame.action)) return;
        setNotice({ kind: 'error', text: errorText(frame.code, frame.message) });
      }),
    ];
    setConn({ state: connection.state, at: Date.now() });
    setOutbox(connection.outboxItems());
    return () => offs.forEach((off) => off());
  }, [connection]);

  useEffect(() => {
    if (!connection) return;
    dispatch({ type: 'retry', roomId });
    connection.joinRoom(roomId);
    dispatch({ type: 'read', roomId });
    setNotice(null);
    setMenu(null);
    // A room that failed to join (unknown, say) can be tried again by opening it again.
  }, [connection, roomId]);

  // People and rooms (People.jsx): the user's rooms and DMs, live; DMs in a section of their own.
  const { people, list: myRooms } = usePeople(connection);
  const mineById = new Map(myRooms.map((r) => [r.roomId, r]));
  current.current.roomOf = (id) => mineById.get(id) ?? rooms.find((r) => r.roomId === id);
  useEffect(() => {
    loadRooms(); // the site's list follows membership changes (a private room gained or lost)
  }, [myRooms.length, loadRooms]);

  // Opening a room puts the cursor in its composer (not while the drawer has the focus).
  useEffect(() => {
    if (!drawerOpen) composer.current?.focus({ preventScroll: true });
    // eslint-disable-next-line react-hooks/exhaustive-deps -- only when the room changes
  }, [roomId]);

  // On a phone the sidebar is a drawer. Closed, it is inert: off screen, its links are neither
  // focusable nor read out. Open, it is modal: the page behind it (the top bar too) is inert.
  const isDrawer = useMedia(DRAWER_QUERY);
  const refocus = useRef(false);
  const closeDrawer = useCallback((restoreFocus = true) => {
    refocus.current = restoreFocus;
    setDrawerOpen(false);
  }, []);
  useEffect(() => {
    const behind = document.querySelector('.topbar');
    if (behind) behind.inert = isDrawer && drawerOpen;
    // The ☰ button takes the focus back once the page behind is no longer inert.
    if (!drawerOpen && refocus.current) {
      refocus.current = false;
      drawerButton.current?.focus();
    }
    return () => {
      if (behind) behind.inert = false;
    };
  }, [isDrawer, drawerOpen]);
  useEffect(() => {
    if (!isDrawer) setDrawerOpen(false); // a window grown past the phone layout has no drawer
  }, [isDrawer]);

  const totalUnread = reads ? reads.totalUnread() - (document.visibilityState === 'visible' ? reads.state(roomId).unread : 0) : 0;
  useEffect(() => {
    if (!drawerOpen) return undefined;
    // The open room's link (a selector list would take the first link of all, in page order).
    (sidebar.current?.querySelector('a[aria-current="page"]') ?? sidebar.current?.querySelector('a'))?.focus();
    const onKey = (event) => {
      if (event.key === 'Escape') closeDrawer();
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, [drawerOpen, closeDrawer]);

  const room = state[roomId] ?? emptyRoom;
  // Read receipts ("Seen by") are kept in small private rooms only: asked once the open
  // room is known to be one (its settings come with the join), then kept live by readReceipt.
  const receiptsWanted = Boolean(reads && room.settings?.private && conn.state === ConnectionState.LIVE);
  useEffect(() => {
    if (receiptsWanted) reads.askReceipts(roomId);
  }, [reads, roomId, receiptsWanted]);
  const roomInfo = rooms.find((r) => r.roomId === roomId);
  const banned = conn.state === ConnectionState.FORBIDDEN;
  const bannedNote = bannedText(conn.ban ?? null); // the reason and end, when the server said them
  const refused = room.refused;
  // The room's name, live: the user's list (roomChanged) or, not a member, its settings
  // (roomUpdated; never a DM's, named after its people in the list).
  const liveName = roomId.startsWith('dm-') ? null : room.settings?.name;
  const roomName = refused ? ROOM_GONE_TITLE : mineById.get(roomId)?.name || liveName || roomInfo?.name || roomId;

  // The server's counts (read state) once known, else what arrived while the room was not open.
  const unreadElsewhere = reads
    ? totalUnread
    : Object.entries(state).reduce((n, [id, r]) => (id === roomId ? n : n + (r.unread ?? 0)), 0);
  useEffect(() => {
    document.title = `${unreadElsewhere > 0 ? `(${unreadElsewhere}) ` : ''}${roomName} · Chatsite`;
  }, [roomName, unreadElsewhere]);

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

  // The change a menu item started on one message (MessageChanges.jsx shows it under the
  // message): {messageId, mode: 'edit' | 'react' | 'delete'}, or null.
  const [changing, setChanging] = useState(null);
  const [replyTo, setReplyTo] = useState(null);
  const ui = useMemo(
    () => ({
      openReport: (message) => setReporting(message),
      openModeration: (kind, message) => setModerating({ kind, message }),
      focusComposer: () => composer.current?.focus(),
      announce: (text) => setAnnouncement(text),
      startReply: (message) => {
        setReplyTo(message);
        composer.current?.focus();
      },
      startChange: (message, mode) => setChanging({ messageId: message.messageId, mode }),
    }),
    [],
  );

  const openMenu = useCallback(
    (message, own, trigger) => {
      if (menu?.message.messageId === message.messageId) {
        setMenu(null);
        return;
      }
      const moderator = user?.moderator === true;
      const ctx = { message, own, moderator, roomId, connection, reported: reported.has(message.messageId), ui };
      setMenu({ message, trigger, actions: messageActions.for(ctx) });
    },
    [menu, roomId, connection, reported, ui, user],
  );

  const closeMenu = useCallback(
    (restoreFocus) => {
      setMenu((open) => {
        if (open && restoreFocus && open.trigger.isConnected) open.trigger.focus();
        return null;
      });
    },
    [],
  );

  const closeReport = useCallback(() => setReporting(null), []);
  const closeModeration = useCallback(() => setModerating(null), []);

  // Edit, delete, react, reply, threads (MessageChanges.jsx, static/chat/core/changes.js).
  const changes = useMemo(() => (connection ? attachChanges(connection) : null), [connection]);
  const [thread, setThread] = useState(null);
  useEffect(() => {
    setReplyTo(null);
    setThread(null);
    setChanging(null);
  }, [roomId]);
  const changeUi = useMemo(
    () =>
      changes && {
        changes,
        roomId,
        userId: user?.userId,
        fail: (error) => setAnnouncement(`${error.code || 'error'}: ${error.message || ''}`),
        changing,
        // The editor, picker or question closed: focus goes back to the message's line.
        endChange: (m) => {
          setChanging(null);
          document.querySelector(`li.msg[data-message-id="${CSS.escape(m.messageId)}"]`)?.focus();
        },
        openThread: (m) => changes.thread(roomId, m.messageId).then(setThread, () => {}),
        jump: async (quote) => {
          if (scrollToMessage(quote.messageId, 0)) return;
          if (Number.isInteger(quote.seq)) await changes.around(roomId, quote.seq).catch(() => {});
          scrollToMessage(quote.messageId);
        },
      },
    [changes, roomId, user, changing],
  );

  const roomOutbox = outbox.filter((item) => item.roomId === roomId);
  // The template's rule and order (core/people.js): the user's rooms, then general and the
  // open room when not a member (never a private room or DM); other public rooms are under
  // "Browse rooms". The open room's settings (from its join) say it is private once it has
  // left the user's list.
  const shownRooms = sidebarRooms(myRooms, {
    openRoomId: refused ? null : roomId,
    openKind: room.settings?.private ? 'private' : null,
    names: new Map(rooms.map((r) => [r.roomId, r.name])),
  });
  let disabledReason = null;
  if (banned) disabledReason = bannedNote;
  else if (room.settings?.archived) disabledReason = 'This room is archived: it takes no new messages.';
  // Shared files (issue 18): uploads are for the room they were made in.
  const files = useUploads(api);
  const fileLinks = useFileLinks(api);
  const addFiles = useCallback((list) => list?.length && files.tray.add(list, roomId), [files.tray, roomId]);
  const drop = useDropTarget(addFiles);
  useEffect(() => () => files.tray.clear(), [files.tray, roomId]);

  return (
    <div className={`chat-shell${drawerOpen ? ' drawer-open' : ''}`}>
      <nav className="sidebar" id="sidebar" aria-label="Rooms" ref={sidebar} inert={isDrawer && !drawerOpen ? '' : undefined}>
        <div className="sidebar-head">
          <p className="sidebar-title" id="sidebar-title">
            Rooms
          </p>
          <button
            type="button"
            className="icon-button sidebar-close"
            aria-label="Close the room list"
            onClick={() => closeDrawer()}
          >
            ×
          </button>
        </div>
        <Search api={api} connection={connection} onOpenRoom={(id) => (window.location.hash = `#/rooms/${id}`)} />
        <ul className="room-links" aria-labelledby="sidebar-title">
          {shownRooms.map((r) => {
            const counts = reads?.state(r.roomId);
            // A muted room stays quiet; the server's counts (read state) once known.
            const unread = r.muted ? 0 : counts ? counts.unread : (state[r.roomId]?.unread ?? 0);
            const mentions = counts?.mentions ?? 0;
            return (
              <li key={r.roomId}>
                <a
                  href={`#/rooms/${r.roomId}`}
                  data-room-id={r.roomId}
                  aria-current={r.roomId === roomId ? 'page' : undefined}
                  onClick={() => closeDrawer(false)}
                >
                  <span className="room-link-name" dir="auto">
                    {r.name || r.roomId}
                  </span>
                  {(unread > 0 || mentions > 0) && r.roomId !== roomId && (
                    <span className={mentions > 0 ? 'badge badge-mention' : 'badge'} data-unread="">
                      {mentions > 0 ? `@${badge(Math.max(unread, mentions))}` : badge(unread)}
                      <span className="sr-only"> unread{mentions > 0 ? `, ${mentions} mentioning you` : ''}</span>
                    </span>
                  )}
                </a>
              </li>
            );
          })}
        </ul>
        {roomsError && <p className="error">{roomsError}</p>}
        {/* The template's order and actions (templates/chat/shell.html): each action opens a dialog. */}
        {people && (
          <>
            <div className="sidebar-actions">
              <NewRoom people={people} />
              <BrowseRooms people={people} />
            </div>
            <DirectList list={myRooms} roomId={roomId} unreadOf={(id) => state[id]?.unread ?? 0} />
            <div className="sidebar-actions">
              <NewMessage people={people} />
            </div>
          </>
        )}
        <MentionsList reads={reads} />
        {notify !== 'unsupported' && (
          <button
            type="button"
            className="link-button notify-toggle"
            disabled={notify === 'granted' || notify === 'denied'}
            onClick={async () => {
              const fetchJson = (path, body) =>
                api.request(path, body === undefined ? {} : { method: 'POST', body });
              setNotify(await enableNotifications({ fetchJson, workerUrl: './sw.js' }));
            }}
          >
            {notify === 'granted' ? 'Notifications on' : notify === 'denied' ? 'Notifications blocked' : 'Turn on notifications'}
          </button>
        )}
        <ReceiptsToggle settings={notifySettings} />
      </nav>
      {drawerOpen && <div className="sidebar-scrim" onClick={() => closeDrawer()} aria-hidden="true" />}
      <main
        className={`main-pane room${drop.over ? ' drop-target' : ''}`}
        aria-labelledby="room-title"
        inert={isDrawer && drawerOpen ? '' : undefined}
        {...drop.props}
      >
        <div className="room-head">
          <button
            type="button"
            ref={drawerButton}
            className="icon-button sidebar-open"
            aria-label="Open the room list"
            aria-controls="sidebar"
            aria-expanded={drawerOpen}
            onClick={() => setDrawerOpen(true)}
          >
            ☰
            {unreadElsewhere > 0 && <span className="badge dot-badge" aria-hidden="true" />}
          </button>
          <h1 id="room-title">
            <span dir="auto">{roomName}</span>
            {!refused && !roomId.startsWith('dm-') && <span className="room-id"> #{roomId}</span>}
          </h1>
          {people && !refused && (
            <MembersPanel
              people={people}
              roomId={roomId}
              roomName={roomName}
              mine={mineById.get(roomId)}
              me={user}
              notifySettings={notifySettings}
            />
          )}
          <ConnectionBanner state={conn.state} />
        </div>
        <OfflineBar conn={conn} wasDown={wasDown} onReconnect={() => connection.reconnectNow()} />
        {banned && (
          <p className="notice" role="alert" data-kind="error">
            {bannedNote}
          </p>
        )}
        {notice && (
          <div className="notice" role={notice.kind === 'error' ? 'alert' : 'status'} data-kind={notice.kind}>
            <span>{notice.text}</span>
            <button type="button" className="link-button" onClick={() => setNotice(null)} aria-label="Dismiss this notice">
              Dismiss
            </button>
          </div>
        )}
        {room.error && !refused && (
          <p className="notice" role="alert" data-kind="error">
            {room.error}
          </p>
        )}
        {refused ? (
          <RoomGone roomId={roomId} text={room.error} />
        ) : (
          <>
            <FileLinksContext.Provider value={fileLinks}>
              <MessageList
                roomId={roomId}
                messages={room.messages}
                loaded={room.loaded}
                outbox={roomOutbox}
                isOwn={isOwn}
                me={user}
                fileBase={api.base}
                hasMore={room.hasMore}
                loadingHistory={room.loadingHistory}
                stoppedText={
                  banned
                    ? bannedNote
                    : conn.state === ConnectionState.OFFLINE || wasDown
                      ? 'Messages load when the connection is back.'
                      : null
                }
                reported={reported}
                menuFor={menu?.message.messageId}
                onMenu={openMenu}
                onLoadMore={loadMore}
                onRetry={(id) => connection.retry(id)}
                onDiscard={(id) => connection.discard(id)}
                userId={user?.userId ?? null}
                dividerAfter={dividerAfter}
                onSeen={onSeen}
                seenBy={room.settings?.private ? reads?.seenBy(roomId, room.messages) : null}
                presenceOf={live.presenceOf}
                ui={changeUi}
              />
            </FileLinksContext.Provider>
            <ThreadPanel thread={thread} onClose={() => setThread(null)} />
            <ReplyBar replyTo={replyTo} onCancel={() => setReplyTo(null)} />
            <RoomSettings settings={room.settings} />
            <TypingLine text={live.typing} />
            <Composer
              key={roomId}
              inputRef={composer}
              roomName={roomName}
              offline={conn.state !== ConnectionState.LIVE}
              disabledReason={disabledReason}
              onType={live.keystroke}
              self={user?.username ?? null}
              names={() => [...room.messages.map((m) => m.username), ...(room.members ?? []).map((m) => m.username)]}
              files={files}
              onFiles={addFiles}
              onSend={(text, attachments) => {
                live.sent();
                connection.send(roomId, text, { replyTo: replyTo?.messageId ?? null, attachments });
                setReplyTo(null);
              }}
            />
          </>
        )}
        {menu && <MessageMenu actions={menu.actions} trigger={menu.trigger} onClose={closeMenu} />}
        {reporting && (
          <ReportDialog
            message={reporting}
            onClose={closeReport}
            onSend={(reason) => {
              if (!connection.reportMessage(roomId, reporting.messageId, reason)) {
                setNotice({ kind: 'error', text: 'Offline: the report was not sent. Try again when the connection is back.' });
              }
            }}
          />
        )}
        {moderating && (
          <ModerateDialog
            kind={moderating.kind}
            message={moderating.message}
            onClose={closeModeration}
            onSend={(answer) => {
              const ctx = { roomId, message: moderating.message };
              if (!sendModeration(connection, moderating.kind, ctx, answer)) {
                setNotice({ kind: 'error', text: 'Offline: nothing was done. Try again when the connection is back.' });
              }
            }}
          />
        )}
      </main>
      <div className="sr-only" aria-live="polite" aria-atomic="true" data-testid="announcer">
        {announcement}
      </div>
    </div>
  );
}
