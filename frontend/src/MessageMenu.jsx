/**
 * The per-message menu: the actions registered in messageActions.js that apply to the
 * message, beside its "⋯" button. ↑/↓/Home/End move, Enter runs, Esc or Tab closes and
 * focus goes back to the button (the same keys as the template UI's static/chat/message-menu.js).
 */

import { useEffect, useLayoutEffect, useRef } from 'react';

export default function MessageMenu({ actions, trigger, onClose }) {
  const menu = useRef(null);

  // Beside its button, inside the window (a phone's too).
  useLayoutEffect(() => {
    const el = menu.current;
    const rect = trigger.getBoundingClientRect();
    const left = Math.max(8, Math.min(rect.right - el.offsetWidth, window.innerWidth - el.offsetWidth - 8));
    const below = rect.bottom + 4;
    const top = below + el.offsetHeight > window.innerHeight - 8 ? Math.max(8, rect.top - el.offsetHeight - 4) : below;
    el.style.left = `${left}px`;
    el.style.top = `${top}px`;
    (el.querySelector('[role="menuitem"]') ?? el).focus();
  }, [trigger]);

  useEffect(() => {
    const away = (event) => {
      if (!menu.current?.contains(event.target) && !trigger.contains(event.target)) onClose(false);
    };
    const resize = () => onClose(false);
    document.addEventListener('pointerdown', away);
    window.addEventListener('resize', resize);
    return () => {
      document.removeEventListener('pointerdown', away);
      window.removeEventListener('resize', resize);
    };
  }, [trigger, onClose]);

  function onKeyDown(event) {
    const items = Array.from(menu.current.querySelectorAll('[role="menuitem"]'));
    const at = items.indexOf(document.activeElement);
    let next = null;
    if (event.key === 'ArrowDown') next = items[(at + 1) % items.length];
    else if (event.key === 'ArrowUp') next = items[(at - 1 + items.length) % items.length];
    else if (event.key === 'Home') next = items[0];
    else if (event.key === 'End') next = items.at(-1);
    else if (event.key === 'Escape') {
      event.preventDefault();
      event.stopPropagation();
      onClose(true);
      return;
    } else if (event.key === 'Tab') {
      event.preventDefault();
      onClose(true);
      return;
    }
    if (next) {
      event.preventDefault();
      next.focus();
    }
  }

  return (
    <div className="menu" role="menu" aria-label="Message actions" ref={menu} tabIndex={-1} onKeyDown={onKeyDown}>
      {actions.length === 0 && <p className="menu-empty">No actions for this message</p>}
      {actions.map((action) => (
        <button
          key={action.id}
          type="button"
          role="menuitem"
          tabIndex={-1}
          data-action={action.id}
          onClick={() => {
            onClose(true);
            action.run();
          }}
        >
          {action.label}
        </button>
      ))}
    </div>
  );
}
