"""The one place that sends to channel-layer groups.

Every room change (a message, a removal, new settings, ...) is a room event
(chat.events.RoomEvent) that goes out as one layer event type, chat.groups.ROOM_EVENT, whose
frame is serialised once here and carried to every member as text, so no consumer
re-serialises it. Services send only through `chat.services` (its one helper sends after the
write that stored the event returned or committed). Control events that are no room change
(a member taken out, a room's access to re-check, a ban) carry no seq. Event types are fixed
in chat.groups; a client frame can never choose one. This module only sends: what reaches a
process is received by chat.fanout, and the names both use live in chat.groups.
"""

from __future__ import annotations

import logging
from typing import Any

from channels.layers import get_channel_layer

from chat import metrics
from chat.events import RoomEvent
from chat.groups import (  # the names the receiver (chat.fanout) shares; re-exported for callers
    MEMBER_REMOVED_EVENT,
    ROOM_ACCESS_EVENT,
    ROOM_EVENT,
    USER_BANNED_EVENT,
    layer_event,
    room_group,
    user_group,
)

__all__ = [
    "MEMBER_REMOVED_EVENT",
    "ROOM_ACCESS_EVENT",
    "ROOM_EVENT",
    "USER_BANNED_EVENT",
    "room_group",
    "user_group",
]

log = logging.getLogger(__name__)


async def room_event(event: RoomEvent) -> bool:
    """Tell every socket joined to the room; False (logged) when the layer failed.

    A lost event is repaired by seq, not hidden: sockets notice the gap on the next event
    (or the heartbeat's tail check) and read what they missed from the store, and clients
    resume from their last seq after a reconnect.
    """
    layer = get_channel_layer()
    if layer is None:
        return False
    try:
        with metrics.broadcast_timer():
            await layer.group_send(room_group(event.room_id), layer_event(event))
    except Exception:
        # The change is stored (and acked); receivers repair the gap by seq.
        metrics.record_drop("send_failed")
        log.exception("broadcast failed room=%s seq=%s", event.room_id, event.seq)
        return False
    return True


async def _control_send(group: str, event: dict[str, Any]) -> bool:
    """Send one control event; False (logged) when the layer failed. The change is stored
    either way: sockets that missed it see it on their next join."""
    layer = get_channel_layer()
    if layer is None:
        return False
    try:
        await layer.group_send(group, event)
    except Exception:
        metrics.record_drop("send_failed")
        log.exception("control event %s to %s failed", event["type"], group)
        return False
    return True


async def room_access(room_id: str) -> bool:
    """The room turned private: its joined sockets re-check access, and non-members leave."""
    return await _control_send(room_group(room_id), {"type": ROOM_ACCESS_EVENT, "room_id": room_id})


async def member_removed(room_id: str, user_id: str) -> bool:
    """A member left a private room by a moderator's hand: their sockets leave it now."""
    return await _control_send(
        room_group(room_id), {"type": MEMBER_REMOVED_EVENT, "room_id": room_id, "user_id": user_id}
    )


async def user_banned(user_id: str) -> bool:
    """Every socket of the user, on every process, closes with 4403."""
    return await _control_send(user_group(user_id), {"type": USER_BANNED_EVENT, "user_id": user_id})
