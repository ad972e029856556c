"""Fan-out once per process and room: one channel-layer subscription, local delivery.

A tutorial Channels chat puts every socket in its room's group, so a message to a room of
N members costs N channel-layer deliveries, N consumer task wake-ups and N thread-pool hops
(`AsyncConsumer.dispatch` closes old database connections around every event). Measured
here (docs/performance.md) that was 400-1,500 µs of CPU per delivery, most of it in the
layer and the dispatch, not in writing to the socket.

So each process subscribes ONE channel of its own to a room's group while any local socket
is joined to the room, and hands each room event to its local members by a plain method
call. The event carries the frame already serialised (chat.broadcast), so a delivery is a
seq check and a write.

Order and gaps are kept per room here too: an event whose seq this process has already
fanned out is dropped, and one past the next seq means an event was lost (channel-layer
capacity, a Redis outage) or overtaken by a later sender's: the missed messages are read
from the store once for the whole process and fanned out first. Each socket still keeps its
own cursor (a socket that joined mid-way starts at what its join read), so it sees its
room's messages in seq order, each once. A message's frame is built once here (chat.wire)
and offered to each member, which writes those bytes if it is its next seq.

A user's group (a ban closes every socket of the user, on every process) is subscribed the
same way: once per process while any local socket of the user is open. So a socket needs
no channel-layer channel of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import weakref
from typing import Any, Protocol

from channels.layers import get_channel_layer

from chat import broadcast, metrics, wire
from chat.errors import ChatError

log = logging.getLogger(__name__)

# A receive loop that fails (the layer lost Redis) waits this long before trying again.
RECEIVE_RETRY_SECONDS = 0.5


class Offer(enum.IntEnum):
    """What a socket did with a message offered on the fast path."""

    SENT = 1  # the ready-made frame is written
    SKIPPED = 2  # nothing to send: a seq it has, a room it left, a socket closing
    SLOW = 3  # hand it the event the ordinary way (room_event)


class RoomMember(Protocol):
    """What the fan-out needs of a socket (chat.consumers.ChatConsumer)."""

    def offer_message(self, event: dict[str, Any], frame: bytes) -> Offer:
        """Write the message's frame now if this socket can (chat.wire); must not raise."""
        ...

    async def room_event(self, event: dict[str, Any]) -> None:
        """Handle one room event; must not raise."""
        ...


class UserMember(Protocol):
    """What the fan-out needs of a socket to reach it by its user (a ban)."""

    async def user_event(self, event: dict[str, Any]) -> None:
        """Handle one event for this socket's user; must not raise."""
        ...


