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
import atexit
import collections
import logging
import threading
import weakref
from typing import Any, Final

from asgiref.sync import AsyncToSync
from channels.layers import get_channel_layer
from django.conf import settings

from chat import metrics
from chat.events import RoomEvent
from chat.groups import (  # the names the receiver (chat.fanout) shares; re-exported for callers
    MEMBER_PRESENCE_EVENT,
    MEMBERSHIP_CHANGED_EVENT,
    PRESENCE_EVENT,
    PRESENCE_GROUP,
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
    """Tell every socket joined to the room now, and wait for the layer; False (logged) when
    it failed. Services use `room_event_soon`; this is for callers that must know the event
    went out before they go on (tests that stage a lost or repeated broadcast)."""
    if get_channel_layer() is None:
        return False
    return await _publish(event)


def room_event_soon(event: RoomEvent) -> None:
    """Tell every socket joined to the room, without making the caller wait for it.

    The event is durably stored, so its sender is acked at once: the publish runs in the
    room's publisher task (in seq order per room, rooms independent of each other). Acks used
    to wait for the publish, and with Redis down for as long as its retries took (issue 24).
    A lost event is repaired by seq, not hidden: sockets notice the gap on the next event
    (or the heartbeat's tail check) and read what they missed from the store, and clients
    resume from their last seq after a reconnect.

    On a loop that ends with its call (asgiref's async_to_sync from a thread with no loop: a
    command, a script, admin under WSGI) a publisher task would be cancelled with the loop
    before it published (issue 14); there the event goes to this process's publish thread.
    """
    if get_channel_layer() is None:
        return
    loop = asyncio.get_running_loop()
    if _ends_with_its_call(loop):
        _publish_thread.submit(event)
    else:
        _queue(event)


def _ends_with_its_call(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether `loop` is one async_to_sync made for one call (it cancels what is left when
    the call returns). asgiref registers such loops, and only those, in this class map."""
    return loop in AsyncToSync.loop_thread_executors


def _queue(event: RoomEvent) -> None:
    """Queue the event in its room's publisher on the running loop (which outlives the call)."""
    publishers = _publishers.setdefault(asyncio.get_running_loop(), {})
    publisher = publishers.get(event.room_id)
    if publisher is None or publisher.task.done():
        publisher = publishers[event.room_id] = _RoomPublisher(event.room_id, publishers)
    publisher.queue.append(event)
    if len(publisher.queue) > PUBLISH_QUEUE_LIMIT:
        publisher.queue.popleft()  # the next event reveals it: receivers read it from the store
        metrics.record_drop("send_failed")


# Events a room's publisher may hold while the layer is slow or down; past it the oldest
# is let go (repaired by seq like any lost event).
PUBLISH_QUEUE_LIMIT: Final = 1000
# How long a process that exits (a management command) waits for its publish thread to
# send what it holds: past it the events are lost to live sockets, not to the store, and
# clients see them on their next gap repair or resume.
PUBLISH_DRAIN_SECONDS: Final = 5.0


class _RoomPublisher:
    """One room's stored events on their way to the channel layer, one publish at a time."""

    def __init__(self, room_id: str, publishers: dict[str, _RoomPublisher]) -> None:
        self.room_id = room_id
        self.publishers = publishers  # its loop's publishers, which it leaves when done
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
            if self.publishers.get(self.room_id) is self:
                del self.publishers[self.room_id]


# Each loop's room publishers (the server's loop; the publish thread's; a test's).
_publishers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _RoomPublisher]] = (
    weakref.WeakKeyDictionary()
)


