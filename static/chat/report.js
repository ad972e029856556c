/**
 * Reporting a message (docs/moderation.md) in the template UI: the "Report…" item of the
 * per-message menu opens an in-page dialog with reasons (templates/chat/report_dialog.html).
 * The answer comes back as the client's `reported` event (or an error), which chat.js shows.
 */
import { messageActions } from './message-menu.js';

export function setupReporting(dialog) {
  const form = dialog.querySelector('form');
  const quote = dialog.querySelector('#report-quote');
  const details = dialog.querySelector('#report-details');
  let current = null;

  dialog.querySelector('#report-cancel').addEventListener('click', () => dialog.close('cancel'));
  form.addEventListener('submit', (event) => {
    const choice = form.querySelector('input[name="reason"]:checked');
    if (event.submitter?.value !== 'send' || !choice || !current) return;
    const extra = details.value.trim();
    const reason = extra ? `${choice.value}: ${extra}` : choice.value;
    const { connection, roomId, message, line } = current;
    if (connection.reportMessage(roomId, message.messageId, reason)) line.dataset.report = 'sending';
  });
  dialog.addEventListener('close', () => {
    current = null;
  });

  messageActions.register({
    id: 'report',
    label: 'Report…',
    when: (ctx) => !ctx.own && !ctx.message.removed && Boolean(ctx.message.messageId) && ctx.line.dataset.report !== 'done',
    run: (ctx) => {
      current = ctx;
      form.reset();
      const text = ctx.message.message;
      quote.textContent = `${ctx.message.username}: ${text.length > 140 ? `${text.slice(0, 140)}…` : text}`;
      dialog.showModal();
    },
  });
}
