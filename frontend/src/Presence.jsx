/**
 * Presence dots and the "alice is typing…" line for the React app. The state is the client
 * core's (static/chat/core/presence.js and typing.js, which the template UI uses too);
 * this only renders it and sends `typing` while the user writes.
 */
import { useCallback, useEffect, useMemo, useState } from 'react';

import { createPresenceBook, presenceText, watchActivity } from '../../static/chat/core/presence.js';
import { createTypingSender, createTypingTracker } from '../../static/chat/core/typing.js';

/** {presenceOf(userId), typing (the open room's line), keystroke(), sent()} for one room. */
export function usePresence(connection, roomId) {
  const [, setVersion] = useState(0);
  const bump = useCallback(() => setVersion((v) => v + 1), []);
  const parts = useMemo(
    () => ({
      book: createPresenceBook({ onChange: bump }),
      tracker: createTypingTracker({ onChange: bump }),
      sender: connection ? createTypingSender((id) => connection.typing(id)) : null,
    }),
    [connection, bump],
  );

  useEffect(() => {
    if (!connection) return undefined;
    const offs = [
      connection.on('presence', (frame) => parts.book.presence(frame)),
      connection.on('typing', (frame) => parts.tracker.typing(frame)),
      connection.on('message', (message) => parts.tracker.message(message)),
      watchActivity(connection, window),
    ];
    return () => {
      offs.forEach((off) => off());
      parts.tracker.clear();
    };
  }, [connection, parts]);

  return {
    presenceOf: (userId) => parts.book.of(userId),
    typing: parts.tracker.label(roomId),
    keystroke: () => parts.sender?.keystroke(roomId),
    sent: () => parts.sender?.sent(roomId),
  };
}

export function PresenceDot({ presence }) {
  const text = presenceText(presence);
  return <span className="presence-dot" data-status={presence.status} role="img" title={text} aria-label={text} />;
}

export function TypingLine({ text }) {
  return (
    <p className="typing-line" aria-live="polite" data-testid="typing-line">
      {text}
    </p>
  );
}
