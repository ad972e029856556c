"""Chat services: validate, write through the storage adapter, then broadcast.

Consumers, views, admin and management commands call these (and chat.moderation, written
the same way); none of them touches the store or the channel layer directly. The order is
always store, broadcast, then the caller acks: nothing is acknowledged or shown that is not
durably stored. Every storage call goes through one wrapper (`store_call`, `_store_call`:
timing, and `storage_unavailable` for a failing store); every room change goes out through
one helper (`room_change`, `room_change_sync`), which sends the room events a write stored
only once that write returned, or, inside an ORM transaction, once it committed. Reads
never write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from asgiref.sync import async_to_sync, sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import transaction

from accounts.identity import Identity
from analytics import services as analytics
from chat import attachments as chat_attachments
from chat import broadcast, connection_closes, events, fellows, metrics, protocol, quota
from chat.errors import ChatError, ErrorCode, StorageUnavailable
from chat.events import RoomEvent
from chat.fanout import RoomFanout, RoomMember, UserMember, room_fanout
from chat.moderation_models import Ban, Mute, SlowModeStamp
from chat.storage import get_store
from chat.storage.base import (
    AppendResult,
    ConnectionRecord,
    EventRecord,
    InstanceBeat,
    LogEntry,
    MessageRecord,
    NewMessage,
    ReplyRef,
    Room,
    RoomNotFound,
    on_membership_change,
)
from chatsite.db.side_by_side import side_by_side

log = logging.getLogger(__name__)

T = TypeVar("T")

# What follows from a message's text and its storing, plugged in by the unread app at start
# (unread.apps): resolve its @mentions before it is stored; notify after (never awaited by
# the ack). chat imports no app above it, so these stay None without that app.
resolve_mentions: Callable[..., Awaitable[tuple[str, ...]]] | None = None
after_message: Callable[..., None] | None = None


def utcnow() -> datetime:
    return datetime.now(UTC)


def _guarded(fn: Callable[..., T], kwargs: dict[str, Any]) -> T:
    """Call the store; any failure but a domain answer becomes StorageUnavailable (logged)."""
    try:
        return fn(**kwargs)
    except (ChatError, RoomNotFound):
        raise
    except Exception as exc:
        log.exception("storage call %s failed", getattr(fn, "__name__", fn))
        raise StorageUnavailable() from exc


def store_call(fn: Callable[..., T], /, **kwargs: Any) -> T:
    """Run one storage call in this thread (synchronous services: moderation, views,
    commands), timed, failures as StorageUnavailable: the same rules as `_store_call`."""
    with metrics.store_timer(getattr(fn, "__name__", "call")):
        return _guarded(fn, kwargs)


async def _store_call(fn: Callable[..., T], /, **kwargs: Any) -> T:
    """Run one storage call off the event loop; failures become StorageUnavailable."""
    return await _run_store_call(fn, kwargs, beside_others=False)


async def _opening_store_call(fn: Callable[..., T], /, **kwargs: Any) -> T:
    """`_store_call` for a socket's opening reads and writes, which touch only that socket's
    and its user's rows: on PostgreSQL they run beside other sockets' (chatsite.db.side_by_side)."""
    return await _run_store_call(fn, kwargs, beside_others=True)


# The two ways off the event loop, each made once: building asgiref's wrapper (update_wrapper,
# coroutine checks) on every call was 8 % of a store call's trip (docs/performance.md).
_on_sync_thread: Callable[..., Awaitable[Any]] = database_sync_to_async(_guarded)
_on_any_thread: Callable[..., Awaitable[Any]] = sync_to_async(_guarded, thread_sensitive=False)


async def _run_store_call(fn: Callable[..., T], kwargs: dict[str, Any], *, beside_others: bool) -> T:
    store = get_store()
    # An ORM store runs on Django's sync thread through database_sync_to_async, which closes
    # stale database connections around the call (the consumer does not do it per frame).
    if not store.thread_sensitive:
        run: Callable[..., Awaitable[T]] = _on_any_thread
    elif beside_others:
        run = side_by_side(_guarded)
    else:
        run = _on_sync_thread
    # An ORM call that waited too long for the sync thread is refused unread (_queue_bounded).
    target = _queue_bounded(fn) if store.thread_sensitive else fn
    with metrics.store_timer(getattr(fn, "__name__", "call")):
        return await run(target, kwargs)


# Room events: the one way out ---------------------------------------------------------------

# Told of every stored room change, after the store returned (the async path) or the ORM
# transaction committed (the sync path), with the stored entries: the search index
# (search.indexer) registers here, so chat imports nothing of search. A listener must return
# at once (it queues its work) and its failure never fails the change.
_stored_listeners: list[Callable[[list[LogEntry]], None]] = []


def on_room_change_stored(listener: Callable[[list[LogEntry]], None]) -> None:
    if listener not in _stored_listeners:
        _stored_listeners.append(listener)


def _tell_stored(entries: list[LogEntry]) -> None:
    for listener in _stored_listeners:
        try:
            listener(entries)
        except Exception:
            log.exception("room-change listener %r failed", listener)


async def _send_room_events(entries: Iterable[LogEntry]) -> None:
    """Queue the events in their rooms' publishers (chat.broadcast.room_event_soon): on the
    server's loop when the sync caller runs under one (admin under daphne, the consumer's
    database thread), else on the process's publish thread, which outlives async_to_sync's
    loop. Either way the caller does not wait for the channel layer."""
    for entry in entries:
        broadcast.room_event_soon(protocol.room_event(entry))


class _Changed(Protocol):
    """A store change's result that carries the room event it wrote (RemoveResult,
    ChangeResult, RoomUpdate)."""

    @property
    def event(self) -> EventRecord | None: ...


def event_of(result: _Changed | None) -> list[LogEntry]:
    """The room event a change wrote, as `room_change`'s `stored` takes it: none when the
    change did nothing (the same value again, a tombstone deleted) or found no message."""
    return [] if result is None or result.event is None else [result.event]


async def room_change(
    fn: Callable[..., T],
    /,
    *,
    stored: Callable[[T], Iterable[LogEntry]],
    finish: Callable[[T], Awaitable[None]] | None = None,
    **kwargs: Any,
) -> T:
    """Make one room change with a store call, then send the room events it stored
    (without waiting for the channel layer: chat.broadcast.room_event_soon).

    The only way an async service sends a room event: `stored` picks the events out of
    the call's result, so there is no event to send before the write returned, and none
    that was not written. (Zulip's send_event_on_commit, for a store call.) `finish` is
    the rest of the write, made before the events go out: a receiver acts on an event at
    once (its browser loads a message's files as the message arrives), so what the event
    names must already be in place.
    """
    result = await _store_call(fn, **kwargs)
    if finish is not None:
        await finish(result)
    entries = list(stored(result))
    for entry in entries:
        # Queued in the room's publisher: the caller's ack never waits for the layer (issue 24).
        broadcast.room_event_soon(protocol.room_event(entry))
    if entries:
        _tell_stored(entries)
    return result


def room_change_sync(fn: Callable[..., T], /, *, stored: Callable[[T], Iterable[LogEntry]], **kwargs: Any) -> T:
    """`room_change` for synchronous services (moderation, commands): the events go out
    when the caller's ORM transaction commits (at once outside one), so a change made with
    its audit record in one transaction is never shown if that transaction rolls back."""
    result = store_call(fn, **kwargs)
    entries = list(stored(result))
    if entries:
        transaction.on_commit(lambda: async_to_sync(_send_room_events)(entries), robust=True)
        transaction.on_commit(lambda: _tell_stored(entries), robust=True)
    return result


def _queue_bounded(fn: Callable[..., T]) -> Callable[..., T]:
    """`fn`, refused without touching the database if it waited for the sync thread longer
    than a lock wait may take (DATABASE_LOCK_TIMEOUT).

    The ORM's calls queue up on one thread per process: while a frozen writer holds the
    store's lock, each call waits out its own lock timeout behind the others, so the tenth
    sender's answer came after ten bounds, past any client's patience (issue 24). A call
    that has already waited a bound is answered storage_unavailable at once; none waits
    more than about two bounds.
    """
    queued_at = time.monotonic()

    def call(**kwargs: Any) -> T:
        if time.monotonic() - queued_at > settings.DATABASE_LOCK_TIMEOUT:
            raise StorageUnavailable("storage is busy, retry shortly")
        return fn(**kwargs)

    return call


# Rooms ----------------------------------------------------------------------------------


def room_create(*, room_id: str, name: str | None = None, created_by: str | None = None) -> Room:
    """Create a room (or return the existing one). Synchronous: for views and commands."""
    room_id = protocol.validate_room_id(room_id)
    return store_call(
        get_store().ensure_room, room_id=room_id, name=(name or room_id)[:100], created_by=created_by, now=utcnow()
    )


def room_list(*, identity: Identity | None = None) -> list[Room]:
    """The rooms `identity` may see, by room id: archived rooms only for moderators, private
    rooms for their members and moderators, DMs for their members only. Without an identity,
    public open rooms only.

    Built from key and index queries, never a scan of every room (issue 15): the public rooms,
    the private ones for a moderator, and the rooms of the user's memberships by key. On
    DynamoDB the listings are indexes, so a room made a moment ago may be missing for that
    moment (the room list's live events bring it)."""
    store = get_store()
    rooms = {room.room_id: room for room in store_call(store.public_rooms)}
    if identity is not None and identity.is_moderator:
        rooms |= {room.room_id: room for room in store_call(store.private_rooms)}
    if identity is not None:
        mine = {m.room_id for m in store_call(store.rooms_of_user, user_id=identity.user_id)} - rooms.keys()
        rooms |= {room.room_id: room for room in store_call(store.get_rooms, room_ids=sorted(mine))}
    ordered = sorted(rooms.values(), key=lambda room: room.room_id)
    if protocol.DEFAULT_ROOM not in rooms:
        ordered.insert(0, _default_room())
    return [room for room in ordered if room_visible(room=room, identity=identity)]


async def room_fellows(*, user_id: str) -> list[str]:
    """The users who share a room membership with `user_id` (presence's audience): the
    members of every room they are a member of, them excepted. A room of more than
    CHAT_PRESENCE_ROOM_LIMIT members (a big public room) is left out: its presence is read
    with the member list, never pushed to a crowd. Index and key queries, never a scan."""
    known = fellows.cache.known(user_id=user_id, per_room=settings.CHAT_PRESENCE_ROOM_LIMIT)
    if known is not None:
        return known  # no trip off the event loop
    return await _store_call(_room_fellows, user_id=user_id, per_room=settings.CHAT_PRESENCE_ROOM_LIMIT)


def _room_fellows(*, user_id: str, per_room: int) -> list[str]:
    # Kept per process and forgotten on every membership change (chat.fellows): a status
    # change used to cost a UserRoomsIndex query and one members query per room, each time.
    return fellows.cache.fellows(get_store(), user_id=user_id, per_room=per_room)


def _membership_changed(room_id: str, user_id: str) -> None:
    """A store added or removed a membership: once it is committed, this process forgets
    who shares the room, and every other process is told to (chat.fellows)."""

    def tell() -> None:
        fellows.cache.forget(room_id=room_id, user_id=user_id)
        try:
            async_to_sync(broadcast.membership_changed)(room_id, user_id)
        except Exception:
            log.warning("other processes not told of %s's membership of %s", user_id, room_id, exc_info=True)

    transaction.on_commit(tell, robust=True)


on_membership_change(_membership_changed)


def sidebar_rooms(*, identity: Identity, open_room: Room | None = None) -> list[Room]:
    """The sidebar as a page is first drawn, by issue 15's rule (the React app's too, through
    static/chat/core/people.js `sidebarRooms`): the rooms and DMs `identity` belongs to, then
    the default room (everyone reads it) and the open room when not a member of them. Other
    public rooms are found through "Browse rooms". The page's script then orders the user's
    rooms by last activity and keeps the list live. Key and index queries, never a scan."""
    store = get_store()
    member_of = [m.room_id for m in store_call(store.rooms_of_user, user_id=identity.user_id)]
    rooms = sorted(store_call(store.get_rooms, room_ids=member_of), key=lambda r: r.room_id)
    rooms = [r for r in rooms if identity.is_moderator or not r.archived]
    listed = {r.room_id for r in rooms}
    for extra in (room_get(protocol.DEFAULT_ROOM), open_room):
        if extra is not None and extra.room_id not in listed and not extra.direct:
            rooms.append(extra)
            listed.add(extra.room_id)
    return rooms


def public_room_list() -> list[Room]:
    """Every public room (neither private nor a DM; archived ones too), the default room
    among them: a key or index query on either backend, for browsing."""
    rooms = store_call(get_store().public_rooms)
    if not any(r.room_id == protocol.DEFAULT_ROOM for r in rooms):
        rooms.insert(0, _default_room())
    return rooms


# The default room exists from the start, whichever backend holds it: until its first
# write stores it (`room_stored`), a read shows it as an empty room, and writes nothing.
_DEFAULT_ROOM_CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def _default_room() -> Room:
    return Room(
        room_id=protocol.DEFAULT_ROOM, name="General", created_at=_DEFAULT_ROOM_CREATED, created_by=None, last_seq=0
    )


def room_stored(*, room_id: str) -> Room | None:
    """The room for a write: the default room is stored now if it is not yet. Synchronous."""
    if room_id == protocol.DEFAULT_ROOM:
        return room_create(room_id=room_id, name="General")
    return room_get(room_id)


def room_visible(*, room: Room, identity: Identity | None) -> bool:
    """Whether `identity` may see the room in a list. Synchronous: for views."""
    if identity is not None and identity.is_moderator and not room.direct:
        return True
    if room.archived:
        return False
    return not room.private or (
        identity is not None and store_call(get_store().is_member, room_id=room.room_id, user_id=identity.user_id)
    )


def room_readable(*, room: Room, identity: Identity | None) -> bool:
    """Whether `identity` may read the room (archived rooms stay readable). Synchronous."""
    # Moderators read every private room but DMs, which they see only through reports.
    if not room.private or (identity is not None and identity.is_moderator and not room.direct):
        return True
    return identity is not None and store_call(get_store().is_member, room_id=room.room_id, user_id=identity.user_id)


def room_get(room_id: str) -> Room | None:
    """A room by id, or None. Synchronous: for views and commands."""
    room = store_call(get_store().get_room, room_id=room_id)
    if room is None and room_id == protocol.DEFAULT_ROOM:
        return _default_room()
    return room


async def _require_room(room_id: str) -> Room:
    room = await _store_call(get_store().get_room, room_id=room_id)
    if room is None and room_id == protocol.DEFAULT_ROOM:
        room = _default_room()
    if room is None:
        raise ChatError(ErrorCode.UNKNOWN_ROOM, f"room {room_id!r} does not exist", room_id=room_id)
    return room


async def _readable_room(room_id: str, identity: Identity) -> Room:
    """The room, if `identity` may read it: a private room's messages, history and
    membership never reach a non-member. One store call (a trip off the event loop)."""
    return await _store_call(_room_readable_now, room_id=room_id, identity=identity)


def _room_readable_now(*, room_id: str, identity: Identity) -> Room:
    """_readable_room in this thread: the room and, for a private one, the membership."""
    return _readable(get_store().get_room(room_id), room_id=room_id, identity=identity)


def rooms_readable_now(readers: list[tuple[str, Identity]]) -> list[Room | ChatError]:
    """_room_readable_now for many (room id, reader) pairs in this thread: every room in
    one read, a private room's membership per pair; the room, or the error, for each."""
    rooms = {room.room_id: room for room in get_store().get_rooms([room_id for room_id, _ in readers])}
    found: list[Room | ChatError] = []
    for room_id, identity in readers:
        try:
            found.append(_readable(rooms.get(room_id), room_id=room_id, identity=identity))
        except ChatError as error:
            found.append(error)
    return found


def _readable(room: Room | None, *, room_id: str, identity: Identity) -> Room:
    if room is None and room_id == protocol.DEFAULT_ROOM:
        room = _default_room()
    if room is None:
        raise ChatError(ErrorCode.UNKNOWN_ROOM, f"room {room_id!r} does not exist", room_id=room_id)
    if room.private and (room.direct or not identity.is_moderator):
        if not get_store().is_member(room_id=room_id, user_id=identity.user_id):
            # The very answer for a room that does not exist: a non-member must not learn
            # that a private room of this id exists (docs/auth.md).
            raise ChatError(ErrorCode.UNKNOWN_ROOM, f"room {room_id!r} does not exist", room_id=room_id)
    return room


async def room_read(*, room_id: str) -> Room:
    """The room and its settings (unknown_room when there is none): for checks a socket
    joined to it makes (chat.typing_service)."""
    return await _require_room(room_id)


async def room_access(*, room_id: str, identity: Identity) -> bool:
    """Whether `identity` may still read the room (False also when it is gone)."""
    try:
        await _readable_room(room_id, identity)
    except ChatError as error:
        if error.code == ErrorCode.UNKNOWN_ROOM:
            return False
        raise
    return True


def _check_may_post(*, room: Room, identity: Identity, now: datetime) -> None:
    """Raise the ChatError saying why `identity` may not post in `room` now (archived,
    read-only, muted, slow mode); an allowed post in slow mode is recorded."""
    if room.archived:
        raise ChatError(
            ErrorCode.ROOM_ARCHIVED, "this room is archived: it takes no new messages", room_id=room.room_id
        )
    if room.read_only and not identity.is_moderator:
        raise ChatError(ErrorCode.READ_ONLY, "only moderators post in this room", room_id=room.room_id)
    muted_until = Mute.until(user_id=identity.user_id, room_id=room.room_id, now=now)
    if muted_until is not None:
        seconds = max(1, round((muted_until - now).total_seconds()))
        raise ChatError(
            ErrorCode.MUTED,
            f"you are muted until {protocol.format_timestamp(muted_until)}",
            room_id=room.room_id,
            retry_after=seconds,
        )
    if room.slow_mode_seconds and not identity.is_moderator:
        wait = SlowModeStamp.take(
            room_id=room.room_id, user_id=identity.user_id, now=now, seconds=room.slow_mode_seconds
        )
        if wait is not None:
            raise ChatError(
                ErrorCode.SLOW_MODE,
                f"slow mode: one message every {room.slow_mode_seconds} s",
                room_id=room.room_id,
                retry_after=round(wait, 1),
            )


def _slow_mode_give_back(*, room: Room, identity: Identity, now: datetime) -> None:
    if room.slow_mode_seconds and not identity.is_moderator:
        SlowModeStamp.give_back(room_id=room.room_id, user_id=identity.user_id, now=now)


def _room_to_post(*, room_id: str, identity: Identity, now: datetime) -> Room:
    """The room, if `identity` may read it and post in it now (archived, read-only, muted,
    slow mode: docs/moderation.md; a slow-mode post is recorded), else the ChatError. In
    this thread: the moderation records are Django's, like an ORM store's rows."""
    room = _room_readable_now(room_id=room_id, identity=identity)
    _check_may_post(room=room, identity=identity, now=now)
    return room


async def _room_to_post_apart(*, room_id: str, identity: Identity, now: datetime) -> Room:
    """`_room_to_post` as a trip of its own, for a send that needs the room before it can be
    stored (mentions, attachments), or a store that is not called from Django's thread
    (DynamoDB: its room read in the pool, the checks on Django's thread, two trips)."""
    if get_store().thread_sensitive:
        return await _store_call(_room_to_post, room_id=room_id, identity=identity, now=now)
    room = await _readable_room(room_id, identity)
    await database_sync_to_async(_check_may_post)(room=room, identity=identity, now=now)
    return room


@dataclass(frozen=True, slots=True)
class _Posted:
    room: Room
    result: AppendResult


def _post_stored(*, room_id: str, identity: Identity, now: datetime, new: NewMessage, room: Room | None) -> _Posted:
    """Store a message with an ORM store in one transaction, one commit, on Django's thread.

    `room` None: the room is read and the sender checked (`_room_to_post`) in the same
    transaction, before the append. That is the whole send in one trip off the event loop,
    and the checks see every mute and setting committed before it: on SQLite the transaction
    holds the write lock from its start (`transaction_mode` IMMEDIATE), so a mute commits
    either before the check (the post is refused) or after the message. A slow-mode post
    taken here is undone with the transaction when the append fails.

    The dashboard's count of a new message (written through: ANALYTICS_FLUSH_SECONDS=0)
    commits with it, in a savepoint whose failure loses only the count; a retry of a stored
    message is no new post, so its slow-mode stamp is given back.
    """
    with transaction.atomic():
        if room is None:
            room = _room_to_post(room_id=room_id, identity=identity, now=now)
            # The read proposes the seq (chat.records.NewMessage.last_seq), as a read apart does.
            new = replace(new, last_seq=room.last_seq)
        store = get_store()
        if room.last_seq == 0 and room_id == protocol.DEFAULT_ROOM:
            store.ensure_room(room_id=room_id, name="General", created_by=None, now=now)  # its first write stores it
        with metrics.store_timer("append_message"):
            result = store.append_message(new)
        if result.created:
            analytics.message_stored_here(
                room_id=room_id, user_id=identity.user_id, at=result.message.timestamp, direct=room.direct
            )
        else:
            _slow_mode_give_back(room=room, identity=identity, now=now)
    return _Posted(room, result)


# Messages -------------------------------------------------------------------------------


async def message_send(
    *,
    identity: Identity,
    connection_id: str,
    room_id: str,
    text: str,
    client_message_id: str | None,
    reply_to: ReplyRef | None = None,
    attachments: tuple[str, ...] = (),
) -> MessageRecord:
    """Store a message exactly once, broadcast it, and return the record to ack.

    A retry with a clientMessageId already stored returns the original record and stores
    nothing. `reply_to`: what it quotes, checked by chat.message_changes.message_reply.
    Attachments (upload ids) are claimed once the sender may post here, and only then: a
    refused post claims none; a failed store gives them back (chat.attachments).

    With an ORM store a plain message (no attachment, no @) is one trip off the event loop:
    the room, the checks, the append and its count in one transaction (`_post_stored`).
    Mentions and attachments need the room and async work (presence, uploads) before the
    write, so those sends check in a trip of their own first.
    """
    now = utcnow()
    local = get_store().thread_sensitive
    new = NewMessage(
        room_id=room_id,
        user_id=identity.user_id,
        username=identity.username,
        text=text,
        connection_id=connection_id,
        client_message_id=client_message_id,
        timestamp=now,
        ttl_seconds=settings.CHAT_MESSAGE_TTL_SECONDS,
        reply_to=reply_to,
    )
    room: Room | None = None
    if attachments or not local or (resolve_mentions is not None and "@" in text):
        room = await _room_to_post_apart(room_id=room_id, identity=identity, now=now)
        mentioned = await resolve_mentions(room=room, identity=identity, text=text) if resolve_mentions else ()
        files = await _claim_attachments(identity, room, now, attachments, client_message_id)
        # The read above proposes the seq (chat.records.NewMessage.last_seq): no second read.
        new = replace(new, mentions=mentioned, attachments=files, last_seq=room.last_seq)
    checked = room

    async def bind_files(message: MessageRecord) -> None:
        # Before the broadcast: a receiver's browser asks for the files as the message arrives.
        uploads = chat_attachments.provider()
        assert uploads is not None  # _claim_attachments refused the message otherwise
        await uploads.bind(upload_ids=attachments, room_id=room_id, message_id=message.message_id, ttl=message.ttl)

    try:
        if local:
            posted = await room_change(
                _post_stored,
                room_id=room_id,
                identity=identity,
                now=now,
                new=new,
                room=room,
                stored=lambda p: [p.result.message],
                finish=(lambda p: bind_files(p.result.message)) if attachments else None,
            )
            room, result = posted.room, posted.result
        else:
            assert room is not None
            if room.last_seq == 0 and room_id == protocol.DEFAULT_ROOM:
                # Its first write stores it.
                await _store_call(get_store().ensure_room, room_id=room_id, name="General", created_by=None, now=now)
            # A retry of a stored clientMessageId is broadcast again: receivers drop seqs they
            # have, and the first attempt may have died between the store and the broadcast.
            result = await room_change(
                get_store().append_message,
                new=new,
                stored=lambda r: [r.message],
                finish=(lambda r: bind_files(r.message)) if attachments else None,
            )
    except (RoomNotFound, ChatError) as error:
        if checked is not None:
            # Checked in a trip of its own: the slow-mode wait does not count this attempt.
            await database_sync_to_async(_slow_mode_give_back)(room=checked, identity=identity, now=now)
        await _release_attachments(attachments)
        if isinstance(error, RoomNotFound):
            raise ChatError(ErrorCode.UNKNOWN_ROOM, f"room {room_id!r} does not exist", room_id=room_id) from None
        raise
    if not local and not result.created:
        # A retry of a message already stored is no new post (_post_stored gives it back itself).
        await database_sync_to_async(_slow_mode_give_back)(room=room, identity=identity, now=now)
    metrics.record_stored(created=result.created)
    if result.created:
        if not local:
            # After the broadcast: counting delays the sender's ack, never the delivery.
            await analytics.message_stored(
                room_id=room_id, user_id=identity.user_id, at=result.message.timestamp, direct=room.direct
            )
        if after_message is not None:
            after_message(message=result.message, room=room)
    return result.message


async def _claim_attachments(
    identity: Identity, room: Room, now: datetime, upload_ids: tuple[str, ...], client_message_id: str | None
) -> tuple[dict[str, Any], ...]:
    """The uploads' records for the message, claimed (issue 18); () for none."""
    if not upload_ids:
        return ()
    uploads = chat_attachments.provider()
    try:
        if uploads is None:
            raise ChatError(ErrorCode.UNKNOWN_UPLOAD, "file sharing is off on this server")
        return await uploads.claim(
            identity=identity, room_id=room.room_id, upload_ids=upload_ids, client_message_id=client_message_id
        )
    except ChatError as error:
        await database_sync_to_async(_slow_mode_give_back)(room=room, identity=identity, now=now)
        error.room_id = room.room_id
        raise


async def _release_attachments(upload_ids: tuple[str, ...]) -> None:
    uploads = chat_attachments.provider()
    if upload_ids and uploads is not None:
        await uploads.release(upload_ids=upload_ids)


async def message_get(*, room_id: str, message_id: str, identity: Identity) -> MessageRecord:
    """A live message of a room `identity` may read; unknown_message when there is none."""
    await _readable_room(room_id, identity)
    message = await _store_call(get_store().get_message, room_id=room_id, message_id=message_id, now=utcnow())
    if message is None:
        raise ChatError(ErrorCode.UNKNOWN_MESSAGE, "no such message in this room", room_id=room_id)
    return message


@dataclass(frozen=True, slots=True)
class JoinResult:
    room: Room
    last_seq: int
    # v1: the messages after the client's lastSeq in their current state (or the latest page).
    messages: list[MessageRecord]
    recovered: bool
    # v1: (messageId, seq) of messages at or below the client's lastSeq removed since: it may
    # have shown them before they were removed (only for a recovered resume).
    removed: list[tuple[str, int]] = field(default_factory=list)
    # v2: every room event after lastSeq, in seq order (only for a recovered resume).
    events: list[RoomEvent] | None = None


async def room_join(
    *, room_id: str, member: RoomMember, last_seq: int | None, identity: Identity, already_joined: bool = False
) -> JoinResult:
    """Subscribe first, then read: no message can fall between the replay and the live feed.

    A failed join undoes its subscription, except for a socket that was joined already (a
    rejoin to fill a gap): unsubscribing it would leave it silently deaf to the room.
    """
    fanout = _fanout()
    if not fanout.subscribed(room_id):
        # Refused before the process subscribes to a room it may not read. A room it carries
        # already is joined at no cost, and the read below checks access: a trip less for
        # every socket after the first (issue 22).
        await _readable_room(room_id, identity)
    await fanout.join(room_id, member)
    try:
        # Re-read after subscribing, and the replay from there: one store call (a trip off the event loop).
        result = await _opening_store_call(_join_read, room_id=room_id, identity=identity, last_seq=last_seq)
        # The process's gaps in this room are measured from here (issue 24.3), not from
        # whatever old seq reaches it first (a seq that arrived meanwhile counts: delivery.baseline).
        fanout.baseline(room_id, result.room.last_seq)
        return result
    except Exception:
        if not already_joined:
            await fanout.leave(room_id, member)
        raise


def _join_read(*, room_id: str, identity: Identity, last_seq: int | None) -> JoinResult:
    return _replay(_room_readable_now(room_id=room_id, identity=identity), last_seq)


def _replay(room: Room, last_seq: int | None) -> JoinResult:
    """What a socket joining `room` (as just read) is sent. In the store call's thread."""
    now = utcnow()
    store = get_store()
    if last_seq is not None and 0 <= room.last_seq - last_seq <= settings.CHAT_REPLAY_CAP:
        # Every room event since lastSeq: messages (in their current state) and the rest.
        log_entries = (
            store.events_after(room_id=room.room_id, after_seq=last_seq, limit=room.last_seq - last_seq, now=now)
            if room.last_seq > last_seq
            else []
        )
        if [e.seq for e in log_entries] == list(range(last_seq + 1, room.last_seq + 1)):
            return JoinResult(
                room=room,
                last_seq=room.last_seq,
                messages=[e for e in log_entries if isinstance(e, MessageRecord)],
                recovered=True,
                removed=[
                    (e.data["messageId"], e.data["messageSeq"])
                    for e in log_entries
                    if isinstance(e, EventRecord)
                    and e.type == events.MESSAGE_REMOVED
                    and e.data["messageSeq"] <= last_seq
                ],
                events=[protocol.room_event(e) for e in log_entries],
            )
        # A hole (an expired entry): the client cannot be brought up to date event by event.
    latest = store.messages_before(
        room_id=room.room_id, before_seq=room.last_seq + 1, limit=settings.CHAT_HISTORY_PAGE, now=now
    )
    return JoinResult(room=room, last_seq=room.last_seq, messages=latest, recovered=last_seq is None)


async def room_leave(*, room_id: str, member: RoomMember) -> None:
    await _fanout().leave(room_id, member)


async def events_missed(*, room_id: str, after_seq: int, up_to_seq: int) -> list[RoomEvent]:
    """Read the room events a socket missed between two seqs (a lost broadcast): messages in
    their current state, and every other event, in seq order, each as the frame a live
    socket receives. At most the replay cap: delivery never asks for more (chat.delivery
    resyncs past it), and a caller that did would get the first CHAT_REPLAY_CAP only."""
    entries = await _store_call(
        get_store().events_after,
        room_id=room_id,
        after_seq=after_seq,
        limit=min(max(0, up_to_seq - after_seq), settings.CHAT_REPLAY_CAP),
        now=utcnow(),
    )
    return [protocol.room_event(e) for e in entries]


async def _read_gap(room_id: str, after_seq: int, up_to_seq: int) -> list[RoomEvent]:
    """The gap reader of the fan-out (chat.fanout) and of each socket: `events_missed`."""
    return await events_missed(room_id=room_id, after_seq=after_seq, up_to_seq=up_to_seq)


def _fanout() -> RoomFanout:
    """This process's fan-out, handed the reader it repairs gaps with."""
    return room_fanout(read_gap=_read_gap)


@dataclass(frozen=True, slots=True)
class HistoryPage:
    messages: list[MessageRecord]
    has_more: bool


async def room_history(*, room_id: str, before_seq: int | None, limit: int | None, identity: Identity) -> HistoryPage:
    await _readable_room(room_id, identity)
    size = min(limit or settings.CHAT_HISTORY_PAGE, settings.CHAT_HISTORY_MAX_PAGE)
    # One extra row tells whether there is more.
    rows = await _store_call(
        get_store().messages_before, room_id=room_id, before_seq=before_seq, limit=size + 1, now=utcnow()
    )
    return HistoryPage(messages=rows[-size:], has_more=len(rows) > size)


# Connections ----------------------------------------------------------------------------


def instance_id() -> str:
    return settings.CHAT_INSTANCE_ID or _PROCESS_INSTANCE_ID


_PROCESS_INSTANCE_ID = f"proc-{uuid.uuid4().hex[:12]}"


class Banned(Exception):
    """The user is banned now: their socket gets `notice` (the `banned` frame: reason, until)
    and closes with 4403. No connection row was written."""

    def __init__(self, notice: dict[str, Any]) -> None:
        super().__init__("banned")
        self.notice = notice


async def connection_open(*, identity: Identity) -> ConnectionRecord:
    """Admit a socket: refuse a banned user (Banned), write its connection row, hold its user
    to their socket quota (QuotaExceeded), count it. The caller is in its user's group
    already, so a ban that lands after the check still reaches the socket.

    A local store does all of it in one trip off the event loop (Django's sync thread; on
    PostgreSQL one of chatsite.db.side_by_side's): each trip costs a thread switch and a
    wake-up of the event loop, and an open made four of them (issue 22).
    DynamoDB is not called from that thread, so there the ban (a database row) is read first.
    """
    now = utcnow()
    record = ConnectionRecord(
        connection_id=uuid.uuid4().hex,
        user_id=identity.user_id,
        username=identity.username,
        connected_at=now,
        ttl=int(now.timestamp()) + settings.CHAT_CONNECTION_TTL_SECONDS,
        instance_id=instance_id(),
    )
    # In a task of its own: a socket cancelled meanwhile deletes its row only once the
    # admission is done with it.
    admitted = asyncio.ensure_future(_admit(record))
    try:
        notice = await asyncio.shield(admitted)
    except quota.QuotaExceeded:
        await connection_close(connection_id=record.connection_id)
        raise
    except asyncio.CancelledError:
        # daphne cancels every socket's application on SIGTERM; one cancelled here has not
        # learned its row's id, so nobody else would delete the row (an open socket on the
        # dashboard until its ttl). The admission runs on in its thread, beside the closes
        # on PostgreSQL (chatsite.db.side_by_side): the delete waits for it, else it could
        # come first and leave the row behind.
        await asyncio.shield(_close_when_done(admitted, record.connection_id))
        raise
    if notice is not None:
        raise Banned(notice)
    return record


async def _admit(record: ConnectionRecord) -> dict[str, Any] | None:
    if get_store().thread_sensitive:
        return await _opening_store_call(_connection_admit, record=record)
    notice: dict[str, Any] | None = await database_sync_to_async(_ban_notice)(record.user_id)
    if notice is None:
        await _store_call(_connection_save, record=record)
        await analytics.socket_opened(
            connection_id=record.connection_id, user_id=record.user_id, at=record.connected_at
        )
    return notice


async def _close_when_done(admitted: asyncio.Future[Any], connection_id: str) -> None:
    with contextlib.suppress(Exception):
        await admitted
    await connection_close(connection_id=connection_id)


def _connection_admit(*, record: ConnectionRecord) -> dict[str, Any] | None:
    """connection_open on the sync thread (a local store): the ban as the database has it
    now, then the row, the quota and the counts. The `banned` frame, with no row written, if
    the user is banned."""
    notice = _ban_notice(record.user_id)
    if notice is not None:
        return notice
    # The row and the day's counts in one transaction: one commit (a sync to disk) where there
    # were two. The row is committed before the quota counts it, as in _connection_save.
    with transaction.atomic():
        get_store().save_connection(record=record)
        analytics.socket_opened_here(connection_id=record.connection_id, user_id=record.user_id, at=record.connected_at)
    try:
        _check_socket_quota(record=record)
    except quota.QuotaExceeded:
        # A socket the quota refused is not counted.
        analytics.socket_refused_here(
            connection_id=record.connection_id, user_id=record.user_id, at=record.connected_at
        )
        raise
    _warm_fellows(record.user_id)
    return None


def _connection_save(*, record: ConnectionRecord) -> None:
    """The row, committed before the quota counts it: two processes opening the same user's
    sockets at once each see the other's row (at worst both refuse; never both exceed)."""
    get_store().save_connection(record=record)
    _check_socket_quota(record=record)
    _warm_fellows(record.user_id)


def _warm_fellows(user_id: str) -> None:
    """Read who shares a room with the user into the process's cache (chat.fellows) while in
    the store's thread: the socket's presence, announced next on the event loop, then finds
    its audience there and needs no trip of its own (chat.presence.announce). Never fails
    the open."""
    try:
        _room_fellows(user_id=user_id, per_room=settings.CHAT_PRESENCE_ROOM_LIMIT)
    except Exception:
        log.warning("presence audience of %s not read ahead", user_id, exc_info=True)


def _check_socket_quota(*, record: ConnectionRecord) -> None:
    if settings.CHAT_MAX_SOCKETS_PER_USER <= 0:
        return
    mine = get_store().connections_for_user(user_id=record.user_id, now=utcnow())
    if record.connection_id not in {c.connection_id for c in mine}:
        mine.append(record)  # a store that does not read its own write yet still counts it
    quota.sockets_open(connection_id=record.connection_id, connections=mine)


async def connection_close(*, connection_id: str) -> None:
    """Delete a closed socket's row and close its analytics span: with the closes around it,
    in one trip (chat.connection_closes), answered after that trip."""
    await connection_closes.close_queue(_close_rows).close(connection_id, at=utcnow())


async def _close_rows(connection_ids: list[str], at: datetime) -> None:
    """One trip of chat.connection_closes: the rows in one statement and the spans, on a local
    store in one trip to the sync thread. A row not deleted expires by its ttl (nothing else
    depends on it being gone now); the spans are closed either way."""
    store = get_store()
    spans_closed = deleted = False
    try:
        if store.thread_sensitive:
            deleted = await _store_call(_rows_closed_here, connection_ids=connection_ids, at=at)
            spans_closed = True
        else:
            await _store_call(store.delete_connections, connection_ids=connection_ids)
            deleted = True
    except StorageUnavailable:
        pass  # DynamoDB failed (logged), or the sync thread refused the trip unread (_queue_bounded)
    if not deleted:
        log.warning("%d connection rows left to expire (%s, ...)", len(connection_ids), connection_ids[0])
    if not spans_closed:
        await analytics.sockets_closed(connection_ids=connection_ids, at=at)


def _rows_closed_here(*, connection_ids: list[str], at: datetime) -> bool:
    """_close_rows on the sync thread: whether the rows were deleted; the spans closed anyway."""
    try:
        get_store().delete_connections(connection_ids)
        deleted = True
    except Exception:
        log.exception("deleting %d connection rows failed", len(connection_ids))
        deleted = False
    analytics.sockets_closed_here(connection_ids=connection_ids, at=at)
    return deleted


def _refresh_connections(*, connection_ids: list[str], ttl: int) -> None:
    store = get_store()
    for connection_id in connection_ids:
        store.refresh_connection(connection_id=connection_id, ttl=ttl)


# Connection rows refreshed per store call by a heartbeat (see connections_heartbeat).
HEARTBEAT_SLICE = 50


async def connections_heartbeat(*, connection_ids: list[str], ttl: int | None = None) -> int:
    """Push the ttl of these connection rows forward (to `ttl`, by default a full
    CHAT_CONNECTION_TTL_SECONDS from now): their sockets are still open here. Returns the ttl.

    In slices of HEARTBEAT_SLICE rows, one store call each: the local backend runs store
    calls one at a time on Django's sync thread, so a process with thousands of sockets
    would otherwise make every message sent meanwhile wait for all of its rows (measured:
    a second with 6,000 sockets, docs/performance.md). A message waits for one slice at most.
    """
    if ttl is None:
        ttl = int(utcnow().timestamp()) + settings.CHAT_CONNECTION_TTL_SECONDS
    for start in range(0, len(connection_ids), HEARTBEAT_SLICE):
        await _store_call(_refresh_connections, connection_ids=connection_ids[start : start + HEARTBEAT_SLICE], ttl=ttl)
    return ttl


async def connection_forget(*, connection_id: str, ttl: int) -> None:
    """Delete a row of a closed socket that a rewrite may have put back (only at `ttl`)."""
    await _store_call(get_store().delete_connection, connection_id=connection_id, ttl=ttl)


def _save_connections(*, records: list[ConnectionRecord]) -> None:
    store = get_store()
    for record in records:
        store.save_connection(record=record)


async def connections_rewrite(*, records: list[ConnectionRecord]) -> None:
    """Write these rows again (a process whose rows another process may have swept while it
    stalled: its sockets are open, so their rows must be there), in slices like a heartbeat."""
    for start in range(0, len(records), HEARTBEAT_SLICE):
        await _store_call(_save_connections, records=records[start : start + HEARTBEAT_SLICE])


async def instance_beat(*, now: float) -> InstanceBeat:
    """Record that this process is alive for CHAT_INSTANCE_TTL_SECONDS from `now` (epoch
    seconds): one write for the whole process, whatever its sockets."""
    return await _store_call(
        get_store().beat_instance,
        instance_id=instance_id(),
        ttl=int(now) + settings.CHAT_INSTANCE_TTL_SECONDS,
        now=datetime.fromtimestamp(now, tz=UTC),
    )


def _sweep_dead_instance(*, instance_id: str, ttl: int, now: datetime) -> int:
    store = get_store()
    rows = store.connections_on_instance(instance_id=instance_id, now=now)
    for row in rows:
        # Only a row as it was read: one its process, back from a stall, wrote again stays.
        store.delete_connection(row.connection_id, ttl=row.ttl)
    store.forget_instance(instance_id=instance_id, ttl=ttl)
    return len(rows)


async def instance_sweep(*, instance_id: str, ttl: int, now: float) -> int:
    """Delete the connection rows of a process that stopped beating (it died without
    cleaning up), then its entry; how many rows. Any live process does it on its heartbeat."""
    return await _store_call(
        _sweep_dead_instance, instance_id=instance_id, ttl=ttl, now=datetime.fromtimestamp(now, tz=UTC)
    )


def _sweep_instance(*, instance_id: str, keep: set[str]) -> int:
    store = get_store()
    stale = [
        c for c in store.connections_on_instance(instance_id=instance_id, now=utcnow()) if c.connection_id not in keep
    ]
    for record in stale:
        store.delete_connection(record.connection_id)
    return len(stale)


async def connections_sweep(*, keep: set[str]) -> int:
    """Delete this instance's connection rows that no open socket here owns: rows left by
    a previous life of the process (same CHAT_INSTANCE_ID) that died without cleaning up."""
    return await _store_call(_sweep_instance, instance_id=instance_id(), keep=keep)


async def room_last_seq(*, room_id: str) -> int | None:
    """The room's latest seq as the store has it (None when the room is gone)."""
    room = await _store_call(get_store().get_room, room_id=room_id)
    return None if room is None else room.last_seq


def expired_purge() -> int:
    removed = store_call(get_store().purge_expired, now=utcnow())
    return removed + chat_attachments.purge()  # expired messages' files, unattached uploads (issue 18)


# Bans (written by chat.moderation) --------------------------------------------------------


def _banned(user_id: str) -> bool:
    return user_id.isdigit() and bool(Ban.active(utcnow()).filter(user_id=int(user_id)).exists())


async def user_banned(*, user_id: str) -> bool:
    """Whether the user is banned now: their sockets are refused with 4403."""
    banned: bool = await database_sync_to_async(_banned)(user_id)
    return banned


def ban_longest(user_id: str) -> Ban | None:
    """The user's active ban that lasts longest (one until lifted beats any end), or None."""
    if not user_id.isdigit():
        return None
    now = utcnow()
    if not Ban.any_active(user_id=int(user_id), now=now):
        return None  # the common answer, in one statement written out
    bans = list(Ban.active(now).filter(user_id=int(user_id)))
    return max(bans, key=lambda b: (b.expires_at is None, b.expires_at or b.created_at), default=None)


def _ban_notice(user_id: str) -> dict[str, Any] | None:
    ban = ban_longest(user_id)
    return protocol.banned_frame(reason=ban.reason, until=ban.expires_at) if ban is not None else None


async def user_subscribe(*, user_id: str, member: UserMember) -> None:
    """Put a socket in its user's group, which a ban closes wherever the socket is."""
    await _fanout().join_user(user_id, member)


async def user_unsubscribe(*, user_id: str, member: UserMember) -> None:
    await _fanout().leave_user(user_id, member)
