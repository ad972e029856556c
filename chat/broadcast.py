"""The one place that sends to channel-layer groups.

Services call `message_stored` only after the store has durably written the message. The
frame is serialised once here and carried to every member as text, so no consumer
re-serialises it. Event types are fixed in this module; a client frame can never choose one.
Moderation events (a removed message, a room's new settings, a removed member, a ban) go
out the same way, after the change is stored. This module only sends: what reaches a
process is received by chat.fanout, and the names both use live in chat.groups.
"""

from __future__ import annotations

import logging
from typing import Any

from channels.layers import get_channel_layer

from chat import metrics, protocol
from chat.groups import (  # the names the receiver (chat.fanout) shares; re-exported for callers
    MEMBER_REMOVED_EVENT,
    MESSAGE_EVENT,
    MESSAGE_REMOVED_EVENT,
    ROOM_UPDATED_EVENT,
    USER_BANNED_EVENT,
    room_group,
    user_group,
)
from chat.records import MessageRecord, Room

__all__ = [
    "MEMBER_REMOVED_EVENT",
    "MESSAGE_EVENT",
    "MESSAGE_REMOVED_EVENT",
    "ROOM_UPDATED_EVENT",
    "USER_BANNED_EVENT",
    "room_group",
    "user_group",
]

log = logging.getLogger(__name__)


def message_event(message: MessageRecord) -> dict[str, Any]:
    return {
        "type": MESSAGE_EVENT,
        "room_id": message.room_id,
        "seq": message.seq,
        "text": protocol.encode(protocol.message_frame(message)),
    }


async def message_stored(message: MessageRecord) -> None:
    """Tell every socket joined to the room. A lost event is repaired by seq, not hidden:

    consumers notice the gap on the next event and read what they missed from the store,
    and clients resume from their last seq after a reconnect.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        with metrics.broadcast_timer():
            await layer.group_send(room_group(message.room_id), message_event(message))
    except Exception:
        # The message is stored and will be acked; receivers repair the gap by seq.
        metrics.record_drop("send_failed")
        log.exception("broadcast failed room=%s seq=%s", message.room_id, message.seq)


async def _moderation_send(group: str, event: dict[str, Any]) -> bool:
    """Send one moderation event; False (logged) when the layer failed. The change is
    stored either way: sockets that missed it see it on their next join or history."""
    layer = get_channel_layer()
    if layer is None:
        return False
    try:
        await layer.group_send(group, event)
    except Exception:
        metrics.record_drop("send_failed")
        log.exception("moderation broadcast %s to %s failed", event["type"], group)
        return False
    return True


async def message_removed(message: MessageRecord) -> bool:
    """A message became a tombstone: joined sockets drop it from view."""
    return await _moderation_send(
        room_group(message.room_id),
        {
            "type": MESSAGE_REMOVED_EVENT,
            "room_id": message.room_id,
            "seq": message.seq,
            "text": protocol.encode(protocol.message_removed_frame(message)),
        },
    )


async def room_updated(room: Room) -> bool:
    """A room's settings changed: joined sockets show them; if it is private now, the
    sockets of non-members leave it."""
    return await _moderation_send(
        room_group(room.room_id),
        {
            "type": ROOM_UPDATED_EVENT,
            "room_id": room.room_id,
            "private": room.private,
            "text": protocol.encode(protocol.room_updated_frame(room)),
        },
    )


async def member_removed(room_id: str, user_id: str) -> bool:
    """A member left a private room by a moderator's hand: their sockets leave it now."""
    return await _moderation_send(
        room_group(room_id), {"type": MEMBER_REMOVED_EVENT, "room_id": room_id, "user_id": user_id}
    )


async def user_banned(user_id: str) -> bool:
    """Every socket of the user, on every process, closes with 4403."""
    return await _moderation_send(user_group(user_id), {"type": USER_BANNED_EVENT, "user_id": user_id})
