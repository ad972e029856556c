/**
 * actions.js: the per-message menu's registry, one per UI. Pure: no DOM, no React.
 *
 * Each UI keeps one registry (`messageActions`) and renders, for a message, the actions
 * whose `when` accepts it, in registration order, in a keyboard-reachable menu. A feature
 * adds its item with one call from its own module:
 *
 *   template UI: messageActions, exported by message-menu.js
 *   React app: messageActions, exported by messageActions.js
 *   messageActions.register({
 *     id: 'edit',                       // unique; registering the same id again replaces it
 *     label: 'Edit',                    // the menu item's text (or (ctx) => text)
 *     when: (ctx) => ctx.own && !ctx.message.removed,   // optional: shown only when true
 *     run: (ctx) => startEditing(ctx.message),          // the item was chosen
 *   });
 *
 * `ctx` is {message, own, roomId, connection, ...} plus what the UI adds (the template UI:
 * `line`, the message's <li>, and `focusComposer()`; React: `ui`, its callbacks). `message`
 * is the stored message as static/chat/core/rooms.js `messageOf` shapes it. register()
 * returns a function that removes the action again.
 */

export function createActionRegistry() {
  let actions = [];
  return {
    register(action) {
      if (!action || typeof action.id !== 'string' || typeof action.run !== 'function') {
        throw new TypeError('messageActions.register({id, label, when?, run}) needs an id and a run function');
      }
      actions = [...actions.filter((a) => a.id !== action.id), action];
      return () => {
        actions = actions.filter((a) => a !== action);
      };
    },
    /** The actions that apply to `ctx`, each with its label resolved. */
    for(ctx) {
      const shown = [];
      for (const action of actions) {
        let ok = true;
        try {
          ok = action.when ? Boolean(action.when(ctx)) : true;
        } catch (error) {
          console.error(`message action '${action.id}': when() threw`, error);
          ok = false;
        }
        if (!ok) continue;
        const label = typeof action.label === 'function' ? action.label(ctx) : String(action.label ?? action.id);
        shown.push({ id: action.id, label, run: () => action.run(ctx) });
      }
      return shown;
    },
  };
}