class _PublishThread:
    """A loop of its own, in a daemon thread, for the room events of calls whose loop ends
    with them. Started on first use; at exit the process waits (PUBLISH_DRAIN_SECONDS at
    most) until it has published what it holds, so a command's changes reach live sockets."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None

    def submit(self, event: RoomEvent) -> None:
        with self._lock:
            if self.loop is None:
                self.loop = asyncio.new_event_loop()
                threading.Thread(target=self.loop.run_forever, name="chat-publish", daemon=True).start()
                atexit.register(self.drain)
        self.loop.call_soon_threadsafe(_queue, event)

    def drain(self, wait: float = PUBLISH_DRAIN_SECONDS) -> bool:
        """Wait until every event submitted so far is published (or given up); False past `wait`."""
        loop = self.loop
        if loop is None:
            return True

        async def idle() -> None:
            await asyncio.sleep(0)  # after every submit queued before this call
            while tasks := [p.task for p in _publishers.get(loop, {}).values()]:
                await asyncio.wait(tasks)

        future = asyncio.run_coroutine_threadsafe(idle(), loop)
        try:
            future.result(timeout=wait)
        except TimeoutError:
            future.cancel()
            log.warning("publish thread: events still unpublished after %.1f s", wait)
            return False
        return True


_publish_thread = _PublishThread()


def drain_publish_thread(wait: float = PUBLISH_DRAIN_SECONDS) -> bool:
    """Wait until the publish thread (if it ever started) has sent what it holds; False past `wait`."""
    return _publish_thread.drain(wait)


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
    """Someone is typing in the room: its sockets (but the typist's) show it for a while.

    The room's typing that reaches this process within CHAT_TYPING_BATCH_SECONDS goes out as
    one event listing the typists (chat.typing_rules.typing_events reads it): with Redis, one
    PUBLISH per room and window and one message for each process to read, not one of each per
    typing frame, which is most of what typing costs over Redis (docs/performance.md). Every
    process hands a batch to its sockets as it arrives, each socket in one write. False when
    the layer failed (logged); a batch sent later reports nothing back, and a lost typing
    frame is repaired by the typist's next one."""
    window = settings.CHAT_TYPING_BATCH_SECONDS
    typist = (user_id, text)
    if window <= 0:
        return await _control_send(room_group(room_id), _typing_event(room_id, [typist]))
    loop = asyncio.get_running_loop()
    pending = _typing_out.setdefault(loop, {})
    batch = pending.get(room_id)
    if batch is None:
        batch = pending[room_id] = []
        loop.call_later(window, _publish_typing_later, loop, pending, room_id)
    batch.append(typist)
    return True


def _typing_event(room_id: str, typists: list[tuple[str, str]]) -> dict[str, Any]:
    return {"type": TYPING_EVENT, "room_id": room_id, "typists": [list(typist) for typist in typists]}


# Per event loop: room -> the typists of the window not yet published.
_typing_out: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, list[tuple[str, str]]]] = (
    weakref.WeakKeyDictionary()
)
_typing_tasks: set[asyncio.Task[bool]] = set()  # held until done: the loop keeps only weak references


def _publish_typing_later(
    loop: asyncio.AbstractEventLoop, pending: dict[str, list[tuple[str, str]]], room_id: str
) -> None:
    typists = pending.pop(room_id, [])
    if typists:
        task = loop.create_task(_control_send(room_group(room_id), _typing_event(room_id, typists)))
        _typing_tasks.add(task)
        task.add_done_callback(_typing_tasks.discard)


async def presence(room_id: str, user_id: str, *, key: str, text: str) -> bool:
    """A user's presence, to the sockets of a room they are in; `key` tells one change from
    another, so a socket that shares several rooms with the user gets it once."""
    return await _control_send(
        room_group(room_id), {"type": PRESENCE_EVENT, "room_id": room_id, "user_id": user_id, "key": key, "text": text}
    )


async def member_presence(user_id: str, recipients: list[str], *, key: str, text: str) -> bool:
    """A user's presence to the sockets of `recipients` (who share a room membership with
    them), on every process, in one publish; `key` as for `presence`."""
    return await _control_send(
        PRESENCE_GROUP,
        {"type": MEMBER_PRESENCE_EVENT, "user_id": user_id, "recipients": recipients, "key": key, "text": text},
    )


async def membership_changed(room_id: str, user_id: str) -> bool:
    """A membership was added or removed: every process forgets who shares that room
    (chat.fellows), in one publish."""
    return await _control_send(
        PRESENCE_GROUP, {"type": MEMBERSHIP_CHANGED_EVENT, "room_id": room_id, "user_id": user_id}
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
