/*
 * Signing out forgets this browser's unsent messages (issue 20): on a shared computer the
 * next user must not find, or send, the last one's drafts. Loaded on every signed-in page,
 * since "Sign out" is in the header of each.
 */
import { clearOutboxes } from "./core/outbox.js";

for (const form of document.querySelectorAll("form[data-sign-out]")) {
  form.addEventListener("submit", () => clearOutboxes());
}
