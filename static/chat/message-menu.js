/**
 * The template UI's per-message menu: a "⋯" button on every line opens a menu of the
 * actions registered for that message (static/chat/core/actions.js explains the API).
 * A feature adds its item from its own module, with no change here:
 *
 *   (other modules take messageActions from this module and call register)
 *   messageActions.register({ id: 'edit', label: 'Edit', when: (ctx) => ctx.own, run: (ctx) => ... });
 *
 * ctx: {message, own, roomId, connection, line (the <li>), focusComposer()}.
 * Keyboard: Enter, Space, Shift+F10 or the context-menu key on a focused line (or on its
 * button) opens the menu; ↑/↓/Home/End move; Enter runs; Esc or Tab closes it and focus
 * goes back where it was.
 */
import { createActionRegistry } from './core/actions.js';

export const messageActions = createActionRegistry();

export function createMessageMenu(menu) {
  let trigger = null;

  function items() {
    return Array.from(menu.querySelectorAll('[role="menuitem"]'));
  }

  function close({ restoreFocus = true } = {}) {
    if (menu.hidden) return;
    menu.hidden = true;
    menu.replaceChildren();
    const back = trigger;
    trigger = null;
    back?.setAttribute('aria-expanded', 'false');
    if (restoreFocus && back?.isConnected) back.focus();
  }

  function open(button, ctx) {
    close({ restoreFocus: false });
    const actions = messageActions.for(ctx);
    const buttons = actions.map((action) => {
      const item = document.createElement('button');
      item.type = 'button';
      item.setAttribute('role', 'menuitem');
      item.tabIndex = -1;
      item.dataset.action = action.id;
      item.textContent = action.label;
      item.addEventListener('click', () => {
        close();
        action.run();
      });
      return item;
    });
    if (buttons.length === 0) {
      const none = document.createElement('p');
      none.className = 'menu-empty';
      none.textContent = 'No actions for this message';
      menu.append(none);
    }
    menu.append(...buttons);
    trigger = button;
    button.setAttribute('aria-expanded', 'true');
    menu.hidden = false;
    place(button);
    (buttons[0] ?? menu).focus();
  }

  // Beside its button, inside the window (a phone's too).
  function place(button) {
    const rect = button.getBoundingClientRect();
    const width = menu.offsetWidth;
    const height = menu.offsetHeight;
    const left = Math.max(8, Math.min(rect.right - width, window.innerWidth - width - 8));
    const below = rect.bottom + 4;
    const top = below + height > window.innerHeight - 8 ? Math.max(8, rect.top - height - 4) : below;
    menu.style.left = `${left}px`;
    menu.style.top = `${top}px`;
  }

  menu.tabIndex = -1;
  menu.addEventListener('keydown', (event) => {
    const list = items();
    const at = list.indexOf(document.activeElement);
    let next = null;
    if (event.key === 'ArrowDown') next = list[(at + 1) % list.length];
    else if (event.key === 'ArrowUp') next = list[(at - 1 + list.length) % list.length];
    else if (event.key === 'Home') next = list[0];
    else if (event.key === 'End') next = list[list.length - 1];
    else if (event.key === 'Escape') {
      event.preventDefault();
      event.stopPropagation();
      close();
      return;
    } else if (event.key === 'Tab') {
      close();
      return;
    }
    if (next) {
      event.preventDefault();
      next.focus();
    }
  });
  document.addEventListener('pointerdown', (event) => {
    if (!menu.hidden && !menu.contains(event.target) && !trigger?.contains(event.target)) close({ restoreFocus: false });
  });
  window.addEventListener('resize', () => close({ restoreFocus: false }));

  return { open, close, isOpen: () => !menu.hidden };
}
