/**
 * MessageList: one room's messages with day separators, paged scroll-back (a button at
 * the top, and scrolling to the top loads the next page), grouping (one sender's run
 * within five minutes shows name and avatar once: static/chat/core/display.js), your
 * unconfirmed messages with how they are doing in words, and "N new messages ↓" while
 * scrolled up. Text only: React renders strings as text, and links are made only for
 * http(s) URLs.
 *
 * Keyboard: the list is one Tab stop (roving focus): ↑/↓/Home/End move between lines;
 * Enter, Shift+F10 or the context-menu key opens the line's menu (messageActions.js).
 *
 * Text is formatted by the shared core (MessageChanges.jsx: a safe Markdown subset, http(s)
 * links only); the changes people make (edit, delete, react, reply) come with `ui`.
 */

import { Fragment, useEffect, useLayoutEffect, useRef, useState } from 'react';

import { avatarColor, continuesGroup, initials } from './display.js';
import { firstUnreadSeq, mentionsUser, pageSeen, seenUpTo } from '../../static/chat/core/unread.js';
import { Attachments } from './Files.jsx';
import { linkify } from './linkify.js';
import { PresenceDot } from './Presence.jsx';
import { MessageBody } from './MessageChanges.jsx';
import { byDay } from './roomStore.js';
import { pendingText } from './words.js';

const NEAR_BOTTOM_PX = 80;

function MessageText({ text, tabIndex }) {
  return linkify(text).map((segment, i) =>
    segment.type === 'link' ? (
      <a key={i} href={segment.href} target="_blank" rel="noopener noreferrer nofollow ugc" tabIndex={tabIndex}>
        {segment.text}
      </a>
    ) : (
      <Fragment key={i}>{segment.text}</Fragment>
    ),
  );
}

function time(timestamp) {
  const date = new Date(timestamp);
  return Number.isNaN(date.getTime()) ? '' : date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function Avatar({ userId, username }) {
  return (
    <span className="avatar" aria-hidden="true" style={{ background: avatarColor(userId ?? username) }}>
      {initials(username)}
    </span>
  );
}

/** A clock that ticks once a second while `on` (the countdowns of messages waiting out a limit). */
function useNow(on) {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!on) return undefined;
    setNow(Date.now());
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [on]);
  return now;
}

function Message({ message, own, grouped, active, reported, menuOpen, onMenu, lineKey, presenceOf, ui, mention, fileBase, seenBy }) {
  const classes = ['message', 'msg', own && 'own', grouped && 'grouped', message.removed && 'removed', mention && 'mention'];
  const tab = active ? 0 : -1;
  return (
    <li
      className={classes.filter(Boolean).join(' ')}
      data-seq={message.seq}
      data-message-id={message.messageId}
      data-key={lineKey}
      data-status={own ? 'sent' : undefined}
      tabIndex={tab}
    >
      <Avatar userId={message.userId} username={message.username} />
      <div className="msg-main">
        <div className="meta">
          <span className="author">{message.username}</span>
          {!own && presenceOf && <PresenceDot presence={presenceOf(message.userId)} />}
          <time dateTime={message.timestamp}>{time(message.timestamp)}</time>
          {reported && <span className="reported-mark">Reported</span>}
        </div>
        {message.removed || !ui ? (
          <p className="text" dir="auto">
            {message.removed ? (
              <em>{message.removedBy === 'author' ? 'Message deleted' : 'Message removed by a moderator'}</em>
            ) : (
              <MessageText text={message.message} tabIndex={tab} />
            )}
          </p>
        ) : (
          <MessageBody message={message} ui={ui} />
        )}
        {!message.removed && <Attachments list={message.attachments} base={fileBase} />}
        {seenBy && <p className="seen-by">Seen by {seenBy}</p>}
      </div>
      <button
        type="button"
        className="msg-menu-button"
        tabIndex={tab}
        aria-haspopup="menu"
        aria-expanded={menuOpen}
        aria-label={`Actions for the message from ${message.username}`}
        onClick={(event) => onMenu(message, own, event.currentTarget)}
      >
        ⋯
      </button>
    </li>
  );
}

function Pending({ item, username, userId, grouped, active, now, onRetry, onDiscard, lineKey, fileBase }) {
  const failed = item.status === 'failed';
  const tab = active ? 0 : -1;
  const classes = ['message', 'msg', 'own', item.status, grouped && 'grouped'];
  return (
    <li
      className={classes.filter(Boolean).join(' ')}
      data-status={item.status}
      data-key={lineKey}
      data-client-message-id={item.clientMessageId}
      tabIndex={tab}
    >
      <Avatar userId={userId} username={username} />
      <div className="msg-main">
        <div className="meta">
          <span className="author">{username}</span>
        </div>
        <p className="text" dir="auto">
          <MessageText text={item.text} tabIndex={tab} />
        </p>
        <Attachments list={item.attachments} base={fileBase} />
        <div className="delivery">
          {/* Only a pending or failed message says how it is doing; an acknowledged one says nothing. */}
          <span className="status" data-code={item.code ?? item.retrying ?? undefined}>
            {item.status === 'sent' ? '' : pendingText(item, now)}
          </span>
          {failed && (
            <>
              <button type="button" tabIndex={tab} onClick={() => onRetry(item.clientMessageId)}>
                Retry
              </button>
              <button type="button" tabIndex={tab} className="secondary" onClick={() => onDiscard(item.clientMessageId)}>
                Discard
              </button>
            </>
          )}
        </div>
      </div>
    </li>
  );
}

