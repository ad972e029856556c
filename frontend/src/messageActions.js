/**
 * The React app's per-message menu registry (static/chat/core/actions.js explains the API;
 * the template UI has its own, in static/chat/message-menu.js). A feature adds its item
 * from its own module, with no change to MessageList.jsx:
 *
 *   import { messageActions } from './messageActions.js';
 *   messageActions.register({ id: 'edit', label: 'Edit', when: (ctx) => ctx.own, run: (ctx) => ... });
 *
 * ctx: {message, own, moderator, roomId, connection, ui}; `ui` holds the app's callbacks:
 * `openReport(message)`, `openModeration(kind, message)`, `focusComposer()`, `announce(text)`,
 * `startReply(message)`, `startChange(message, 'edit' | 'react' | 'delete')`.
 */

import { createActionRegistry } from '../../static/chat/core/actions.js';
import { registerChangeActions } from '../../static/chat/core/changes.js';
import { registerModeratorActions } from '../../static/chat/core/moderation.js';

export const messageActions = createActionRegistry();

// Reporting (docs/moderation.md): an in-page dialog with reasons (ReportDialog.jsx).
messageActions.register({
  id: 'report',
  label: 'Report…',
  when: (ctx) => !ctx.own && !ctx.message.removed && Boolean(ctx.message.messageId) && !ctx.reported,
  run: (ctx) => ctx.ui.openReport(ctx.message),
});

// Reply, React…, Edit, Delete after Report…, as in the template UI's menu: its very items
// (static/chat/core/changes.js), shown by MessageChanges.jsx under the message (the editor,
// the picker, the delete question).
registerChangeActions(messageActions, {
  reply: (ctx) => ctx.ui.startReply(ctx.message),
  react: (ctx) => ctx.ui.startChange(ctx.message, 'react'),
  edit: (ctx) => ctx.ui.startChange(ctx.message, 'edit'),
  remove: (ctx) => ctx.ui.startChange(ctx.message, 'delete'),
});

// A moderator's hide, delete and "Ban user…" (docs/moderation.md): ModerateDialog.jsx.
registerModeratorActions(messageActions, (kind, ctx) => ctx.ui.openModeration(kind, ctx.message));
