"""Chat services: validate, write through the storage adapter, then broadcast.

Consumers, views, admin and management commands call these; none of them touches the
store or the channel layer directly. The order is always store, broadcast, then the caller
acks: nothing is acknowledged or shown that is not durably stored.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings

from accounts.identity import Identity
from chat import broadcast, metrics, protocol
from chat.errors import ChatError, ErrorCode, StorageUnavailable
from chat.storage import get_store
from chat.storage.base import ConnectionRecord, MessageRecord, NewMessage, Room, RoomNotFound

log = logging.getLogger(__name__)

T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC)


async def _store_call(fn: Callable[..., T], /, **kwargs: Any) -> T:
    """Run one storage call off the event loop; failures become StorageUnavailable."""
    store = get_store()
    try:
        with metrics.store_timer(getattr(fn, "__name__", "call")):
            return await sync_to_async(fn, thread_sensitive=store.thread_sensitive)(**kwargs)
    except (ChatError, RoomNotFound):
        raise
    except Exception as exc:
        log.exception("storage call %s failed", getattr(fn, "__name__", fn))
        raise StorageUnavailable() from exc


# Rooms ----------------------------------------------------------------------------------


def room_create(*, room_id: str, name: str | None = None, created_by: str | None = None) -> Room:
    """Create a room (or return the existing one). Synchronous: for views and commands."""
    room_id = protocol.validate_room_id(room_id)
    return get_store().ensure_room(room_id=room_id, name=(name or room_id)[:100], created_by=created_by, now=utcnow())


def room_list() -> list[Room]:
    rooms = get_store().list_rooms()
    if not any(r.room_id == protocol.DEFAULT_ROOM for r in rooms):
        rooms.insert(0, room_create(room_id=protocol.DEFAULT_ROOM, name="General"))
    return rooms


def room_get(room_id: str) -> Room | None:
    """A room by id, or None. Synchronous: for views and commands."""
    store = get_store()
    room = store.get_room(room_id)
    if room is None and room_id == protocol.DEFAULT_ROOM:
        # The default room exists from the start, whichever backend holds it.
        room = store.ensure_room(room_id=room_id, name="General", created_by=None, now=utcnow())
    return room


async def _require_room(room_id: str) -> Room:
    room = await _store_call(room_get, room_id=room_id)
    if room is None:
        raise ChatError(ErrorCode.UNKNOWN_ROOM, f"room {room_id!r} does not exist", room_id=room_id)
    return room


# Messages -------------------------------------------------------------------------------


async def message_send(
    *, identity: Identity, connection_id: str, room_id: str, text: str, client_message_id: str | None
) -> MessageRecord:
    """Store a message exactly once, broadcast it, and return the record to ack.

    A retry with a clientMessageId already stored returns the original record and stores
    nothing. It is broadcast again: receivers drop seqs they already have, and the first
    attempt may have died between the store and the broadcast.
    """
    await _require_room(room_id)
    new = NewMessage(
        room_id=room_id,
        user_id=identity.user_id,
        username=identity.username,
        text=text,
        connection_id=connection_id,
        client_message_id=client_message_id,
        timestamp=utcnow(),
        ttl_seconds=settings.CHAT_MESSAGE_TTL_SECONDS,
    )
    try:
        result = await _store_call(get_store().append_message, new=new)
    except RoomNotFound:
        raise ChatError(ErrorCode.UNKNOWN_ROOM, f"room {room_id!r} does not exist", room_id=room_id) from None
    metrics.record_stored(created=result.created)
    await broadcast.message_stored(result.message)
    return result.message


@dataclass(frozen=True, slots=True)
class JoinResult:
    room: Room
    last_seq: int
    messages: list[MessageRecord]
    recovered: bool


async def room_join(
    *, room_id: str, channel_name: str, last_seq: int | None, already_joined: bool = False
) -> JoinResult:
    """Subscribe first, then read: no message can fall between the replay and the live feed.

    A failed join undoes its subscription, except for a socket that was joined already (a
    rejoin to fill a gap): unsubscribing it would leave it silently deaf to the room.
    """
    await _require_room(room_id)
    await broadcast.join(room_id, channel_name)
    try:
        room = await _require_room(room_id)  # re-read after subscribing
        return await _replay(room, last_seq)
    except Exception:
        if not already_joined:
            await broadcast.leave(room_id, channel_name)
        raise


async def _replay(room: Room, last_seq: int | None) -> JoinResult:
    now = utcnow()
    store = get_store()
    if last_seq is not None and 0 <= room.last_seq - last_seq <= settings.CHAT_REPLAY_CAP:
        missed = room.last_seq - last_seq
        messages = (
            await _store_call(store.messages_after, room_id=room.room_id, after_seq=last_seq, limit=missed, now=now)
            if missed
            else []
        )
        contiguous = [m.seq for m in messages] == list(range(last_seq + 1, room.last_seq + 1))
        if contiguous:
            return JoinResult(room=room, last_seq=room.last_seq, messages=messages, recovered=True)
    latest = await _store_call(
        store.messages_before,
        room_id=room.room_id,
        before_seq=room.last_seq + 1,
        limit=settings.CHAT_HISTORY_PAGE,
        now=now,
    )
    return JoinResult(room=room, last_seq=room.last_seq, messages=latest, recovered=last_seq is None)


async def room_leave(*, room_id: str, channel_name: str) -> None:
    await broadcast.leave(room_id, channel_name)


async def messages_missed(*, room_id: str, after_seq: int, up_to_seq: int) -> list[MessageRecord]:
    """Read what a socket missed between two seqs (a lost or reordered broadcast)."""
    return await _store_call(
        get_store().messages_after,
        room_id=room_id,
        after_seq=after_seq,
        limit=max(0, up_to_seq - after_seq),
        now=utcnow(),
    )


@dataclass(frozen=True, slots=True)
class HistoryPage:
    messages: list[MessageRecord]
    has_more: bool


async def room_history(*, room_id: str, before_seq: int | None, limit: int | None) -> HistoryPage:
    await _require_room(room_id)
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


async def connection_open(*, identity: Identity) -> ConnectionRecord:
    now = utcnow()
    record = ConnectionRecord(
        connection_id=uuid.uuid4().hex,
        user_id=identity.user_id,
        username=identity.username,
        connected_at=now,
        ttl=int(now.timestamp()) + settings.CHAT_CONNECTION_TTL_SECONDS,
        instance_id=instance_id(),
    )
    await _store_call(get_store().save_connection, record=record)
    return record


async def connection_close(*, connection_id: str) -> None:
    try:
        await _store_call(get_store().delete_connection, connection_id=connection_id)
    except StorageUnavailable:
        # The row expires by its ttl; nothing else depends on it being gone now.
        log.warning("connection row %s left to expire", connection_id)


def _refresh_connections(*, connection_ids: list[str], ttl: int) -> None:
    store = get_store()
    for connection_id in connection_ids:
        store.refresh_connection(connection_id=connection_id, ttl=ttl)


async def connections_heartbeat(*, connection_ids: list[str]) -> None:
    """Push the ttl of these connection rows forward: their sockets are still open here."""
    if connection_ids:
        ttl = int(utcnow().timestamp()) + settings.CHAT_CONNECTION_TTL_SECONDS
        await _store_call(_refresh_connections, connection_ids=connection_ids, ttl=ttl)


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
    return get_store().purge_expired(now=utcnow())
