"""Presence rules: what a user's sockets say about them. Pure code, no I/O.

A user is online while any live socket of theirs is active, away while they have live
sockets and all are idle (no activity for CHAT_AWAY_AFTER_SECONDS, or the tab hidden),
offline with none. Several tabs and devices count as one user. A socket is live while the
process that holds it is: each process renews its own expiry every heartbeat, and the
sockets of a process that died without closing them stop counting when that expiry passes
(CHAT_PRESENCE_TTL_SECONDS), whoever notices first.

`PresenceBook` keeps this state in memory (the embedded default, one process); the Redis
backend (chat.presence) runs the very same rules in one Lua script per change, so every
process agrees and each change is reported once. The frames a client receives are built
here too.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

ONLINE: Final = "online"
AWAY: Final = "away"
OFFLINE: Final = "offline"
STATUSES: Final = (ONLINE, AWAY, OFFLINE)

# A socket's own state, as its process reports it.
ACTIVE: Final = "active"
IDLE: Final = "idle"
CLOSED: Final = "closed"


@dataclass(frozen=True, slots=True)
class UserPresence:
    status: str
    last_seen_at: datetime | None  # the last moment the user was seen online


@dataclass(frozen=True, slots=True)
class Change:
    """What one update did to a user: `before` -> `after` (equal when nothing changed).

    `rooms`: the rooms the change concerns (every room of the user's live sockets, before
    and after); `new_rooms`: rooms the user has a socket in now and had none before, whose
    members learn the user's status even when it did not change.
    """

    user_id: str
    before: str
    after: str
    last_seen_ms: int | None
    rooms: tuple[str, ...] = ()
    new_rooms: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return self.before != self.after


def aggregate(states: list[str]) -> str:
    """The user's status from the states of their live sockets."""
    if not states:
        return OFFLINE
    return ONLINE if ACTIVE in states else AWAY


def idle_after(*, last_active: float, now: float, away_after: float) -> bool:
    """Whether a socket with no activity since `last_active` is idle at `now`."""
    return now - last_active >= away_after


@dataclass(slots=True)
class _Socket:
    instance: str
    state: str
    rooms: frozenset[str] = frozenset()


@dataclass(slots=True)
class _User:
    sockets: dict[str, _Socket] = field(default_factory=dict)
    status: str = OFFLINE
    seen_ms: int | None = None


