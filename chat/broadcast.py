"""The one place that sends to channel-layer groups.

Every room change (a message, a removal, new settings, ...) is a room event
(chat.events.RoomEvent) that goes out as one layer event type, ROOM_EVENT, whose frame is
serialised once here and carried to every member as text, so no consumer re-serialises it.
Services send only through `chat.services` (its one helper sends after the write that
stored the event returned or committed). Control events that are no room change (a member
taken out, a room's access to re-check, a ban) carry no seq. Event types are fixed in this
module; a client frame can never choose one.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, Final

from channels.layers import get_channel_layer

from chat import metrics
from chat.events import RoomEvent
from chat.protocol import encode, validate_room_id

if TYPE_CHECKING:
    from chat.fanout import RoomMember, UserMember

log = logging.getLogger(__name__)

# Every room change, whatever its kind: {"type", "room_id", "seq", "text"}.
ROOM_EVENT: Final = "chat.room_event"
# Control events (docs/moderation.md): to a room's group, or to a user's group (every
# socket of one user, on every process). No seq: they change no room.
ROOM_ACCESS_EVENT: Final = "chat.room_access"  # the room turned private: re-check access
MEMBER_REMOVED_EVENT: Final = "chat.member_removed"
USER_BANNED_EVENT: Final = "chat.user_banned"

# Channel-layer group names allow ASCII letters, digits, '-', '_' and '.' (under 100).
_USER_ID_RE: Final = re.compile(r"^[A-Za-z0-9_.-]{1,80}\Z")


def room_group(room_id: str) -> str:
    """Channel-layer group of a room. Room ids are validated by chat.protocol first."""
    return f"chat.room.{validate_room_id(room_id)}"


def user_group(user_id: str) -> str:
    """Channel-layer group of every socket one user has open."""
    if not _USER_ID_RE.match(user_id):
        raise ValueError(f"user id {user_id!r} cannot name a channel-layer group")
    return f"chat.user.{user_id}"


def room_event_message(event: RoomEvent) -> dict[str, Any]:
    """The layer event of a room event: its frame serialised once, for every member."""
    return {"type": ROOM_EVENT, "room_id": event.room_id, "seq": event.seq, "text": encode(event.frame)}


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
            await layer.group_send(room_group(event.room_id), room_event_message(event))
    except Exception:
        # The change is stored (and acked); receivers repair the gap by seq.
        metrics.record_drop("send_failed")
        log.exception("broadcast failed room=%s seq=%s", event.room_id, event.seq)
        return False
    return True


async def join(room_id: str, member: RoomMember) -> None:
    """Deliver the room's events to a local socket: through this process's one
    subscription to the room (chat.fanout), not a group membership per socket."""
    from chat.fanout import room_fanout  # chat.fanout imports this module

    await room_fanout().join(room_id, member)


async def leave(room_id: str, member: RoomMember) -> None:
    from chat.fanout import room_fanout

    await room_fanout().leave(room_id, member)


async def join_user(user_id: str, member: UserMember) -> None:
    """Deliver the user's events (a ban) to a local socket, through this process's one
    subscription to the user's group (chat.fanout)."""
    from chat.fanout import room_fanout

    await room_fanout().join_user(user_id, member)


async def leave_user(user_id: str, member: UserMember) -> None:
    from chat.fanout import room_fanout

    await room_fanout().leave_user(user_id, member)


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
