"""The one place that sends to channel-layer groups.

Services call `message_stored` only after the store has durably written the message. The
frame is serialised once here and carried to every member as text, so no consumer
re-serialises it. Event types are fixed in this module; a client frame can never choose one.
Moderation events (a removed message, a room's new settings, a removed member, a ban) go
out the same way, after the change is stored.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
from typing import TYPE_CHECKING, Any, Final

from channels.layers import get_channel_layer

from chat import metrics, protocol
from chat.storage.base import MessageRecord, Room

if TYPE_CHECKING:
    from chat.fanout import RoomMember, UserMember

log = logging.getLogger(__name__)

MESSAGE_EVENT: Final = "chat.message"
# Moderation (docs/moderation.md): to a room's group, or to a user's group (every socket of
# one user, on every process).
MESSAGE_REMOVED_EVENT: Final = "chat.message_removed"
ROOM_UPDATED_EVENT: Final = "chat.room_updated"
MEMBER_REMOVED_EVENT: Final = "chat.member_removed"
USER_BANNED_EVENT: Final = "chat.user_banned"
# A user's access ended (signed out of a session, password changed, deactivated, deleted,
# a role lost): to the user's group, so it reaches their sockets on every process.
USER_ACCESS_ENDED_EVENT: Final = "chat.user_access_ended"
USER_ROLES_CHANGED_EVENT: Final = "chat.user_roles_changed"
USER_EVENTS: Final = frozenset({USER_BANNED_EVENT, USER_ACCESS_ENDED_EVENT, USER_ROLES_CHANGED_EVENT})

# Channel-layer group names allow ASCII letters, digits, '-', '_' and '.' (under 100).
_USER_ID_RE: Final = re.compile(r"^[A-Za-z0-9_.-]{1,80}\Z")


def room_group(room_id: str) -> str:
    """Channel-layer group of a room. Room ids are validated by chat.protocol first."""
    return f"chat.room.{protocol.validate_room_id(room_id)}"


def user_group(user_id: str) -> str:
    """Channel-layer group of every socket one user has open."""
    if not _USER_ID_RE.match(user_id):
        raise ValueError(f"user id {user_id!r} cannot name a channel-layer group")
    return f"chat.user.{user_id}"


def message_event(message: MessageRecord) -> dict[str, Any]:
    return {
        "type": MESSAGE_EVENT,
        "room_id": message.room_id,
        "seq": message.seq,
        "text": protocol.encode(protocol.message_frame(message)),
    }


async def message_stored(message: MessageRecord) -> None:
    """Tell every socket joined to the room, without making the caller wait for it.

    The message is durably stored, so its sender is acked at once: the publish runs in the
    room's publisher task (in seq order per room, rooms independent of each other). Acks used
    to wait for the publish, and with Redis down for as long as its retries took (issue 24).
    A lost event is repaired by seq, not hidden: consumers notice the gap on the next event
    and read what they missed from the store, the heartbeat's tail check finds a lost last
    message, and clients resume from their last seq after a reconnect.
    """
    if get_channel_layer() is None:
        return
    loop = asyncio.get_running_loop()
    publisher = _publishers.get(message.room_id)
    if publisher is None or publisher.task.done() or publisher.task.get_loop() is not loop:
        publisher = _publishers[message.room_id] = _RoomPublisher(message.room_id)
    publisher.queue.append(message)
    if len(publisher.queue) > PUBLISH_QUEUE_LIMIT:
        publisher.queue.popleft()  # the next event reveals it: receivers read it from the store
        metrics.record_drop("send_failed")


# Messages a room's publisher may hold while the layer is slow or down; past it the oldest
# is let go (repaired by seq like any lost event).
PUBLISH_QUEUE_LIMIT: Final = 1000


class _RoomPublisher:
    """One room's stored messages on their way to the channel layer, one publish at a time."""

    def __init__(self, room_id: str) -> None:
        self.room_id = room_id
        self.queue: collections.deque[MessageRecord] = collections.deque()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        await asyncio.sleep(0)  # let the caller queue its message first
        try:
            while self.queue:
                message = self.queue[0]
                if not await _publish(message) and len(self.queue) > 2:
                    # The layer is failing: publishing every waiting message would cost a
                    # round of retries each. The newest one alone reveals the gap to receivers.
                    skipped = len(self.queue) - 2
                    newest = self.queue.pop()
                    self.queue.clear()
                    self.queue.extend((message, newest))
                    metrics.record_drop("send_failed", skipped)
                self.queue.popleft()
        finally:
            if _publishers.get(self.room_id) is self:
                del _publishers[self.room_id]


_publishers: dict[str, _RoomPublisher] = {}


async def _publish(message: MessageRecord) -> bool:
    layer = get_channel_layer()
    if layer is None:
        return True
    try:
        with metrics.broadcast_timer():
            await layer.group_send(room_group(message.room_id), message_event(message))
    except Exception:
        # The message is stored and acked; receivers repair the gap by seq.
        metrics.record_drop("send_failed")
        log.exception("broadcast failed room=%s seq=%s", message.room_id, message.seq)
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


async def user_access_ended(
    user_id: str, *, close_code: int, session: str | None = None, token_origin: str | None = None
) -> bool:
    """The user's sockets close with `close_code`: those of one session (its digest), of one
    token sign-in (its refresh token's digest), or all of them (neither)."""
    return await _moderation_send(
        user_group(user_id),
        {
            "type": USER_ACCESS_ENDED_EVENT,
            "user_id": user_id,
            "close_code": close_code,
            "session": session,
            "token_origin": token_origin,
        },
    )


async def user_roles_changed(user_id: str) -> bool:
    """The user lost (or gained) a role: their sockets check again every room they have joined."""
    return await _moderation_send(user_group(user_id), {"type": USER_ROLES_CHANGED_EVENT, "user_id": user_id})
