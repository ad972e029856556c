"""Who shares a room membership with whom (presence's audience), kept per process.

A change of a user's presence goes to everyone who shares a room membership with them
(chat.presence.announce). Reading that from the store costs one UserRoomsIndex query and one
members query per room of theirs, and it was read again on every change (online, away,
offline, each socket's idle tick). Memberships change far less often than presence, so each
process keeps the two answers it reads, each user's rooms and each room's members, and
forgets them when a membership changes:

- every membership write of either backend tells `membership_changed` (chat.storage.base),
  which forgets the room and the user here once the write is committed, and tells every
  other process through the channel layer (chat.broadcast.membership_changed; chat.fanout
  calls `forget`);
- a fill that raced an invalidation is not kept (a generation count);
- what was just forgotten is not kept again for SETTLE_SECONDS: DynamoDB's indexes are
  eventually consistent, so the first read after a change may not show it yet; it is read
  again on the next change rather than kept;
- every entry expires after ENTRY_SECONDS, in case an invalidation was lost (a channel
  layer outage), and at most MAX_ENTRIES of each kind are kept.

Who receives presence does not change; on other processes the answer follows a membership
change as soon as the layer delivers the invalidation, as their sockets' roomAdded does.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from typing import Final, TypeVar

from django.core.signals import setting_changed

from chat.storage.base import ChatStore

ENTRY_SECONDS: Final = 60.0
SETTLE_SECONDS: Final = 5.0
MAX_ENTRIES: Final = 10_000

V = TypeVar("V")


class _Entries(OrderedDict[str, tuple[float, V]]):
    """key -> (expiry on the monotonic clock, value), oldest use first."""


class FellowsCache:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._generation = 0
        self._rooms: _Entries[tuple[str, ...]] = _Entries()  # user -> their rooms
        # room -> (the limit it was read with, its members or None: more than that)
        self._members: _Entries[tuple[int, tuple[str, ...] | None]] = _Entries()
        self._settling: dict[str, float] = {}  # "u:<user>" / "r:<room>" -> not kept before

    def fellows(self, store: ChatStore, *, user_id: str, per_room: int) -> list[str]:
        """The users who share a room membership with `user_id`, them excepted; a room of
        more than `per_room` members is left out (chat.services.room_fellows)."""
        found: set[str] = set()
        for room_id in self._read(self._rooms, f"u:{user_id}", partial(_rooms_of, store, user_id)):
            _, members = self._read(
                self._members,
                f"r:{room_id}",
                partial(_members_of, store, room_id, per_room),
                fresh=lambda v: v[0] == per_room,
            )
            if members is not None:
                found.update(members)
        found.discard(user_id)
        return sorted(found)

    def known(self, *, user_id: str, per_room: int) -> list[str] | None:
        """`fellows` from what is kept alone, or None when any part of it must be read: the
        event loop asks this first and sends only a miss off to a store thread (a socket's
        open warms it in the trip that writes its row, chat.services.connection_open)."""
        found: set[str] = set()
        with self._lock:
            now = self.clock()
            rooms = self._rooms.get(f"u:{user_id}")
            if rooms is None or rooms[0] <= now:
                return None
            for room_id in rooms[1]:
                entry = self._members.get(f"r:{room_id}")
                if entry is None or entry[0] <= now or entry[1][0] != per_room:
                    return None
                if entry[1][1] is not None:
                    found.update(entry[1][1])
        found.discard(user_id)
        return sorted(found)

    def forget(self, *, room_id: str | None = None, user_id: str | None = None) -> None:
        """A membership of `user_id` in `room_id` changed: both are read again."""
        with self._lock:
            self._generation += 1
            settle = self.clock() + SETTLE_SECONDS
            for key in ([f"u:{user_id}"] if user_id else []) + ([f"r:{room_id}"] if room_id else []):
                (self._rooms if key.startswith("u:") else self._members).pop(key, None)
                self._settling[key] = settle

    def clear(self) -> None:
        """Forget everything (this process may have missed invalidations)."""
        with self._lock:
            self._generation += 1
            self._rooms.clear()
            self._members.clear()

    def _read(
        self, entries: _Entries[V], key: str, read: Callable[[], V], *, fresh: Callable[[V], bool] = lambda v: True
    ) -> V:
        with self._lock:
            now = self.clock()
            found = entries.get(key)
            if found is not None and found[0] > now and fresh(found[1]):
                entries.move_to_end(key)
                return found[1]
            generation = self._generation
        value = read()
        with self._lock:
            now = self.clock()
            for old in [k for k, until in self._settling.items() if until <= now]:
                del self._settling[old]
            if generation == self._generation and key not in self._settling:
                entries[key] = (now + ENTRY_SECONDS, value)
                entries.move_to_end(key)
                while len(entries) > MAX_ENTRIES:
                    entries.popitem(last=False)
        return value


def _rooms_of(store: ChatStore, user_id: str) -> tuple[str, ...]:
    return tuple(m.room_id for m in store.rooms_of_user(user_id))


def _members_of(store: ChatStore, room_id: str, per_room: int) -> tuple[int, tuple[str, ...] | None]:
    page = store.members_page(room_id=room_id, limit=per_room + 1)
    return per_room, (tuple(m.user_id for m in page) if len(page) <= per_room else None)


# The process's cache (store calls run on worker threads: the cache locks itself).
cache: Final = FellowsCache()


def _reset(*, setting: str, **kwargs: object) -> None:
    # Another store (chat.storage.get_store resets on these) or another room limit.
    if setting.startswith(("CHAT_STORAGE", "DYNAMODB", "CHAT_PRESENCE")):
        cache.clear()


setting_changed.connect(_reset)
