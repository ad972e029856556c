/**
 * outbox.js: messages typed but not yet acknowledged survive a reload (issue 20, item 11).
 *
 * Each unacknowledged message is one localStorage entry, `chatsite.outbox.<user>.<clientMessageId>`,
 * written when it is typed and removed when the server acknowledges it (or the user
 * discards it). One entry per message, not one list per user, so two tabs of one user
 * never overwrite each other's messages; if both send the same entry, the server stores a
 * clientMessageId once. Signing out removes every entry (`clearOutboxes`): a shared
 * computer keeps nothing of the last user's drafts.
 *
 * localStorage rather than IndexedDB: it is synchronous, so an entry is written before the
 * keydown handler returns and a reload a millisecond later cannot lose it.
 */

const PREFIX = 'chatsite.outbox.';

function defaultStorage() {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null; // storage disabled (some private modes): the outbox lives for this page only
  }
}

/** The persistent outbox of one user (`userKey`: their id or username on this site). */
export function localOutboxStore(userKey, storage = defaultStorage()) {
  const prefix = `${PREFIX}${encodeURIComponent(String(userKey))}.`;
  return {
    /** Every stored message of this user, oldest first. */
    load() {
      if (!storage) return [];
      const items = [];
      for (let i = 0; i < storage.length; i += 1) {
        const key = storage.key(i);
        if (!key || !key.startsWith(prefix)) continue;
        try {
          const item = JSON.parse(storage.getItem(key));
          if (item && typeof item.clientMessageId === 'string' && typeof item.roomId === 'string' && typeof item.text === 'string') {
            items.push(item);
          }
        } catch {
          // a damaged entry is skipped, never fatal
        }
      }
      return items.sort((a, b) => (a.createdAt ?? 0) - (b.createdAt ?? 0));
    },
    put(item) {
      if (!storage) return;
      const { clientMessageId, roomId, text, createdAt, attachments = [] } = item;
      try {
        const saved = { clientMessageId, roomId, text, createdAt, attachments };
        storage.setItem(prefix + clientMessageId, JSON.stringify(saved));
      } catch {
        // storage full: the message still goes out from memory
      }
    },
    remove(clientMessageId) {
      try {
        storage?.removeItem(prefix + clientMessageId);
      } catch {
        // ignore
      }
    },
  };
}

/** Forget every user's unsent messages in this browser (sign-out). */
export function clearOutboxes(storage = defaultStorage()) {
  if (!storage) return;
  const keys = [];
  for (let i = 0; i < storage.length; i += 1) {
    const key = storage.key(i);
    if (key && key.startsWith(PREFIX)) keys.push(key);
  }
  for (const key of keys) storage.removeItem(key);
}
