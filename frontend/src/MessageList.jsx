/**
 * MessageList: one room's messages with day separators, paged scroll-back (a button at
 * the top, and scrolling to the top loads the next page), your own messages marked, and
 * your unconfirmed ones shown as pending or failed with Retry. Text only: React renders
 * strings as text, and links are made only for http(s) URLs.
 */

import { Fragment, useLayoutEffect, useRef } from 'react';

import { Attachments } from './Files.jsx';
import { linkify } from './linkify.js';
import { byDay } from './roomStore.js';

const NEAR_BOTTOM_PX = 80;

function MessageText({ text }) {
  return linkify(text).map((segment, i) =>
    segment.type === 'link' ? (
      <a key={i} href={segment.href} target="_blank" rel="noopener noreferrer nofollow ugc">
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

function Message({ message, own, onReport, fileBase }) {
  const classes = ['message', own && 'own', message.removed && 'removed'].filter(Boolean).join(' ');
  return (
    <li className={classes} data-seq={message.seq} data-status={own ? 'sent' : undefined}>
      <div className="meta">
        <span className="author">{own ? 'You' : message.username}</span>
        <time dateTime={message.timestamp}>{time(message.timestamp)}</time>
        {own && (
          <span className="status" title="Sent">
            ✓<span className="sr-only"> sent</span>
          </span>
        )}
        {!own && !message.removed && onReport && (
          <button type="button" className="link-button report" onClick={() => onReport(message)}>
            Report<span className="sr-only"> this message</span>
          </button>
        )}
      </div>
      <p className="text">
        {message.removed ? (
          <em>{message.removedBy === 'author' ? 'Message deleted' : 'Message removed by a moderator'}</em>
        ) : (
          <MessageText text={message.message} />
        )}
        {message.editedAt && !message.removed && <span className="edited"> (edited)</span>}
      </p>
      {!message.removed && <Attachments list={message.attachments} base={fileBase} />}
    </li>
  );
}

function Pending({ item, onRetry, onDiscard, fileBase }) {
  const failed = item.status === 'failed';
  return (
    <li className={`message own ${item.status}`} data-status={item.status} data-client-message-id={item.clientMessageId}>
      <div className="meta">
        <span className="author">You</span>
        <span className="status">
          {failed
            ? `Not sent${item.error ? `: ${item.error}` : ''}`
            : item.status === 'sent'
              ? 'Sent'
              : item.retrying
                ? `Retrying (${item.retrying})…`
                : 'Sending…'}
        </span>
      </div>
      <p className="text">
        <MessageText text={item.text} />
      </p>
      <Attachments list={item.attachments} base={fileBase} />
      {failed && (
        <div className="actions">
          <button type="button" onClick={() => onRetry(item.clientMessageId)}>
            Retry
          </button>
          <button type="button" className="secondary" onClick={() => onDiscard(item.clientMessageId)}>
            Discard
          </button>
        </div>
      )}
    </li>
  );
}

export default function MessageList({
  roomId,
  messages,
  loaded,
  outbox,
  isOwn,
  hasMore,
  loadingHistory,
  onLoadMore,
  onRetry,
  onDiscard,
  onReport,
  fileBase = '',
}) {
  const scroller = useRef(null);
  const olderButton = useRef(null);
  const memory = useRef({ roomId: null, first: null, height: 0, top: 0, atBottom: true });

  // Keep the view where the reader left it: pinned to the bottom for new messages when
  // already there, and steady when older messages are added above.
  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const mem = memory.current;
    const first = messages[0]?.seq ?? null;
    if (mem.roomId !== roomId) {
      el.scrollTop = el.scrollHeight;
    } else if (first !== null && mem.first !== null && first < mem.first) {
      el.scrollTop = mem.top + (el.scrollHeight - mem.height);
    } else if (mem.atBottom) {
      el.scrollTop = el.scrollHeight;
    }
    Object.assign(memory.current, { roomId, first, height: el.scrollHeight, top: el.scrollTop });
  }, [roomId, messages, outbox.length]);

  function onScroll() {
    const el = scroller.current;
    const movedUp = el.scrollTop < memory.current.top;
    memory.current.atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < NEAR_BOTTOM_PX;
    memory.current.top = el.scrollTop;
    memory.current.height = el.scrollHeight;
    // Scrolling up to the top loads the next page. Focusing the button also scrolls to the
    // top: a keyboard user on it decides with Enter, so that scroll loads nothing.
    const onButton = olderButton.current !== null && document.activeElement === olderButton.current;
    if (movedUp && el.scrollTop < 40 && hasMore && !loadingHistory && !onButton) onLoadMore();
  }

  const days = byDay(messages);

  return (
    <div className="messages" ref={scroller} onScroll={onScroll} tabIndex={0} aria-label="Messages">
      {hasMore && (
        <div className="older">
          <button type="button" className="secondary" ref={olderButton}
            onClick={onLoadMore}
            aria-disabled={loadingHistory || undefined}
          >
            {loadingHistory ? 'Loading…' : 'Load earlier messages'}
          </button>
        </div>
      )}
      {loaded && messages.length === 0 && outbox.length === 0 && <p className="empty">No messages yet. Say hello!</p>}
      {!loaded && <p className="empty">Loading messages…</p>}
      <ol className="message-list" data-room={roomId}>
        {days.map((day) => (
          <Fragment key={day.key}>
            <li className="day-separator" role="separator" aria-label={day.label}>
              <span aria-hidden="true">{day.label}</span>
            </li>
            {day.messages.map((m) => (
              <Message key={m.seq} message={m} own={isOwn(m)} onReport={onReport} fileBase={fileBase} />
            ))}
          </Fragment>
        ))}
        {outbox
          .filter((item) => !messages.some((m) => m.clientMessageId && m.clientMessageId === item.clientMessageId))
          .map((item) => (
            <Pending key={item.clientMessageId} item={item} onRetry={onRetry} onDiscard={onDiscard} fileBase={fileBase} />
          ))}
      </ol>
    </div>
  );
}
