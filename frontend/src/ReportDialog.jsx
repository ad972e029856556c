/**
 * Reporting a message (docs/moderation.md): an in-page dialog with reasons, the same as
 * the template UI's (templates/chat/report_dialog.html), opened by the menu's "Report…".
 */

import { useState } from 'react';

import { useModal } from './useModal.js';

const REASONS = ['Spam or advertising', 'Harassment or hate', 'Inappropriate or illegal content', 'Something else'];

export default function ReportDialog({ message, onSend, onClose }) {
  const dialog = useModal(onClose);
  const [reason, setReason] = useState(null);
  const [details, setDetails] = useState('');

  function submit(event) {
    event.preventDefault();
    if (!reason) return;
    const extra = details.trim();
    onSend(extra ? `${reason}: ${extra}` : reason);
    dialog.current.close();
  }

  const text = message.message ?? '';
  return (
    <dialog className="dialog" ref={dialog} aria-labelledby="report-title">
      <form className="stack" onSubmit={submit}>
        <h2 id="report-title">Report this message</h2>
        <p className="muted dialog-quote" dir="auto">
          {message.username}: {text.length > 140 ? `${text.slice(0, 140)}…` : text}
        </p>
        <fieldset className="reasons">
          <legend>Why should the moderators look at it?</legend>
          {REASONS.map((r) => (
            <label key={r}>
              <input type="radio" name="reason" value={r} required checked={reason === r} onChange={() => setReason(r)} /> {r}
            </label>
          ))}
        </fieldset>
        <div className="field">
          <label htmlFor="report-details">Details (optional)</label>
          <textarea id="report-details" rows={2} maxLength={400} value={details} onChange={(e) => setDetails(e.target.value)} />
        </div>
        <div className="dialog-buttons">
          <button type="button" className="secondary" onClick={() => dialog.current.close()}>
            Cancel
          </button>
          <button type="submit" className="primary">
            Send report
          </button>
        </div>
      </form>
    </dialog>
  );
}
