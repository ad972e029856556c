/**
 * The template UI's side of the changes people make to messages (core/changes.js speaks
 * the protocol): menu items Edit, Delete, React and Reply (message-menu.js registry), the
 * inline editor, reaction chips, the quote above a reply (a click scrolls to the original,
 * loading history around it when it is not shown), "N replies" that opens the thread.
 * Every piece of user data reaches the DOM as text or as format.js's sanitised nodes.
 */
import { QUICK_REACTIONS, quoteText, reactionChips, registerChangeActions } from './core/changes.js';
import { renderMarkdown } from './core/format.js';
import { messageActions } from './message-menu.js';

function button(className, text, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = className;
  b.textContent = text;
  b.addEventListener('click', onClick);
  return b;
}

export function setupChanges({ connection, changes, userId, list, form, input, view, showNotice }) {
  let replyTo = null; // the message the composer answers
  const notice = (error) => showNotice(`${error.code || 'error'}: ${error.message || ''}`);

  // --- The reply bar above the composer ------------------------------------------------
  const bar = document.createElement('div');
  bar.className = 'reply-bar';
  bar.id = 'reply-bar';
  bar.hidden = true;
  const barText = document.createElement('span');
  barText.className = 'reply-bar-text';
  bar.append(barText, button('link-button reply-cancel', 'Cancel reply', () => clearReply()));
  form.before(bar);

  function startReply(message) {
    replyTo = message;
    barText.textContent = `Replying to ${message.username}: ${quoteText({ excerpt: message.message.slice(0, 100) })}`;
    bar.hidden = false;
    input.focus();
  }

  function clearReply() {
    replyTo = null;
    bar.hidden = true;
  }

  // --- The reaction picker -------------------------------------------------------------
  const picker = document.createElement('div');
  picker.className = 'reaction-picker';
  picker.id = 'reaction-picker';
  picker.setAttribute('role', 'dialog');
  picker.setAttribute('aria-label', 'Pick a reaction');
  picker.hidden = true;
  document.body.append(picker);
  document.addEventListener('click', (event) => {
    if (!picker.hidden && !picker.contains(event.target)) picker.hidden = true;
  });
  picker.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') picker.hidden = true;
  });

  function openPicker(message, line) {
    picker.replaceChildren(
      ...QUICK_REACTIONS.map((emoji) =>
        button('reaction-option', emoji, (event) => {
          event.stopPropagation();
          picker.hidden = true;
          changes.toggle(view.roomId, message, emoji, userId).catch(notice);
        }),
      ),
    );
    const rect = line.getBoundingClientRect();
    picker.style.top = `${Math.max(8, rect.top + window.scrollY - 8)}px`;
    picker.style.left = `${Math.max(8, rect.left + 48)}px`;
    setTimeout(() => {
      picker.hidden = false;
      picker.querySelector('button')?.focus();
    });
  }

  // --- The inline editor ---------------------------------------------------------------
  function startEdit(message, line) {
    if (line.querySelector('.edit-form')) return;
    const text = line.querySelector('.text');
    const editor = document.createElement('form');
    editor.className = 'edit-form';
    const area = document.createElement('textarea');
    area.className = 'edit-input';
    area.value = message.message;
    area.rows = Math.min(6, message.message.split('\n').length + 1);
    area.setAttribute('aria-label', 'Edit your message');
    const done = () => {
      editor.remove();
      text.hidden = false;
      line.focus();
    };
    editor.append(area, button('edit-save', 'Save', () => editor.requestSubmit()), button('link-button edit-cancel', 'Cancel', done));
    editor.addEventListener('submit', (event) => {
      event.preventDefault();
      const value = area.value;
      if (!value.trim() || value === message.message) {
        done();
        return;
      }
      changes.edit(view.roomId, message.messageId, value).then(done, notice);
    });
    area.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') {
        event.preventDefault();
        done();
      } else if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        editor.requestSubmit();
      }
    });
    text.hidden = true;
    text.after(editor);
    area.focus();
  }

  // --- Jumping to a reply's original -----------------------------------------------------
  async function jumpTo(quote) {
    const roomId = view.roomId;
    let line = view.lines.get(quote.messageId);
    if (!line && Number.isInteger(quote.seq)) {
      try {
        await changes.around(roomId, quote.seq);
      } catch (error) {
        notice(error);
        return;
      }
      if (roomId !== view.roomId) return;
      line = view.lines.get(quote.messageId);
    }
    if (!line) {
      showNotice('The original message is no longer available.', 'info');
      return;
    }
    line.scrollIntoView({ block: 'center' });
    line.classList.add('highlight');
    setTimeout(() => line.classList.remove('highlight'), 2000);
    line.focus();
  }

  // --- The thread ----------------------------------------------------------------------
  const threadDialog = document.createElement('dialog');
  threadDialog.className = 'thread-dialog';
  threadDialog.id = 'thread-dialog';
  threadDialog.setAttribute('aria-label', 'Thread');
  document.body.append(threadDialog);

  function threadLine(m) {
    const li = document.createElement('li');
    li.className = 'thread-msg';
    const who = document.createElement('strong');
    who.textContent = m.username;
    const body = document.createElement('div');
    body.className = 'text';
    if (m.removed) body.textContent = 'Message removed';
    else body.append(renderMarkdown(m.message));
    li.append(who, body);
    return li;
  }

  async function openThread(message) {
    let frame;
    try {
      frame = await changes.thread(view.roomId, message.messageId);
    } catch (error) {
      notice(error);
      return;
    }
    const heading = document.createElement('h2');
    heading.textContent = `Thread: ${frame.messages.length} ${frame.messages.length === 1 ? 'reply' : 'replies'}`;
    const items = document.createElement('ol');
    items.className = 'thread-list';
    items.append(threadLine(frame.root), ...frame.messages.map(threadLine));
    threadDialog.replaceChildren(heading, items, button('thread-close', 'Close', () => threadDialog.close()));
    threadDialog.showModal();
  }

  // --- The menu items (the same as the React app's: core/changes.js) -------------------------
  registerChangeActions(messageActions, {
    reply: (ctx) => startReply(ctx.message),
    react: (ctx) => openPicker(ctx.message, ctx.line),
    edit: (ctx) => startEdit(ctx.message, ctx.line),
    remove: (ctx) => confirmDelete(ctx.message, ctx.line),
  });

  // An in-line question, not window.confirm: it keeps focus in the page and reads as text.
  function confirmDelete(message, line) {
    if (line.querySelector('.delete-confirm')) return;
    const box = document.createElement('div');
    box.className = 'delete-confirm';
    box.setAttribute('role', 'group');
    box.setAttribute('aria-label', 'Delete this message?');
    const question = document.createElement('span');
    question.textContent = 'Delete this message for everyone?';
    const close = () => {
      box.remove();
      line.focus();
    };
    const yes = button('danger delete-yes', 'Delete', () => {
      changes.remove(view.roomId, message.messageId).then(close, (error) => {
        close();
        notice(error);
      });
    });
    box.append(question, yes, button('link-button delete-no', 'Cancel', close));
    box.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') close();
    });
    line.querySelector('.msg-main').append(box);
    yes.focus();
  }

  // --- What a stored line shows besides its text -------------------------------------------
  function decorate(li, m) {
    const main = li.querySelector('.msg-main');
    // The quote of a reply, above the text.
    let quote = li.querySelector('.reply-quote');
    if (m.replyTo) {
      if (!quote) {
        quote = document.createElement('button');
        quote.type = 'button';
        quote.className = 'reply-quote';
        quote.tabIndex = -1;
        quote.addEventListener('click', () => jumpTo(JSON.parse(quote.dataset.quote)));
        li.querySelector('.text').before(quote);
      }
      const words = `↪ ${m.replyTo.username}: ${quoteText(m.replyTo)}`;
      if (quote.textContent !== words) quote.textContent = words;
      quote.classList.toggle('removed', Boolean(m.replyTo.removed));
      quote.dataset.quote = JSON.stringify({ messageId: m.replyTo.messageId, seq: m.replyTo.seq });
    } else if (quote) {
      quote.remove();
    }
    // Reaction chips: a click adds or takes back the reader's own.
    let chips = li.querySelector('.reactions');
    const shown = m.removed ? [] : reactionChips(m, userId);
    const key = JSON.stringify(shown);
    if (shown.length && !chips) {
      chips = document.createElement('div');
      chips.className = 'reactions';
      main.append(chips);
    }
    if (chips && chips.dataset.key !== key) {
      chips.dataset.key = key;
      chips.replaceChildren(
        ...shown.map((chip) => {
          const b = button(chip.me ? 'reaction mine' : 'reaction', `${chip.emoji} ${chip.count}`, () =>
            changes.toggle(view.roomId, m, chip.emoji, userId).catch(notice),
          );
          b.tabIndex = -1;
          b.dataset.emoji = chip.emoji;
          b.setAttribute('aria-pressed', chip.me ? 'true' : 'false');
          b.setAttribute('aria-label', `${chip.emoji} ${chip.count} ${chip.count === 1 ? 'reaction' : 'reactions'}${chip.me ? ', yours' : ''}`);
          return b;
        }),
      );
      chips.hidden = shown.length === 0;
    }
    // "N replies" opens the thread.
    let replies = li.querySelector('.replies-link');
    if (m.replyCount > 0 && !m.removed) {
      if (!replies) {
        replies = button('link-button replies-link', '', () => openThread(m));
        replies.tabIndex = -1;
        main.append(replies);
      }
      const words = `${m.replyCount} ${m.replyCount === 1 ? 'reply' : 'replies'}`;
      if (replies.textContent !== words) replies.textContent = words;
    } else if (replies) {
      replies.remove();
    }
  }

  list.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && replyTo && event.target === input) clearReply();
  });

  return {
    decorate,
    /** The message id the composer's next message answers (and forget it). */
    takeReply() {
      const id = replyTo?.messageId ?? null;
      clearReply();
      return id;
    },
  };
}
