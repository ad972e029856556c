"""A socket's side of room delivery: executing the delivery core's decisions (chat.delivery).

`RoomDelivery` is the part of the consumer that room events go through. The fan-out
(chat.fanout) offers each sequenced event to every local socket (`offer_message`); the
socket's `SocketDelivery` decides, and this executes: write the shared frame, send the
text the ASGI way, repair a gap from the store, or resync a room past the cap. The
connection keeper's catch-up (chat.connections) comes through here too. What a frame
means to a user (moderation, bans) stays in the consumer, which holds the identity.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from accounts.identity import Identity
from chat import connections, metrics, protocol, services
from chat.daphne_adapt.frames import FrameWriter
from chat.delivery import SEND, Repair, Resync, SocketDelivery, Step
from chat.errors import ChatError
from chat.fanout import SENT, Offer
from chat.groups import ROOM_EVENT
from chat.protocol import CloseCode

log = logging.getLogger(__name__)


class RoomDelivery:
    """Room events of one socket, through its delivery core. Mixed into ChatConsumer."""

    core: SocketDelivery
    # Held while sending room frames, so the connection keeper's catch-up (another task)
    # and this socket's own event handling never interleave or reorder seqs.
    delivery: asyncio.Lock
    frames: FrameWriter | None
    identity: Identity | None
    connection_id: str | None
    disconnected: bool
    # layer event type -> the consumer's handler of a room event that takes no seq
    _control_handlers: dict[Any, Callable[[Any, dict[str, Any]], Awaitable[None]]]

    if TYPE_CHECKING:  # provided by the consumer (AsyncWebsocketConsumer)

        async def send(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None: ...

        async def close(self, code: int | None = None) -> None: ...

        async def send_frame(self, frame: dict[str, Any]) -> None: ...

    # Room events ----------------------------------------------------------------------
    #
    # They reach this socket only from the process's fan-out (chat.fanout), one method call
    # per local member; so do its user's events (a ban). A socket has no channel of its own.

    def offer_message(self, event: dict[str, Any], frame: bytes) -> Offer:
        """The hot path, once per socket per room event: the core decides, and when the
        decision is to send, the fan-out's ready-made frame is written here.

        SLOW: sent, but the bytes go the ASGI way (daphne's writer cannot take them now);
        REPAIR: the socket has work to do first (a gap), so the fan-out hands it the event.
        No lock is needed: nothing here yields, so the cursor moves with the write.
        """
        if self.disconnected:
            return Offer.SKIPPED
        if self.delivery.locked() and not self.core.held:
            return Offer.REPAIR  # a holder is about to run: room_event queues it behind
        decision = self.core.receive(event["room_id"], event["seq"], event)
        if decision is SEND:
            return SENT if self.frames is not None and self.frames.write(frame) else Offer.SLOW
        if decision is Step.SKIP or decision is Step.DEFER:
            return Offer.SKIPPED
        return Offer.REPAIR

    async def send_text(self, text: str) -> None:
        """An event the core decided to send, the ASGI way."""
        try:
            await self.send(text_data=text)
        except Exception:
            log.exception("room event send failed on connection=%s", self.connection_id)
            return
        metrics.record_delivered()

    async def room_event(self, event: dict[str, Any]) -> None:
        """One room event from the fan-out, the ordinary way (a sequenced event with work to
        do first, or any other event). Never blocks on this socket's other work: while a
        join or a catch-up holds `delivery`, the core keeps the event back."""
        if self.disconnected or not hasattr(self, "delivery"):
            return
        if self.delivery.locked():
            self.core.defer(event.get("room_id"), event.get("seq"), event)
            return
        try:
            async with self.delivering():
                await self._room_event(event)
        except Exception:
            log.exception("room event %s failed on connection=%s", event.get("type"), self.connection_id)

    @contextlib.asynccontextmanager
    async def delivering(self) -> Any:
        """Hold `delivery` (and the core); before letting go, handle the events kept back."""
        async with self.delivery:
            self.core.hold()
            try:
                yield
            finally:
                while (deferred := self.core.next_deferred()) is not None and not self.disconnected:
                    await self._room_event(deferred[2])
                while self.core.next_deferred() is not None:
                    pass  # closed meanwhile: nothing more is sent
                self.core.release()

    async def _room_event(self, event: dict[str, Any]) -> None:
        """Handle one room event by its layer type. Hold `delivery`."""
        kind = event.get("type")
        if kind == ROOM_EVENT:
            await self._on_sequenced(event)
            return
        handler = self._control_handlers.get(kind)
        if handler is not None:
            await handler(self, event)

    async def _on_sequenced(self, event: dict[str, Any]) -> None:
        """A room event with its own seq: execute the core's decision. Hold `delivery`."""
        room_id: str = event["room_id"]
        decision = self.core.decide(room_id, event["seq"])
        if isinstance(decision, Repair | Resync):
            if not await self._execute(decision):
                return
            decision = self.core.decide(room_id, event["seq"])
        if decision is Step.SEND:
            await self.send(text_data=event["text"])
            metrics.record_delivered()

    async def _execute(self, decision: Repair | Resync) -> bool:
        """Repair a gap from the store, or resync the room past the cap; False when the
        socket can no longer go on in the room (closed, or resynced). Hold `delivery`."""
        room_id = decision.room_id
        if isinstance(decision, Resync):
            await self._resync(room_id)
            return False
        try:
            missed = await services.events_missed(room_id=room_id, after_seq=decision.after, up_to_seq=decision.up_to)
        except ChatError:
            # Cannot repair now: close so the client resumes from its last seq.
            await self.close(code=CloseCode.INTERNAL_ERROR)
            return False
        for missed_event in missed:
            if self.core.replayed(room_id, missed_event.seq):
                await self.send(text_data=protocol.encode(missed_event.frame))
                metrics.record_delivered()
        self.core.repaired(room_id, decision.up_to)
        return True

    async def _resync(self, room_id: str) -> None:
        """Past the gap cap: the room's current state, `recovered: false`, as a resume past
        the replay cap gets it (clients reload the room). Hold `delivery`."""
        assert self.identity is not None
        cursor = self.core.cursors.get(room_id)
        try:
            result = await services.room_join(
                room_id=room_id, member=self, last_seq=cursor, identity=self.identity, already_joined=True
            )
        except ChatError:
            await self.close(code=CloseCode.INTERNAL_ERROR)
            return
        self.core.join(room_id, result.last_seq)
        metrics.record_join(last_seq=cursor, recovered=result.recovered)
        await self.send_joined(room_id, result)

    async def send_joined(self, room_id: str, result: services.JoinResult) -> None:
        await self.send_frame(
            protocol.joined_frame(
                room_id,
                result.last_seq,
                result.messages,
                recovered=result.recovered,
                room=result.room,
                removed=result.removed,
                room_events=result.events,
            )
        )

    # The connection keeper (chat.connections) ----------------------------------------------

    def joined_rooms(self) -> list[str]:
        core: SocketDelivery | None = getattr(self, "core", None)
        return core.rooms() if core is not None else []

    async def catch_up(self, *, fresh: bool) -> None:
        """Send what the store has past this socket's cursors: a lost tail, or an outage's
        losses. `fresh` reads each room's seq now instead of a second-old cached one."""
        local = connections.local_sockets()
        for room_id in self.joined_rooms():
            last_seq = await local.room_last_seq(room_id, fresh=fresh)
            async with self.delivering():
                decision = self.core.behind(room_id, last_seq)
                if isinstance(decision, Repair | Resync):
                    await self._execute(decision)
