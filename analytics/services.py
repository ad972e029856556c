"""Analytics writes: the hooks the chat and moderation services call after a durable write.

Each hook is one call at its call site and one short transaction here. The per-message one
is the hot path: four statements (a day counter per room, a user-day row, a minute counter,
the room's conversation state), written in the message's own transaction with an ORM store
(`message_stored_here`: no commit of its own) or after the broadcast in one of their own with
DynamoDB (`message_stored`); its cost is measured in docs/performance.md. A hook that fails
logs an error and loses that one count, never the message: a chat must not refuse to work
because analytics can't.

Counts are keyed by the event's own time (the services' clock), on UTC days. No hook keeps
message text.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any, Final

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import transaction

from analytics import batch, durations, live
from analytics.models import DayCounter, MinuteCounter, RoomActivity, SocketSpan, UserDay
from chatsite.db import rows

log = logging.getLogger(__name__)

# A room's conversation ends after this long without a message; the next one opens a new
# conversation, whose first reply by someone else is timed ("time to first reply").
CONVERSATION_GAP: Final = timedelta(minutes=30)
# Only replies within this long count: a "reply" the next afternoon answers nothing.
REPLY_WINDOW: Final = timedelta(hours=6)

MESSAGES: Final = "messages"  # DayCounter name, keyed by room id: messages in rooms (not DMs)
# Messages in direct messages, one row a day (key ""): the dashboard shows how much people
# talk in DMs, never which DM, so a DM's id is not kept. Counted apart from rooms as they are
# written, from the room's `direct` flag: a room id is no proof (admin may name a room "dm-x").
DM_MESSAGES: Final = "dm_messages"
REPORTS_OPENED: Final = "reports_opened"  # keyed by room id
REPORTS_RESOLVED: Final = "reports_resolved"
MOD_ACTION: Final = "mod_action"  # keyed by the audit log's action
FIRST_REPLY: Final = "first_reply"  # a histogram of seconds (analytics.durations), by the opener's day
RESOLVE: Final = "resolve"  # a histogram of seconds from report to its closing, by the closing day


def _bump(model: Any, keys: Mapping[str, Any], increments: Mapping[str, int]) -> None:
    """One counter row bumped by `increments` (chatsite.db.rows.add: INSERT ... ON CONFLICT
    DO UPDATE SET n = n + excluded.n, race-free across processes; the statement built once)."""
    rows.add(model, keys, increments)


def _duration(name: str, *, day: date, seconds: float) -> None:
    _bump(DayCounter, {"day": day, "name": name, "key": durations.bucket(seconds)}, {"value": 1})


def _day(at: datetime) -> date:
    return at.date()  # the services' clock is UTC


# RoomActivity's fields, its key first.
_ACTIVITY_FIELDS: Final = ("room_id", "last_at", "opened_at", "opener_id", "answered")

# A stored message: room id, sender's user id, time, and whether the room is a direct message.
Stored = tuple[str, str, datetime, bool]


def _conversations(stored: list[tuple[str, str, datetime]]) -> None:
    """Advance each room's conversation through these messages (oldest first); time the first
    reply by someone other than the opener. One read and one write of each room's state."""
    rooms = sorted({room for room, _, _ in stored})
    # Written out (chatsite.db.rows), as the upsert below: on every message sent with an ORM
    # store, the ORM's query building for these two cost more than the rest of the count.
    where = f"{rows.column(RoomActivity, 'room_id')} IN ({', '.join(['%s'] * len(rooms))})"
    states = {
        values["room_id"]: RoomActivity(**values)
        for values in rows.select(RoomActivity, _ACTIVITY_FIELDS, where=where, params=rooms, lock=True)
    }
    replies: Counter[tuple[date, str]] = Counter()
    for room_id, user_id, at in sorted(stored, key=lambda s: s[2]):
        state = states.get(room_id)
        if state is None or at - state.last_at > CONVERSATION_GAP:
            states[room_id] = RoomActivity(room_id=room_id, last_at=at, opened_at=at, opener_id=user_id)
            continue
        if not state.answered and user_id != state.opener_id:
            state.answered = True
            waited = at - state.opened_at
            if waited <= REPLY_WINDOW:
                replies[(_day(state.opened_at), durations.bucket(waited.total_seconds()))] += 1
        state.last_at = max(state.last_at, at)
    rows.upsert(
        RoomActivity,
        [{name: getattr(states[room], name) for name in _ACTIVITY_FIELDS} for room in rooms],
        conflict=["room_id"],
        update=_ACTIVITY_FIELDS[1:],
    )
    for (day, key), count in replies.items():
        _bump(DayCounter, {"day": day, "name": FIRST_REPLY, "key": key}, {"value": count})


