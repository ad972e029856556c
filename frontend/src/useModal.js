/**
 * useModal: a <dialog> shown modal as it mounts, calling `onClose` when it closes (Esc,
 * Cancel, or after its form is sent). The in-page dialogs (ReportDialog.jsx,
 * ModerateDialog.jsx) share it instead of each wiring showModal and the close event.
 */

import { useEffect, useRef } from 'react';

export function useModal(onClose) {
  const dialog = useRef(null);
  useEffect(() => {
    const el = dialog.current;
    if (!el.open) el.showModal();
    const closed = () => onClose();
    el.addEventListener('close', closed);
    return () => el.removeEventListener('close', closed);
  }, [onClose]);
  return dialog;
}
