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

import asyncio
import collections
import logging
from typing import Any, Final

from channels.layers import get_channel_layer

from chat import metrics
from chat.events import RoomEvent
from chat.groups import (  # the names the receiver (chat.fanout) shares; re-exported for callers
    MEMBER_REMOVED_EVENT,
    PRESENCE_EVENT,
    READ_RECEIPT_EVENT,
    ROOM_ACCESS_EVENT,
    ROOM_EVENT,
    TYPING_EVENT,
    USER_ACCESS_ENDED_EVENT,
    USER_BANNED_EVENT,
    USER_EVENTS,
    USER_FRAME_EVENT,
    USER_READ_STATE_EVENT,
    USER_ROLES_CHANGED_EVENT,
    layer_event,
    room_group,
    user_group,
)

__all__ = [
    "MEMBER_REMOVED_EVENT",
    "ROOM_ACCESS_EVENT",
    "ROOM_EVENT",
    "USER_ACCESS_ENDED_EVENT",
    "USER_BANNED_EVENT",
    "USER_EVENTS",
    "USER_FRAME_EVENT",
    "USER_ROLES_CHANGED_EVENT",
    "room_group",
    "user_group",
]

log = logging.getLogger(__name__)


async def room_event(event: RoomEvent) -> bool:
    """Tell every socket joined to the room now; False (logged) when the layer failed.

    For synchronous services (moderation, commands: `services.room_change_sync`), whose event
    loop may end with the call. A lost event is repaired by seq, not hidden: sockets notice
    the gap on the next event (or the heartbeat's tail check) and read what they missed from
    the store, and clients resume from their last seq after a reconnect.
    """
    if get_channel_layer() is None:
        return False
    return await _publish(event)


def room_event_soon(event: RoomEvent) -> None:
    """Tell every socket joined to the room, without making the caller wait for it.

    The event is durably stored, so its sender is acked at once: the publish runs in the
    room's publisher task (in seq order per room, rooms independent of each other). Acks used
    to wait for the publish, and with Redis down for as long as its retries took (issue 24).
    Lost events are repaired by seq, as for `room_event`.
    """
    if get_channel_layer() is None:
        return
    loop = asyncio.get_running_loop()
    publisher = _publishers.get(event.room_id)
    if publisher is None or publisher.task.done() or publisher.task.get_loop() is not loop:
        publisher = _publishers[event.room_id] = _RoomPublisher(event.room_id)
    publisher.queue.append(event)
    if len(publisher.queue) > PUBLISH_QUEUE_LIMIT:
        publisher.queue.popleft()  # the next event reveals it: receivers read it from the store
        metrics.record_drop("send_failed")


# Events a room's publisher may hold while the layer is slow or down; past it the oldest
# is let go (repaired by seq like any lost event).
PUBLISH_QUEUE_LIMIT: Final = 1000


class _RoomPublisher:
    """One room's stored events on their way to the channel layer, one publish at a time."""

    def __init__(self, room_id: str) -> None:
        self.room_id = room_id
        self.queue: collections.deque[RoomEvent] = collections.deque()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        await asyncio.sleep(0)  # let the caller queue its event first
        try:
            while self.queue:
                event = self.queue[0]
                if not await _publish(event) and len(self.queue) > 2:
                    # The layer is failing: publishing every waiting event would cost a
                    # round of retries each. The newest one alone reveals the gap to receivers.
                    skipped = len(self.queue) - 2
                    newest = self.queue.pop()
                    self.queue.clear()
                    self.queue.extend((event, newest))
                    metrics.record_drop("send_failed", skipped)
                self.queue.popleft()
        finally:
            if _publishers.get(self.room_id) is self:
                del _publishers[self.room_id]


_publishers: dict[str, _RoomPublisher] = {}


async def _publish(event: RoomEvent) -> bool:
    layer = get_channel_layer()
    if layer is None:
        return True
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


async def user_banned(user_id: str, *, notice: dict[str, Any] | None = None) -> bool:
    """Every socket of the user, on every process, closes with 4403, after the `notice`
    frame (the ban's reason and end) when there is one."""
    return await _control_send(user_group(user_id), {"type": USER_BANNED_EVENT, "user_id": user_id, "notice": notice})


async def user_access_ended(
    user_id: str, *, close_code: int, session: str | None = None, token_origin: str | None = None
) -> bool:
    """The user's sockets close with `close_code`: those of one session (its digest), of one
    token sign-in (its refresh token's digest), or all of them (neither)."""
    return await _control_send(
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
    return await _control_send(user_group(user_id), {"type": USER_ROLES_CHANGED_EVENT, "user_id": user_id})


# Ephemeral events (chat.ephemeral): typing and presence, never stored, no seq -------------


async def typing(room_id: str, user_id: str, text: str) -> bool:
    """Someone is typing in the room: its sockets (but the typist's) show it for a while."""
    return await _control_send(
        room_group(room_id), {"type": TYPING_EVENT, "room_id": room_id, "user_id": user_id, "text": text}
    )


async def presence(room_id: str, user_id: str, *, key: str, text: str) -> bool:
    """A user's presence, to the sockets of a room they are in; `key` tells one change from
    another, so a socket that shares several rooms with the user gets it once."""
    return await _control_send(
        room_group(room_id), {"type": PRESENCE_EVENT, "room_id": room_id, "user_id": user_id, "key": key, "text": text}
    )


async def user_frame(user_id: str, text: str, *, leave_room: str | None = None) -> bool:
    """A frame (serialised once) for every socket of one user, on every process: a room
    added to, changed in or removed from their room list (chat.people). `leave_room`: a room
    they are no longer in, which their sockets leave."""
    return await _control_send(
        user_group(user_id), {"type": USER_FRAME_EVENT, "user_id": user_id, "text": text, "leave_room": leave_room}
    )


async def user_read_state(user_id: str, frame: dict[str, Any], *, origin: str | None) -> bool:
    """A readState frame to every socket of the user, on every process, but `origin` (the
    connection that asked, which has its answer already)."""
    return await _control_send(
        user_group(user_id), {"type": USER_READ_STATE_EVENT, "user_id": user_id, "frame": frame, "origin": origin}
    )


async def read_receipt(room_id: str, frame: dict[str, Any]) -> bool:
    """A readReceipt frame to every socket joined to a small room."""
    return await _control_send(room_group(room_id), {"type": READ_RECEIPT_EVENT, "room_id": room_id, "frame": frame})
