/**
 * What the user asked to be told (issue 16), in the React app: the open room's notification
 * level ("Notify me about": all messages, mentions and DMs, nothing) and the read-receipts
 * switch. The settings, the rule for a hidden tab and the API calls are the shared core's
 * (static/chat/core/notify.js), as in the template UI.
 */
import { useEffect, useState } from 'react';

import { LEVELS, LEVEL_NAMES, NotifySettings } from '../../static/chat/core/notify.js';

/** One NotifySettings for the signed-in user, loaded once; re-renders on every change. */
export function useNotifySettings(api) {
  const [settings, setSettings] = useState(null);
  const [, setVersion] = useState(0);
  useEffect(() => {
    if (!api) return undefined;
    const fetchJson = (path, body) => api.request(path, body === undefined ? {} : { method: 'POST', body });
    const made = new NotifySettings({ fetchJson });
    const off = made.onChange(() => setVersion((v) => v + 1));
    setSettings(made);
    made.load();
    return off;
  }, [api]);
  return settings;
}

/** Show `value` while the server takes it (a controlled input would snap back), then what it kept. */
async function save(fn, value, setPending) {
  setPending({ value });
  try {
    await fn();
  } catch (error) {
    console.warn('Notifications.jsx: the setting was not saved', error);
  } finally {
    setPending(null);
  }
}

export function LevelSelect({ settings, roomId }) {
  const [pending, setPending] = useState(null);
  if (!settings || !roomId) return null;
  return (
    <label className="notify-level">
      <span className="notify-level-text">Notify me about</span>
      <select
        id="notify-level"
        aria-label="Notify me about"
        value={pending ? pending.value : settings.level(roomId)}
        disabled={pending !== null}
        onChange={(e) => save(() => settings.setLevel(roomId, e.target.value), e.target.value, setPending)}
      >
        {LEVELS.map((level) => (
          <option key={level} value={level}>
            {LEVEL_NAMES[level]}
          </option>
        ))}
      </select>
    </label>
  );
}

export function ReceiptsToggle({ settings }) {
  const [pending, setPending] = useState(null);
  if (!settings) return null;
  return (
    <label className="receipts-toggle">
      <input
        type="checkbox"
        id="send-receipts"
        checked={pending ? pending.value : settings.receipts}
        disabled={pending !== null}
        onChange={(e) => save(() => settings.setReceipts(e.target.checked), e.target.checked, setPending)}
      />{' '}
      Send read receipts
    </label>
  );
}
