/**
 * The React app's side of the changes people make to messages, on the shared core
 * (static/chat/core/changes.js speaks the protocol, core/format.js formats): a message's
 * formatted text, the quote of a reply (a click jumps to the original), reaction chips,
 * "N replies" (the thread), and the tools: Reply, React…, Edit, Delete (your own), which are
 * items of the message's menu (messageActions.js, as in the template UI), not buttons on every
 * line: a line reads as its text (issue 20).
 * Formatted text is built with createElement from format.js's sanitised tree: no HTML string.
 */

import { createElement, useEffect, useMemo, useRef, useState } from 'react';

import { messageActions } from './messageActions.js';

import { QUICK_REACTIONS, canEdit, quoteText, reactionChips } from '../../static/chat/core/changes.js';
import { markdownTree } from '../../static/chat/core/format.js';

function node(item, key) {
  if (typeof item === 'string') return item;
  const props = { key };
  if (item.attrs.href) Object.assign(props, { href: item.attrs.href, target: '_blank', rel: 'noopener noreferrer nofollow ugc' });
  if (item.attrs.start) props.start = Number(item.attrs.start) || undefined;
  const children = item.children.map(node);
  return createElement(item.tag, props, ...(children.length ? children : []));
}

export function MarkdownText({ text }) {
  const tree = useMemo(() => markdownTree(text), [text]);
  return tree.map(node);
}

function ReplyQuote({ replyTo, ui }) {
  return (
    <button
      type="button"
      className={replyTo.removed ? 'reply-quote removed' : 'reply-quote'}
      onClick={() => ui.jump(replyTo)}
    >
      ↪ {replyTo.username}: {quoteText(replyTo)}
    </button>
  );
}

function Editor({ message, ui, onDone }) {
  const [value, setValue] = useState(message.message);
  function save(event) {
    event.preventDefault();
    if (!value.trim() || value === message.message) {
      onDone();
      return;
    }
    ui.changes.edit(ui.roomId, message.messageId, value).then(onDone, ui.fail);
  }
  return (
    <form className="edit-form" onSubmit={save}>
      <textarea
        className="edit-input"
        aria-label="Edit your message"
        value={value}
        autoFocus
        rows={Math.min(6, value.split('\n').length + 1)}
        onChange={(e) => setValue(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === 'Escape') onDone();
          else if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) save(e);
        }}
      />
      <button type="submit">Save</button>
      <button type="button" className="secondary" onClick={onDone}>
        Cancel
      </button>
    </form>
  );
}

// The tools of each message on screen, by messageId: its MessageBody puts them here while it
// is mounted, and the menu items below run them.
const tools = new Map();
const toolsOf = (ctx) => (ctx.message.messageId && !ctx.message.removed ? tools.get(ctx.message.messageId)?.current : null);
messageActions.register({ id: 'reply', label: 'Reply', when: (ctx) => Boolean(toolsOf(ctx)), run: (ctx) => toolsOf(ctx)?.reply() });
messageActions.register({ id: 'react', label: 'React…', when: (ctx) => Boolean(toolsOf(ctx)), run: (ctx) => toolsOf(ctx)?.react() });
messageActions.register({ id: 'edit', label: 'Edit', when: (ctx) => Boolean(toolsOf(ctx)?.mine), run: (ctx) => toolsOf(ctx)?.edit() });
messageActions.register({ id: 'delete', label: 'Delete', when: (ctx) => Boolean(toolsOf(ctx)?.mine), run: (ctx) => toolsOf(ctx)?.remove() });

/** What a stored, live message shows: quote, text (or the editor), edited mark, chips, and
 * the reaction picker or the delete question its menu opened. */
