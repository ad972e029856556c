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

Order and gaps are kept per room by the delivery core (chat.delivery.RoomSequencer); this
module only receives and executes its decisions. Every room event (a message, a removal,
new settings: each has its own seq) is sequenced alike; control events (no seq) are handed
on as they come. An event whose seq this process has
already fanned out is dropped. One past the next seq is held for a short reorder window
(two publishers' events reach a process in either order, which is no loss); if the missing
events do not come in that window, they are read from the store once for the whole process
(the gap reader this fan-out is handed, so it imports no service) and fanned out first. A
gap wider than the cap is not read: each socket resyncs (`recovered: false`). A room's
baseline is its seq as read when the process subscribed, never whatever old seq arrives
first (a retry's re-broadcast). Each socket still keeps its own cursor (chat.delivery.
SocketDelivery: a socket that joined mid-way starts at what its join read). An event's
frame is built once here (chat.daphne_adapt.frames) and offered to each member, which writes those bytes
if it is its next seq.

A user's group (a ban closes every socket of the user, on every process) is subscribed the
same way: once per process while any local socket of the user is open. So a socket needs
no channel-layer channel of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Protocol

from channels.layers import get_channel_layer
from django.conf import settings

from chat import fellows, metrics
from chat.daphne_adapt import frames
from chat.delivery import DEFAULT_GAP_CAP, DEFAULT_REORDER_WINDOW, Repair, Resync, RoomSequencer
from chat.errors import ChatError
from chat.events import RoomEvent
from chat.groups import (
    EPHEMERAL_EVENTS,
    MEMBER_PRESENCE_EVENT,
    MEMBERSHIP_CHANGED_EVENT,
    PRESENCE_EVENT,
    PRESENCE_GROUP,
    ROOM_EVENT,
    USER_EVENTS,
    layer_event,
    room_group,
    user_group,
)
from chat.typing_rules import batch_for, typing_events

log = logging.getLogger(__name__)

# Reads a room's events in (after_seq, up_to_seq] from the store, in seq order (chat.services).
GapReader = Callable[[str, int, int], Awaitable[Sequence[RoomEvent]]]

# A receive loop that fails (the layer lost Redis) waits this long before trying again.
RECEIVE_RETRY_SECONDS = 0.5


class Offer(enum.IntEnum):
    """What a socket did with a message offered on the fast path."""

    SENT = 1  # the ready-made frame is written
    SKIPPED = 2  # nothing to send: a seq it has, a room it left, a socket closing
    SLOW = 3  # it is this socket's to send, but not as shared bytes: `send_text`
    REPAIR = 4  # the socket has work to do first (a gap): hand it the event (room_event)


SENT: Final = Offer.SENT  # for the per-socket loop, as chat.delivery.SEND


class RoomMember(Protocol):
    """What the fan-out needs of a socket (chat.consumers.ChatConsumer)."""

    def offer_message(self, event: dict[str, Any], frame: bytes) -> Offer:
        """Decide the event (chat.delivery) and write the shared frame now if this socket can
        (chat.daphne_adapt.frames); must not raise."""
        ...

    async def send_text(self, text: str) -> None:
        """Send an event `offer_message` decided to send (SLOW) the ordinary way; must not raise."""
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

    def __init__(
        self,
        *,
        read_gap: GapReader | None = None,
        window: float = DEFAULT_REORDER_WINDOW,
        gap_cap: int = DEFAULT_GAP_CAP,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.members: dict[str, set[RoomMember]] = {}
        # user id -> that user's local sockets (the user's group, for a ban)
        self.users: dict[str, set[UserMember]] = {}
        # the rooms' cursors, reorder windows and gaps (the delivery core)
        self.sequencer = RoomSequencer(window=window, gap_cap=gap_cap)
        self.read_gap = read_gap
        self.clock = clock
        self.channel_name: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        # Held while events are fanned out, so a repair and the receive loop never interleave.
        self._delivering = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._reported = (0, 0)  # the sequencer's counters as last recorded in metrics

    # Membership -------------------------------------------------------------------------

    async def join(self, room_id: str, member: RoomMember) -> None:
        """Deliver the room's events to `member` from now on (subscribing the process first)."""
        async with self._lock:
            if room_id not in self.members:
                channel = await self._channel()
                layer = get_channel_layer()
                if layer is not None:
                    await layer.group_add(room_group(room_id), channel)
                self.members[room_id] = set()
                self.sequencer.subscribe(room_id)
            self.members[room_id].add(member)

    def subscribed(self, room_id: str) -> bool:
        """Whether this process carries the room now (a socket here has joined it)."""
        return room_id in self.members

    def baseline(self, room_id: str, seq: int) -> None:
        """The room's seq as read right after `join` subscribed (the first one counts)."""
        self.sequencer.baseline(room_id, seq)

    async def leave(self, room_id: str, member: RoomMember) -> None:
        async with self._lock:
            members = self.members.get(room_id)
            if members is None:
                return
            members.discard(member)
            if members:
                return
            del self.members[room_id]
            self.sequencer.unsubscribe(room_id)
            layer = get_channel_layer()
            if layer is not None and self.channel_name is not None:
                with contextlib.suppress(Exception):
                    await layer.group_discard(room_group(room_id), self.channel_name)

    async def join_user(self, user_id: str, member: UserMember) -> None:
        """Deliver the user's events (a ban) to `member` from now on: one subscription to the
        user's group per process, as for rooms, not a channel and a membership per socket."""
        async with self._lock:
            if user_id not in self.users:
                channel = await self._channel()
                layer = get_channel_layer()
                if layer is not None:
                    await layer.group_add(user_group(user_id), channel)
                    if not self.users:  # the first local user: co-members' presence comes this way
                        await layer.group_add(PRESENCE_GROUP, channel)
                        # and membership changes: what was kept while out of the group is old
                        fellows.cache.clear()
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
                    await layer.group_discard(user_group(user_id), self.channel_name)

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
            await layer.group_add(room_group(room_id), self.channel_name)
        for user_id in list(self.users):
            await layer.group_add(user_group(user_id), self.channel_name)
        if self.users:
            await layer.group_add(PRESENCE_GROUP, self.channel_name)

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
        """Hand one room event to every local member, in seq order, once; a user event (a
        ban, access that ended, a lost role) to every local socket of that user."""
        if event.get("type") == MEMBER_PRESENCE_EVENT:
            await self._fan_out_member_presence(event)
            return
        if event.get("type") == MEMBERSHIP_CHANGED_EVENT:
            room_id, user_id = event.get("room_id"), event.get("user_id")
            if isinstance(room_id, str) and isinstance(user_id, str):
                fellows.cache.forget(room_id=room_id, user_id=user_id)
            return
        if event.get("type") in USER_EVENTS:
            user_id = event.get("user_id")
            for socket in list(self.users.get(user_id, ()) if isinstance(user_id, str) else ()):
                await socket.user_event(event)
            return
        room_id = event.get("room_id")
        if not isinstance(room_id, str) or room_id not in self.members:
            return
        if event.get("type") in EPHEMERAL_EVENTS:
            await self._fan_out_ephemeral(room_id, event)
            return
        async with self._delivering:
            if event.get("type") != ROOM_EVENT:
                await self._fan_out(room_id, event)  # control events: no seq
                return
            for item in self.sequencer.receive(room_id, event["seq"], event, self.clock()):
                await self._fan_out(room_id, item)
        self._after_sequencing()

    async def _fan_out(self, room_id: str, event: dict[str, Any]) -> None:
        members = list(self.members.get(room_id, ()))
        if event.get("type") != ROOM_EVENT:
            for member in members:
                await member.room_event(event)
            return
        # Framed once for the whole room; most sockets take the bytes as they are.
        frame = frames.text_frame(event["text"])
        sent = 0
        slow: list[tuple[RoomMember, Offer]] = []
        for member in members:
            try:
                offer = member.offer_message(event, frame)
            except Exception:
                log.exception("fast delivery failed; handing the event over the ordinary way")
                offer = Offer.REPAIR
            if offer is SENT:
                sent += 1
            elif offer is not Offer.SKIPPED:
                slow.append((member, offer))
        if sent:
            metrics.record_delivered(sent, shared=True)
        for member, offer in slow:
            if offer is Offer.SLOW:
                await member.send_text(event["text"])
            else:
                await member.room_event(event)

    async def _fan_out_ephemeral(self, room_id: str, event: dict[str, Any]) -> None:
        """Typing and presence (chat.ephemeral): no seq, no order to keep, nothing to repair,
        so no lock."""
        room = self.members.get(room_id, ())
        if event["type"] == PRESENCE_EVENT:
            # A crowd: presence is read with the member list, not pushed to everyone. Checked
            # before the members are copied: in a connect storm every socket joining a room
            # of thousands is a presence event here.
            if len(room) > settings.CHAT_PRESENCE_ROOM_LIMIT:
                return
            for member in list(room):
                offer = getattr(member, "offer_presence", None)
                if offer is not None:
                    offer(event)  # gathered per socket for a window (chat.ephemeral)
            return
        # Typing comes in bursts from every member of a busy room: each process publishes a
        # window's typists in one event (chat.broadcast.typing), which goes to each socket in
        # one write, framed once, as bytes where a socket can take them (typing_rules.batch_for).
        await self._offer_ephemeral(list(room), typing_events(event))

    async def _fan_out_member_presence(self, event: dict[str, Any]) -> None:
        """A user's presence to this process's sockets of the users sharing a room with
        them (chat.presence.announce): each socket once per change, gathered per socket for
        a window (chat.ephemeral)."""
        recipients = event.get("recipients")
        if not isinstance(recipients, list):
            return
        for user_id in recipients:
            for socket in list(self.users.get(user_id, ()) if isinstance(user_id, str) else ()):
                offer = getattr(socket, "offer_presence", None)
                if offer is not None:
                    offer(event)

    async def _offer_ephemeral(self, members: list[RoomMember], events: list[dict[str, Any]]) -> None:
        if not events:
            return
        framed = [(event["user_id"], frames.text_frame(event["text"])) for event in events]
        shared = b"".join(frame for _, frame in framed)
        whose = {**events[0], "user_id": None} if len(events) > 1 else events[0]
        for member in members:
            offer = getattr(member, "offer_ephemeral", None)
            if offer is None:
                continue
            user = member.presence_user() if len(events) > 1 else None  # type: ignore[attr-defined]
            data = batch_for(framed, user, shared)
            if data and offer(whose, data) is Offer.SLOW:
                for event in events:
                    if event["user_id"] != user:
                        with contextlib.suppress(Exception):
                            await member.send_text(event["text"])

    # Gaps: the reorder window, then one store read for the process ---------------------

    def _after_sequencing(self) -> None:
        """Record the sequencer's counters and wake up at its next deadline."""
        reordered, lost = self.sequencer.reordered, self.sequencer.lost
        if reordered > self._reported[0]:
            metrics.record_reordered(reordered - self._reported[0])
        if lost > self._reported[1]:
            metrics.record_drop("gap", lost - self._reported[1])
        self._reported = (reordered, lost)
        deadline = self.sequencer.deadline()
        if deadline is None or self._timer is not None:
            return
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(max(0.0, deadline - self.clock()), self._on_deadline)

    def _on_deadline(self) -> None:
        self._timer = None
        asyncio.get_running_loop().create_task(self.run_expired(), name="chat-fanout-repair")

    async def run_expired(self) -> None:
        """Repair the gaps whose reorder window has passed (the timer calls this)."""
        async with self._delivering:
            for decision in self.sequencer.expired(self.clock()):
                try:
                    await self._repair(decision)
                except Exception:
                    log.exception("room %s: repairing up to seq %d failed", decision.room_id, decision.up_to)
                for item in self.sequencer.repaired(decision.room_id, decision.up_to):
                    await self._fan_out(decision.room_id, item)
        self._after_sequencing()

    async def _repair(self, decision: Repair | Resync) -> None:
        """Read a gap from the store once for the process and fan it out in order.

        Past the cap (Resync) nothing is read: each socket sees the gap and resyncs. If the
        store cannot be read now, each socket notices the gap itself (and repairs or
        resyncs), so nothing is shown with a hole.
        """
        room_id = decision.room_id
        if isinstance(decision, Resync) or self.read_gap is None:
            log.warning("room %s: seqs %d-%d lost, not read here", room_id, decision.after + 1, decision.up_to)
            return
        try:
            missed = await self.read_gap(room_id, decision.after, decision.up_to)
        except ChatError:
            log.warning("room %s: could not read seqs %d-%d to fill a gap", room_id, decision.after + 1, decision.up_to)
            return
        for room_event in missed:
            if room_id in self.members:
                await self._fan_out(room_id, layer_event(room_event))


_fanouts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RoomFanout] = weakref.WeakKeyDictionary()


def room_fanout(*, read_gap: GapReader | None = None) -> RoomFanout:
    """The fan-out of the running event loop (one per daphne process), handed its gap reader
    by its first caller that has one (chat.services)."""
    loop = asyncio.get_running_loop()
    fanout = _fanouts.get(loop)
    if fanout is None:
        fanout = _fanouts[loop] = RoomFanout(
            read_gap=read_gap, window=settings.CHAT_REORDER_WINDOW_SECONDS, gap_cap=settings.CHAT_REPLAY_CAP
        )
    elif fanout.read_gap is None:
        fanout.read_gap = read_gap
    return fanout