function lineKeyOf(m) {
  return `s${m.seq}`;
}

export default function MessageList({
  roomId,
  messages,
  loaded,
  outbox,
  isOwn,
  me,
  hasMore,
  loadingHistory,
  stoppedText,
  reported,
  menuFor,
  onMenu,
  onLoadMore,
  onRetry,
  onDiscard,
  presenceOf,
  ui,
  userId = null, // read state (issue 16): mentions of this user are highlighted
  dividerAfter = null, // the last-read seq when the room was opened: "New messages" goes after it
  onSeen = null, // (seq) => the messages up to seq are on screen
  seenBy = null, // read receipts of a small private room: Map(seq -> the other readers' names)
  fileBase = '',
}) {
  const scroller = useRef(null);
  const olderButton = useRef(null);
  const list = useRef(null);
  const memory = useRef({ roomId: null, first: null, last: null, height: 0, top: 0, atBottom: true, outbox: 0 });
  const [unseen, setUnseen] = useState(0);
  const [activeKey, setActiveKey] = useState(null);

  const waiting = outbox.filter((item) => !messages.some((m) => m.clientMessageId && m.clientMessageId === item.clientMessageId));
  const now = useNow(waiting.some((item) => item.retrying && item.retryAt));

  // Keep the view where the reader left it: pinned to the bottom for new messages when
  // already there (or when they send one), steady when older messages are added above,
  // and counting what arrives below while they read further up.
  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const mem = memory.current;
    const first = messages[0]?.seq ?? null;
    const last = messages.at(-1)?.seq ?? null;
    if (mem.roomId !== roomId) {
      el.scrollTop = el.scrollHeight;
      mem.atBottom = true;
      setUnseen(0);
      setActiveKey(null);
    } else if (first !== null && mem.first !== null && first < mem.first && last === mem.last) {
      el.scrollTop = mem.top + (el.scrollHeight - mem.height);
    } else if (mem.atBottom || waiting.length > mem.outbox) {
      el.scrollTop = el.scrollHeight;
      mem.atBottom = true;
    } else if (last !== null && mem.last !== null && last > mem.last) {
      const arrived = messages.filter((m) => m.seq > mem.last && !isOwn(m)).length;
      if (arrived > 0) setUnseen((n) => n + arrived);
    }
    Object.assign(mem, { roomId, first, last, height: el.scrollHeight, top: el.scrollTop, outbox: waiting.length });
  }, [roomId, messages, waiting.length, isOwn]);

  // Read is marked up to what is on screen while the tab is visible and focused (the core's
  // rule, as in the template UI): what arrives below, out of view, stays unread.
  useEffect(() => {
    function seen() {
      const el = scroller.current;
      if (!onSeen || !el || messages.length === 0 || !pageSeen(document)) return;
      const lines = new Map();
      for (const li of el.querySelectorAll('li.message[data-seq]')) lines.set(Number(li.dataset.seq), li);
      const seq = seenUpTo(messages, {
        atBottom: el.scrollHeight - el.scrollTop - el.clientHeight < NEAR_BOTTOM_PX,
        viewBottom: el.getBoundingClientRect().bottom,
        bottomOf: (m) => lines.get(m.seq)?.getBoundingClientRect().bottom ?? null,
      });
      if (seq !== null) onSeen(seq);
    }
    seen();
    window.addEventListener('focus', seen);
    document.addEventListener('visibilitychange', seen);
    const el = scroller.current;
    el?.addEventListener('scroll', seen, { passive: true });
    return () => {
      window.removeEventListener('focus', seen);
      document.removeEventListener('visibilitychange', seen);
      el?.removeEventListener('scroll', seen);
    };
  }, [messages, onSeen]);

  function onScroll() {
    const el = scroller.current;
    const mem = memory.current;
    const movedUp = el.scrollTop < mem.top;
    mem.atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < NEAR_BOTTOM_PX;
    mem.top = el.scrollTop;
    mem.height = el.scrollHeight;
    if (mem.atBottom && unseen > 0) setUnseen(0);
    // Scrolling up to the top loads the next page. Focusing the button also scrolls to the
    // top: a keyboard user on it decides with Enter, so that scroll loads nothing.
    const onButton = olderButton.current !== null && document.activeElement === olderButton.current;
    if (movedUp && el.scrollTop < 40 && hasMore && !loadingHistory && !onButton) onLoadMore();
  }

  function jumpToNewest() {
    const el = scroller.current;
    el.scrollTop = el.scrollHeight;
    memory.current.atBottom = true;
    setUnseen(0);
    const lines = list.current?.querySelectorAll('li.msg');
    lines?.[lines.length - 1]?.focus({ preventScroll: true });
  }

  // Roving focus: one line takes Tab (the one last focused, else the newest).
  const keys = [...messages.map(lineKeyOf), ...waiting.map((item) => `c${item.clientMessageId}`)];
  const active = keys.includes(activeKey) ? activeKey : keys.at(-1);

  function onKeyDown(event) {
    const line = event.target.closest?.('li.msg');
    if (!line || event.target.closest('textarea, input')) return; // the editor's keys are its own
    const lines = Array.from(list.current.querySelectorAll('li.msg'));
    const at = lines.indexOf(line);
    let next = null;
    if (event.key === 'ArrowDown') next = lines[Math.min(at + 1, lines.length - 1)];
    else if (event.key === 'ArrowUp') next = lines[Math.max(at - 1, 0)];
    else if (event.key === 'Home' && event.target === line) next = lines[0];
    else if (event.key === 'End' && event.target === line) next = lines.at(-1);
    else if (event.target === line && (event.key === 'Enter' || event.key === 'ContextMenu' || (event.key === 'F10' && event.shiftKey))) {
      event.preventDefault();
      line.querySelector('.msg-menu-button')?.click();
      return;
    }
    if (next) {
      event.preventDefault();
      setActiveKey(next.dataset.key);
      next.focus();
    }
  }

  function onFocus(event) {
    const line = event.target.closest?.('li.msg');
    if (line?.dataset.key && line.dataset.key !== active) setActiveKey(line.dataset.key);
  }

  const days = byDay(messages);
  let previous = null;
  const firstUnread = firstUnreadSeq(messages, dividerAfter, userId);
  const mine = { userId: me?.userId ?? me?.username, username: me?.username ?? 'You' };

  return (
    <div className="messages-pane">
      <div className="messages" ref={scroller} onScroll={onScroll}>
        {hasMore && (
          <div className="older">
            <button
              type="button"
              className="secondary"
              ref={olderButton}
              onClick={onLoadMore}
              aria-disabled={loadingHistory || undefined}
            >
              {loadingHistory ? 'Loading…' : 'Load earlier messages'}
            </button>
          </div>
        )}
        {loaded && messages.length === 0 && waiting.length === 0 && <p className="empty">No messages yet. Say hello!</p>}
        {!loaded && <p className="empty">{stoppedText ?? 'Loading messages…'}</p>}
        <ol
          className="message-list"
          data-room={roomId}
          ref={list}
          aria-label="Messages"
          onKeyDown={onKeyDown}
          onFocus={onFocus}
        >
          {days.map((day) => (
            <Fragment key={day.key}>
              <li className="day-separator">
                <span>{day.label}</span>
              </li>
              {day.messages.map((m) => {
                const grouped = continuesGroup(previous, m);
                previous = m;
                const key = lineKeyOf(m);
                return (
                  <Fragment key={key}>
                  {m.seq === firstUnread && (
                    <li className="new-divider">
                      <span role="separator">New messages</span>
                    </li>
                  )}
                  <Message
                    lineKey={key}
                    message={m}
                    own={isOwn(m)}
                    grouped={grouped}
                    active={key === active}
                    reported={reported.has(m.messageId)}
                    menuOpen={menuFor === m.messageId}
                    onMenu={onMenu}
                    presenceOf={presenceOf}
                    ui={ui}
                    mention={mentionsUser(m, userId)}
                    fileBase={fileBase}
                    seenBy={seenBy?.get(m.seq)?.join(', ')}
                  />
                  </Fragment>
                );
              })}
            </Fragment>
          ))}
          {waiting.map((item) => {
            const shaped = { userId: previous && isOwn(previous) ? previous.userId : mine.userId, timestamp: item.createdAt ?? Date.now() };
            const grouped = previous !== null && isOwn(previous) && continuesGroup(previous, shaped);
            previous = { ...shaped, username: mine.username };
            const key = `c${item.clientMessageId}`;
            return (
              <Pending
                key={key}
                lineKey={key}
                item={item}
                username={mine.username}
                userId={mine.userId}
                grouped={grouped}
                active={key === active}
                now={now}
                onRetry={onRetry}
                onDiscard={onDiscard}
                fileBase={fileBase}
              />
            );
          })}
        </ol>
      </div>
      {unseen > 0 && (
        <button type="button" className="new-messages" onClick={jumpToNewest} data-testid="new-messages">
          {unseen === 1 ? '1 new message' : `${unseen} new messages`} ↓
        </button>
      )}
    </div>
  );
}