def messages_stored_sync(stored: list[Stored]) -> None:
    """Count messages in one transaction: counters summed first. A DM's message counts for
    its day, its sender and the minute, never for a room (busiest rooms, time to first reply
    in rooms)."""
    in_rooms = [(room, user, at) for room, user, at, direct in stored if not direct]
    by_room: Counter[tuple[date, str]] = Counter((_day(at), room) for room, _, at in in_rooms)
    by_dm_day: Counter[date] = Counter(_day(at) for _, _, at, direct in stored if direct)
    by_user: Counter[tuple[date, str]] = Counter((_day(at), user) for _, user, at, _ in stored)
    by_minute: Counter[datetime] = Counter(at.replace(second=0, microsecond=0) for _, _, at, _ in stored)
    with transaction.atomic():
        for (day, room_id), count in by_room.items():
            _bump(DayCounter, {"day": day, "name": MESSAGES, "key": room_id}, {"value": count})
        for day, count in by_dm_day.items():
            _bump(DayCounter, {"day": day, "name": DM_MESSAGES, "key": ""}, {"value": count})
        for (day, user_id), count in by_user.items():
            _bump(UserDay, {"day": day, "user_id": user_id}, {"messages": count, "sockets": 0})
        for minute, count in by_minute.items():
            _bump(MinuteCounter, {"minute": minute}, {"messages": count})
        if in_rooms:
            _conversations(in_rooms)


def message_stored_sync(*, room_id: str, user_id: str, at: datetime, direct: bool = False) -> None:
    messages_stored_sync([(room_id, user_id, at, direct)])


def _guarded(what: str, fn: Any, /, **kwargs: Any) -> None:
    try:
        fn(**kwargs)
    except Exception:
        log.exception("analytics: %s not counted", what)


async def message_stored(*, room_id: str, user_id: str, at: datetime, direct: bool) -> None:
    """A new message was stored (not a retry): count it for its room (or the day's DMs, when
    `direct`: the room's flag), its sender and the minute.

    With ANALYTICS_FLUSH_SECONDS > 0 this only appends to memory (analytics.batch); else it
    writes at once, in its own transaction."""
    if settings.ANALYTICS_FLUSH_SECONDS > 0:
        batch.add(room_id=room_id, user_id=user_id, at=at, direct=direct)
        return
    await database_sync_to_async(_guarded)(
        "message", message_stored_sync, room_id=room_id, user_id=user_id, at=at, direct=direct
    )


def message_stored_here(*, room_id: str, user_id: str, at: datetime, direct: bool) -> None:
    """`message_stored` for a caller on the database thread, inside the transaction that
    stores the message (chat.services with an ORM store): written through, the count is part
    of that transaction, in a savepoint, so it costs no commit of its own and its failure
    loses only the count; batched, it is queued once that transaction commits. Never raises."""
    if settings.ANALYTICS_FLUSH_SECONDS > 0:
        transaction.on_commit(lambda: batch.add(room_id=room_id, user_id=user_id, at=at, direct=direct), robust=True)
        return
    # messages_stored_sync's atomic block is the savepoint: without it, a failed statement
    # would abort the message's transaction on PostgreSQL, and its COMMIT would roll back.
    _guarded("message", message_stored_sync, room_id=room_id, user_id=user_id, at=at, direct=direct)


