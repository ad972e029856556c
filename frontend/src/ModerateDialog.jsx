/**
 * A moderator's hide, delete or ban from a message's menu (docs/moderation.md, "In the
 * chat"): an in-page dialog saying what will happen, with the reason (and, for a ban, how
 * long), the same as the template UI's (templates/chat/moderate_dialog.html). Its words and
 * durations are static/chat/core/moderation.js's.
 */

import { useState } from 'react';

import { useModal } from './useModal.js';

import { BAN_DURATIONS, moderationWords } from '../../static/chat/core/moderation.js';

export default function ModerateDialog({ kind, message, onSend, onClose }) {
  const dialog = useModal(onClose);
  const [reason, setReason] = useState('');
  const [duration, setDuration] = useState(BAN_DURATIONS[0].value);

  function submit(event) {
    event.preventDefault();
    if (!reason.trim()) return;
    onSend({ reason, duration });
    dialog.current.close();
  }

  const words = moderationWords(kind, message.username);
  const text = message.message ?? '';
  return (
    <dialog className="dialog" ref={dialog} aria-labelledby="moderate-title" aria-describedby="moderate-explain">
      <form className="stack" onSubmit={submit}>
        <h2 id="moderate-title">{words.title}</h2>
        <p className="muted dialog-quote" dir="auto">
          {message.username}: {text.length > 140 ? `${text.slice(0, 140)}…` : text}
        </p>
        <p id="moderate-explain">{words.explain}</p>
        <div className="field">
          <label htmlFor="moderate-reason">Reason (kept in the audit log; a banned user is shown it)</label>
          <textarea
            id="moderate-reason"
            rows={2}
            maxLength={1000}
            required
            autoFocus
            value={reason}
            onChange={(e) => setReason(e.target.value)}
          />
        </div>
        {kind === 'ban' && (
          <div className="field">
            <label htmlFor="moderate-duration">How long</label>
            <select id="moderate-duration" value={duration} onChange={(e) => setDuration(e.target.value)}>
              {BAN_DURATIONS.map((d) => (
                <option key={d.value} value={d.value}>
                  {d.label}
                </option>
              ))}
            </select>
          </div>
        )}
        <div className="dialog-buttons">
          <button type="button" className="secondary" onClick={() => dialog.current.close()}>
            Cancel
          </button>
          <button type="submit" className="primary">
            {words.confirm}
          </button>
        </div>
      </form>
    </dialog>
  );
}