export function MessageBody({ message, ui }) {
  const [editing, setEditing] = useState(false);
  const [picking, setPicking] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const mine = canEdit(message, ui.userId);
  const handle = useRef(null);
  // The menu gives the focus back to its button when it closes; the composer takes it after that.
  handle.current = {
    mine,
    reply: () => requestAnimationFrame(() => ui.startReply(message)),
    react: () => setPicking(true),
    edit: () => setEditing(true),
    remove: () => setConfirming(true),
  };
  const id = message.messageId;
  useEffect(() => {
    if (!id) return undefined;
    tools.set(id, handle);
    return () => {
      if (tools.get(id) === handle) tools.delete(id);
    };
  }, [id]);
  const chips = reactionChips(message, ui.userId);
  const toggle = (emoji) => ui.changes.toggle(ui.roomId, message, emoji, ui.userId).catch(ui.fail);
  return (
    <>
      {message.replyTo && <ReplyQuote replyTo={message.replyTo} ui={ui} />}
      {editing ? (
        <Editor message={message} ui={ui} onDone={() => setEditing(false)} />
      ) : (
        <div className="text">
          <MarkdownText text={message.message} />
          {message.editedAt && <span className="edited"> (edited)</span>}
        </div>
      )}
      {chips.length > 0 && (
        <div className="reactions">
          {chips.map((chip) => (
            <button
              key={chip.emoji}
              type="button"
              className={chip.me ? 'reaction mine' : 'reaction'}
              aria-pressed={chip.me}
              aria-label={`${chip.emoji} ${chip.count} ${chip.count === 1 ? 'reaction' : 'reactions'}${chip.me ? ', yours' : ''}`}
              onClick={() => toggle(chip.emoji)}
            >
              {chip.emoji} {chip.count}
            </button>
          ))}
        </div>
      )}
      {message.replyCount > 0 && (
        <button type="button" className="link-button replies-link" onClick={() => ui.openThread(message)}>
          {message.replyCount} {message.replyCount === 1 ? 'reply' : 'replies'}
        </button>
      )}
      {picking && (
        <div
          className="reaction-picker"
          role="group"
          aria-label="Pick a reaction"
          onKeyDown={(e) => {
            if (e.key === 'Escape') {
              e.stopPropagation();
              setPicking(false);
            }
          }}
        >
          {QUICK_REACTIONS.map((emoji, i) => (
            <button
              key={emoji}
              type="button"
              className="reaction-option"
              autoFocus={i === 0}
              onClick={() => {
                setPicking(false);
                toggle(emoji);
              }}
            >
              {emoji}
            </button>
          ))}
        </div>
      )}
      {confirming && (
        <div className="delete-confirm" role="group" aria-label="Delete this message?">
          <span>Delete this message for everyone?</span>
          <button
            type="button"
            className="danger"
            autoFocus
            onClick={() => ui.changes.remove(ui.roomId, message.messageId).then(() => setConfirming(false), ui.fail)}
          >
            Delete message
          </button>
          <button type="button" className="secondary" onClick={() => setConfirming(false)}>
            Cancel
          </button>
        </div>
      )}
    </>
  );
}

export function ReplyBar({ replyTo, onCancel }) {
  if (!replyTo) return null;
  return (
    <div className="reply-bar" data-testid="reply-bar">
      <span className="reply-bar-text">
        Replying to {replyTo.username}: {replyTo.message.slice(0, 100)}
      </span>
      <button type="button" className="link-button" onClick={onCancel}>
        Cancel reply
      </button>
    </div>
  );
}

export function ThreadPanel({ thread, onClose }) {
  if (!thread) return null;
  const items = [thread.root, ...thread.messages];
  return (
    <aside className="thread-panel" aria-label="Thread">
      <h3>
        Thread: {thread.messages.length} {thread.messages.length === 1 ? 'reply' : 'replies'}
      </h3>
      <ol className="thread-list">
        {items.map((m) => (
          <li key={m.messageId}>
            <strong>{m.username}</strong>
            <div className="text">{m.removed ? <em>Message removed</em> : <MarkdownText text={m.message} />}</div>
          </li>
        ))}
      </ol>
      <button type="button" className="secondary" onClick={onClose}>
        Close thread
      </button>
    </aside>
  );
}

/** Scroll to a message's line and focus it, once it is rendered (a few frames at most). */
export function scrollToMessage(messageId, tries = 20) {
  const el = document.querySelector(`[data-message-id="${CSS.escape(messageId)}"]`);
  if (el) {
    el.scrollIntoView({ block: 'center' });
    el.classList.add('highlight');
    el.focus();
    setTimeout(() => el.classList.remove('highlight'), 2000);
    return true;
  }
  if (tries > 0) requestAnimationFrame(() => scrollToMessage(messageId, tries - 1));
  return false;
}
