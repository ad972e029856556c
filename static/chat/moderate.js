/**
 * A moderator's actions in the template UI's message menu (docs/moderation.md, "In the
 * chat"): "Hide (moderator)…", "Delete (moderator)…" and "Ban user…" open one in-page dialog
 * (templates/chat/moderate_dialog.html) that says what will happen and asks for the reason
 * (and, for a ban, how long). The items, words and frames are core/moderation.js's, shared
 * with the React app; the answer comes back as the client's `moderated` or `userBanned`
 * event (or an error), which chat.js shows.
 */
import { messageActions } from './message-menu.js';
import { BAN_DURATIONS, moderationWords, registerModeratorActions, sendModeration } from './core/moderation.js';

export function setupModeration(dialog, { onOffline }) {
  const form = dialog.querySelector('form');
  const title = dialog.querySelector('#moderate-title');
  const quote = dialog.querySelector('#moderate-quote');
  const explain = dialog.querySelector('#moderate-explain');
  const reason = dialog.querySelector('#moderate-reason');
  const durationField = dialog.querySelector('#moderate-duration-field');
  const duration = dialog.querySelector('#moderate-duration');
  const confirm = dialog.querySelector('#moderate-confirm');
  let current = null;

  duration.replaceChildren(
    ...BAN_DURATIONS.map(({ value, label }) => {
      const option = document.createElement('option');
      option.value = value;
      option.textContent = label;
      return option;
    }),
  );

  dialog.querySelector('#moderate-cancel').addEventListener('click', () => dialog.close('cancel'));
  form.addEventListener('submit', (event) => {
    if (event.submitter?.value !== 'confirm' || !current) return;
    const { kind, ctx } = current;
    if (!sendModeration(ctx.connection, kind, ctx, { reason: reason.value, duration: duration.value })) onOffline();
  });
  dialog.addEventListener('close', () => {
    current = null;
  });

  registerModeratorActions(messageActions, (kind, ctx) => {
    current = { kind, ctx };
    form.reset();
    const words = moderationWords(kind, ctx.message.username);
    title.textContent = words.title;
    explain.textContent = words.explain;
    confirm.textContent = words.confirm;
    durationField.hidden = kind !== 'ban';
    duration.value = BAN_DURATIONS[0].value;
    const text = ctx.message.message ?? '';
    quote.textContent = `${ctx.message.username}: ${text.length > 140 ? `${text.slice(0, 140)}…` : text}`;
    dialog.showModal();
    reason.focus();
  });
}