def socket_opened_sync(*, connection_id: str, user_id: str, at: datetime) -> None:
    with transaction.atomic():
        # One upsert statement, written out: update_or_create's SELECT, then INSERT, is on
        # every socket's open, and bulk_create built the statement each time.
        rows.upsert(
            SocketSpan,
            [{"connection_id": connection_id, "user_id": user_id, "opened_at": at, "closed_at": None}],
            conflict=["connection_id"],
            update=["user_id", "opened_at", "closed_at"],
        )
        _bump(UserDay, {"day": _day(at), "user_id": user_id}, {"messages": 0, "sockets": 1})


def socket_opened_here(*, connection_id: str, user_id: str, at: datetime) -> None:
    """`socket_opened` for a caller already on the database thread: chat.services counts a
    socket in the same trip there that writes its connection row. Never raises."""
    live.ensure_publishing()  # this process now carries traffic: its delivery figures join the fleet's
    _guarded("socket open", socket_opened_sync, connection_id=connection_id, user_id=user_id, at=at)


def socket_refused_sync(*, connection_id: str, user_id: str, at: datetime) -> None:
    """Undo socket_opened_sync: chat.services counts a socket in the transaction that writes its
    row, before the socket quota may refuse it."""
    with transaction.atomic():
        if SocketSpan.objects.filter(connection_id=connection_id).delete()[0]:
            _bump(UserDay, {"day": _day(at), "user_id": user_id}, {"messages": 0, "sockets": -1})


def socket_refused_here(*, connection_id: str, user_id: str, at: datetime) -> None:
    """`socket_refused_sync` on the database thread. Never raises."""
    _guarded("socket refused", socket_refused_sync, connection_id=connection_id, user_id=user_id, at=at)


async def socket_opened(*, connection_id: str, user_id: str, at: datetime) -> None:
    """A socket opened: its user is active today, and its span feeds peak concurrency."""
    await database_sync_to_async(socket_opened_here)(connection_id=connection_id, user_id=user_id, at=at)


def sockets_closed_sync(*, connection_ids: list[str], at: datetime) -> None:
    SocketSpan.objects.filter(connection_id__in=connection_ids, closed_at__isnull=True).update(closed_at=at)


def sockets_closed_here(*, connection_ids: list[str], at: datetime) -> None:
    """`sockets_closed` for a caller already on the database thread: chat.services closes the
    spans in the same trip that deletes the sockets' rows. Never raises."""
    _guarded("socket close", sockets_closed_sync, connection_ids=connection_ids, at=at)


async def sockets_closed(*, connection_ids: list[str], at: datetime) -> None:
    """Sockets closed at `at`: their spans end (peak concurrency, the dashboard's live count)."""
    await database_sync_to_async(sockets_closed_here)(connection_ids=connection_ids, at=at)


# Moderation: called inside the moderation services' transactions, so a count commits (or
# rolls back) with the record it counts.


def report_opened(*, room_id: str, at: datetime) -> None:
    _bump(DayCounter, {"day": _day(at), "name": REPORTS_OPENED, "key": room_id}, {"value": 1})


def reports_resolved(*, opened: Iterable[datetime], at: datetime) -> None:
    """Reports opened at these times were closed (resolved or dismissed) at `at`."""
    times = list(opened)
    if not times:
        return
    _bump(DayCounter, {"day": _day(at), "name": REPORTS_RESOLVED, "key": ""}, {"value": len(times)})
    for opened_at in times:
        _duration(RESOLVE, day=_day(at), seconds=max(0.0, (at - opened_at).total_seconds()))


def moderation_action(*, action: str, at: datetime) -> None:
    _bump(DayCounter, {"day": _day(at), "name": MOD_ACTION, "key": action[:64]}, {"value": 1})
