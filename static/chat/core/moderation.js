/**
 * moderation.js: a moderator's actions in a message's menu, shared by both UIs
 * (docs/moderation.md, "In the chat"). Pure: no DOM, no React; each UI draws its own
 * in-page dialog (a reason, and for a ban how long) and calls `sendModeration`.
 *
 * The items appear only for a moderator (`ctx.moderator`: the template page's
 * data-moderator, the React app's `authenticated.moderator`). That is a courtesy, not the
 * check: the server reads the rights again and answers anyone else `forbidden`.
 */

/** How long a ban from the chat lasts: seconds ('' is until a moderator lifts it). */
export const BAN_DURATIONS = Object.freeze([
  Object.freeze({ value: '86400', label: 'For a day' }),
  Object.freeze({ value: '604800', label: 'For a week' }),
  Object.freeze({ value: '2592000', label: 'For 30 days' }),
  Object.freeze({ value: '', label: 'Until a moderator lifts it' }),
]);

/** What each dialog says: its title, what the action will do, and its button. */
export function moderationWords(kind, username) {
  if (kind === 'ban') {
    return {
      title: `Ban ${username}`,
      explain: `${username}'s open chats close now, and they cannot post or connect until the ban ends. They are shown your reason.`,
      confirm: `Ban ${username}`,
    };
  }
  if (kind === 'delete') {
    return {
      title: 'Delete this message',
      explain: 'Its text is erased for good, for everyone: they see "Message removed by a moderator".',
      confirm: 'Delete message',
    };
  }
  return {
    title: 'Hide this message',
    explain: 'Everyone sees "Message removed by a moderator" instead; moderators can still read it in admin.',
    confirm: 'Hide message',
  };
}

/** Put the moderators' items in a UI's message menu; `open(kind, ctx)` shows its dialog. */
export function registerModeratorActions(registry, open) {
  const applies = (ctx) => Boolean(ctx.moderator) && Boolean(ctx.message?.messageId) && !ctx.message.removed;
  return [
    registry.register({ id: 'moderate-hide', label: 'Hide (moderator)…', when: applies, run: (ctx) => open('hide', ctx) }),
    registry.register({ id: 'moderate-delete', label: 'Delete (moderator)…', when: applies, run: (ctx) => open('delete', ctx) }),
    registry.register({ id: 'moderate-ban', label: 'Ban user…', when: (ctx) => applies(ctx) && !ctx.own, run: (ctx) => open('ban', ctx) }),
  ];
}

/** Send the chosen action; false when the connection is down (nothing was sent). */
export function sendModeration(connection, kind, { roomId, message }, { reason, duration = '' }) {
  const text = String(reason ?? '').trim();
  if (!text) return false;
  if (kind === 'ban') {
    const options = { roomId, messageId: message.messageId };
    if (duration) options.durationSeconds = Number(duration);
    return connection.banUser(message.userId, text, options);
  }
  return connection.moderateMessage(roomId, message.messageId, kind === 'delete' ? 'deleted' : 'hidden', text);
}

function when(until) {
  const at = until ? new Date(until) : null;
  return at && !Number.isNaN(at.getTime()) ? at.toLocaleString() : null;
}

/** The moderator's confirmation of `moderated` or `userBanned`. */
export function moderatedText(frame) {
  if (frame?.type === 'userBanned') {
    const end = when(frame.until);
    return `${frame.username} is banned ${end ? `until ${end}` : 'until a moderator lifts it'}.`;
  }
  return frame?.removal === 'deleted' ? 'Message deleted.' : 'Message hidden.';
}

/** What a banned user reads where the composer was (`ban`: the `banned` frame, or null). */
export function bannedText(ban) {
  if (!ban) return 'Banned: you can no longer take part in this chat.';
  const end = when(ban.until);
  return `Banned ${end ? `until ${end}` : 'until a moderator lifts it'}. Reason: ${ban.reason}`;
}