class RoomFanout:
    """The rooms (and users) this process's sockets belong to, and the one channel that feeds them."""

    def __init__(self) -> None:
        self.members: dict[str, set[RoomMember]] = {}
        # user id -> that user's local sockets (the user's group, for a ban)
        self.users: dict[str, set[UserMember]] = {}
        # room id -> the highest message seq fanned out here (None: none yet since subscribing)
        self.room_seqs: dict[str, int | None] = {}
        self.channel_name: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    # Membership -------------------------------------------------------------------------

    async def join(self, room_id: str, member: RoomMember) -> None:
        """Deliver the room's events to `member` from now on (subscribing the process first)."""
        async with self._lock:
            if room_id not in self.members:
                channel = await self._channel()
                layer = get_channel_layer()
                if layer is not None:
                    await layer.group_add(broadcast.room_group(room_id), channel)
                self.members[room_id] = set()
                self.room_seqs[room_id] = None
            self.members[room_id].add(member)

    async def leave(self, room_id: str, member: RoomMember) -> None:
        async with self._lock:
            members = self.members.get(room_id)
            if members is None:
                return
            members.discard(member)
            if members:
                return
            del self.members[room_id]
            self.room_seqs.pop(room_id, None)
            layer = get_channel_layer()
            if layer is not None and self.channel_name is not None:
                with contextlib.suppress(Exception):
                    await layer.group_discard(broadcast.room_group(room_id), self.channel_name)

    async def join_user(self, user_id: str, member: UserMember) -> None:
        """Deliver the user's events (a ban) to `member` from now on: one subscription to the
        user's group per process, as for rooms, not a channel and a membership per socket."""
        async with self._lock:
            if user_id not in self.users:
                channel = await self._channel()
                layer = get_channel_layer()
                if layer is not None:
                    await layer.group_add(broadcast.user_group(user_id), channel)
                self.users[user_id] = set()
            self.users[user_id].add(member)

    async def leave_user(self, user_id: str, member: UserMember) -> None:
        async with self._lock:
            members = self.users.get(user_id)
            if members is None:
                return
            members.discard(member)
            if members:
                return
            del self.users[user_id]
            layer = get_channel_layer()
            if layer is not None and self.channel_name is not None:
                with contextlib.suppress(Exception):
                    await layer.group_discard(broadcast.user_group(user_id), self.channel_name)

    async def resubscribe(self) -> None:
        """Add this process's channel to every room and user group again.

        After a Redis restart (which forgets every group) and on every connection-keeper
        heartbeat, so the membership never outlives the layer's group_expiry however long a
        room stays busy.
        """
        layer = get_channel_layer()
        if layer is None or self.channel_name is None:
            return
        for room_id in list(self.members):
            await layer.group_add(broadcast.room_group(room_id), self.channel_name)
        for user_id in list(self.users):
            await layer.group_add(broadcast.user_group(user_id), self.channel_name)

    def rooms(self) -> list[str]:
        return list(self.members)

    # Receiving ---------------------------------------------------------------------------

    async def _channel(self) -> str:
        if self.channel_name is None:
            layer = get_channel_layer()
            # The default prefix: channels_redis's core layer receives every process-local
            # channel through one Redis list per prefix, and only the "specific" one is read.
            self.channel_name = await layer.new_channel() if layer is not None else "none"
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._receive_loop(), name="chat-room-fanout")
        return self.channel_name

    async def _receive_loop(self) -> None:
        layer = get_channel_layer()
        if layer is None or self.channel_name is None:
            return
        while True:
            try:
                event = await layer.receive(self.channel_name)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("room fan-out receive failed; retrying", exc_info=True)
                metrics.record_drop("receive_failed")
                await asyncio.sleep(RECEIVE_RETRY_SECONDS)
                continue
            try:
                await self.dispatch(event)
            except Exception:
                log.exception("room fan-out of a %s event failed", event.get("type"))

    async def dispatch(self, event: dict[str, Any]) -> None:
        """Hand one room event to every local member, message events in seq order once;
        a user event (a ban, access that ended, a lost role) to every local socket of that user."""
        if event.get("type") in broadcast.USER_EVENTS:
            user_id = event.get("user_id")
            for socket in list(self.users.get(user_id, ()) if isinstance(user_id, str) else ()):
                await socket.user_event(event)
            return
        room_id = event.get("room_id")
        if not isinstance(room_id, str) or room_id not in self.members:
            return
        if event.get("type") == broadcast.MESSAGE_EVENT:
            seq: int = event["seq"]
            last = self.room_seqs.get(room_id)
            if last is not None and seq <= last:
                return  # fanned out already (a retry's re-broadcast, or repaired before)
            if last is not None and seq > last + 1:
                await self._fan_out_missed(room_id, after_seq=last, up_to_seq=seq - 1)
            self.room_seqs[room_id] = seq
        await self._fan_out(room_id, event)

    async def _fan_out(self, room_id: str, event: dict[str, Any]) -> None:
        members = list(self.members.get(room_id, ()))
        if event.get("type") != broadcast.MESSAGE_EVENT:
            for member in members:
                await member.room_event(event)
            return
        # Framed once for the whole room; most sockets take the bytes as they are.
        frame = wire.text_frame(event["text"])
        sent = 0
        slow: list[RoomMember] = []
        for member in members:
            try:
                offer = member.offer_message(event, frame)
            except Exception:
                log.exception("fast delivery failed; sending the ordinary way")
                offer = Offer.SLOW
            if offer is Offer.SENT:
                sent += 1
            elif offer is Offer.SLOW:
                slow.append(member)
        if sent:
            metrics.record_delivered(sent, shared=True)
        for member in slow:
            await member.room_event(event)

    async def _fan_out_missed(self, room_id: str, *, after_seq: int, up_to_seq: int) -> None:
        """Read a gap from the store once for the process and fan it out in order.

        If the store cannot be read now, each socket notices the gap itself on the next
        message (and repairs or closes for a resume), so nothing is shown with a hole.
        """
        from chat import services  # services imports this module

        metrics.record_drop("gap", up_to_seq - after_seq)
        try:
            missed = await services.messages_missed(room_id=room_id, after_seq=after_seq, up_to_seq=up_to_seq)
        except ChatError:
            log.warning("room %s: could not read seqs %d-%d to fill a gap", room_id, after_seq + 1, up_to_seq)
            return
        for message in missed:
            await self._fan_out(room_id, broadcast.message_event(message))


_fanouts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RoomFanout] = weakref.WeakKeyDictionary()


def room_fanout() -> RoomFanout:
    """The fan-out of the running event loop (one per daphne process)."""
    loop = asyncio.get_running_loop()
    fanout = _fanouts.get(loop)
    if fanout is None:
        fanout = _fanouts[loop] = RoomFanout()
    return fanout