class PresenceBook:
    """Every user's sockets, the processes' expiries, and each user's last reported status."""

    def __init__(self, *, ttl_ms: int) -> None:
        self.ttl_ms = ttl_ms
        self.users: dict[str, _User] = {}
        self.instances: dict[str, int] = {}  # instance -> expiry (ms)
        # room -> the users with a socket (live or not yet swept) in it. `in_room` runs on
        # every join of a socket that shows presence: walking every user there made a
        # connect storm quadratic (5,000 sockets, 5,000 users walked per join).
        self.rooms: dict[str, set[str]] = {}

    def _reindex(self, user_id: str, before: set[str], after: set[str]) -> None:
        for room in before - after:
            members = self.rooms.get(room)
            if members is not None:
                members.discard(user_id)
                if not members:
                    del self.rooms[room]
        for room in after - before:
            self.rooms.setdefault(room, set()).add(user_id)

    def _live(self, socket: _Socket, now_ms: int) -> bool:
        return self.instances.get(socket.instance, 0) >= now_ms

    def _recompute(self, user_id: str, user: _User, now_ms: int, rooms_before: set[str]) -> Change:
        for conn in [c for c, s in user.sockets.items() if not self._live(s, now_ms)]:
            del user.sockets[conn]
        rooms_after = {room for s in user.sockets.values() for room in s.rooms}
        before, after = user.status, aggregate([s.state for s in user.sockets.values()])
        if before != after and ONLINE in (before, after):
            user.seen_ms = now_ms
        user.status = after
        if not user.sockets and after == OFFLINE and user.seen_ms is None:
            self.users.pop(user_id, None)
        return Change(
            user_id=user_id,
            before=before,
            after=after,
            last_seen_ms=user.seen_ms,
            rooms=tuple(sorted(rooms_before | rooms_after)),
            new_rooms=tuple(sorted(rooms_after - rooms_before)),
        )

    def update(
        self, *, user_id: str, connection_id: str, instance: str, state: str, rooms: frozenset[str], now_ms: int
    ) -> Change:
        """One socket's state (ACTIVE, IDLE, or CLOSED: gone) and rooms, as its process says."""
        self.instances[instance] = max(self.instances.get(instance, 0), now_ms + self.ttl_ms)
        user = self.users.setdefault(user_id, _User())
        indexed = _rooms_of(user)
        rooms_before = {room for s in user.sockets.values() if self._live(s, now_ms) for room in s.rooms}
        if state == CLOSED:
            user.sockets.pop(connection_id, None)
        else:
            user.sockets[connection_id] = _Socket(instance, state, rooms)
        if state == ACTIVE:
            user.seen_ms = now_ms
        change = self._recompute(user_id, user, now_ms, rooms_before)
        self._reindex(user_id, indexed, _rooms_of(user))
        return change

    def heartbeat(self, *, instance: str, now_ms: int) -> list[Change]:
        """Renew `instance`; report the users whose status changed as other processes expired."""
        self.instances[instance] = now_ms + self.ttl_ms
        dead = [name for name, expiry in self.instances.items() if expiry < now_ms]
        if not dead:
            return []
        changes = []
        for user_id, user in list(self.users.items()):
            if any(s.instance in dead for s in user.sockets.values()):
                rooms_before = _rooms_of(user)
                change = self._recompute(user_id, user, now_ms, rooms_before)
                self._reindex(user_id, rooms_before, _rooms_of(user))
                if change.changed:
                    changes.append(change)
        for name in dead:
            del self.instances[name]
        return changes

    def read(self, user_ids: list[str], now_ms: int) -> dict[str, tuple[str, int | None]]:
        """(status, last seen ms) of each user, as of now (changes nothing)."""
        answer: dict[str, tuple[str, int | None]] = {}
        for user_id in user_ids:
            user = self.users.get(user_id)
            if user is None:
                answer[user_id] = (OFFLINE, None)
                continue
            states = [s.state for s in user.sockets.values() if self._live(s, now_ms)]
            answer[user_id] = (aggregate(states), user.seen_ms)
        return answer

    def in_room(self, room_id: str, now_ms: int) -> dict[str, tuple[str, int | None]]:
        """(status, last seen ms) of every user with a live socket in the room."""
        answer: dict[str, tuple[str, int | None]] = {}
        for user_id in self.rooms.get(room_id, ()):
            user = self.users[user_id]
            live = [s for s in user.sockets.values() if self._live(s, now_ms)]
            if any(room_id in s.rooms for s in live):
                answer[user_id] = (aggregate([s.state for s in live]), user.seen_ms)
        return answer


def _rooms_of(user: _User) -> set[str]:
    """The rooms of all the user's sockets, live or not yet swept."""
    return {room for s in user.sockets.values() for room in s.rooms}


def from_ms(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, UTC)


@functools.lru_cache(maxsize=4096)
def _timestamp(value: datetime | None) -> str | None:
    """ISO 8601 in UTC, to the millisecond. Cached: a connect storm formats the same users'
    last-seen times for every socket that joins their rooms."""
    if value is None:
        return None
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def presence_frame(user_id: str, presence: UserPresence) -> dict[str, Any]:
    """{"type": "presence", "userId", "status", "lastSeenAt"} (docs/protocol.md)."""
    return {
        "type": "presence",
        "userId": user_id,
        "status": presence.status,
        "lastSeenAt": _timestamp(presence.last_seen_at),
    }


def presence_batch(texts: list[str]) -> str:
    """The frame for the presence changes a socket is told at once, given their encoded
    `presence_frame`s: the frame itself when there is one, else
    `{"type": "presence", "users": [<frame>, ...]}` (docs/protocol.md). Joined, not encoded
    again: in a connect storm every socket of a room gets a batch each window."""
    if len(texts) == 1:
        return texts[0]
    return '{"type":"presence","users":[' + ",".join(texts) + "]}"
