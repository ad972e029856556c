"""A socket's side of presence and typing: mixed into the consumer (chat.consumers).

Handles the `typing` and `presence` actions, reports the socket's presence as it opens,
joins and leaves rooms, turns idle and closes (chat.presence), and takes the ephemeral
events the fan-out offers (chat.fanout): written as ready-made bytes like room messages,
with no seq and no lock, since nothing about them needs ordering or repair. A presence
event reaches a socket once per change of that user, however many rooms they share, and
the changes of one window (CHAT_PRESENCE_BATCH_SECONDS) reach it in one frame: when a room
connects at once, each watcher gets a frame per window rather than one per user.

Only sockets that have sent a `presence` action receive typing and presence frames: a
client that shows them says so first (docs/protocol.md), and a client written before them
(a v1 client, a bot, a test reading frames in order) never sees a frame it does not expect.
Every socket counts towards its user's presence either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from django.conf import settings

from accounts.identity import Identity
from chat import protocol
from chat.daphne_adapt.frames import FrameWriter, text_frame
from chat.delivery import SocketDelivery
from chat.errors import ChatError, ErrorCode
from chat.fanout import Offer
from chat.presence import fellows_present, local_presence, presence_key, present_in
from chat.presence_rules import ACTIVE, CLOSED, IDLE, presence_batch, presence_frame
from chat.typing_service import typing_send

_sending: set[asyncio.Task[None]] = set()  # held until done: the loop keeps only weak references

# Frames that say nothing about the user being there: the client's heartbeat and tokens.
_NOT_ACTIVITY = (protocol.Ping, protocol.Authenticate, protocol.RefreshToken, protocol.SetPresence)


class EphemeralSocket:
    """Presence and typing of one socket. Mixed into ChatConsumer."""

    core: SocketDelivery
    frames: FrameWriter | None
    identity: Identity | None
    connection_id: str | None
    disconnected: bool
    presence_state: str = ACTIVE
    presence_hidden = False  # the client said "away" (its tab is hidden)
    ephemeral_wanted = False  # the client sent `presence`: it shows typing and presence
    last_active = 0.0
    _presence_known: dict[str, str] | None = None  # user id -> the last change this socket got
    _presence_pending: dict[str, str] | None = None  # user id -> their latest change's frame, unwritten
    _presence_flush: asyncio.TimerHandle | None = None

    if TYPE_CHECKING:

        def joined_rooms(self) -> list[str]: ...

        async def send_frame(self, frame: dict[str, Any]) -> None: ...

        async def send(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None: ...

    def presence_user(self) -> str | None:
        return self.identity.user_id if self.identity is not None else None

    # Reports (chat.presence) ------------------------------------------------------------

    async def presence_opened(self) -> None:
        self.last_active = time.monotonic()
        await local_presence().report(self)

    async def presence_rooms_changed(self, joined: str | None = None) -> None:
        """After a join or a leave: the room's members learn this user is there, and a
        socket that `joined` learns who else is (one frame per user, the changes follow)."""
        await local_presence().report(self)
        if joined is not None:
            await self._presence_snapshot(joined)

    async def _presence_snapshot(self, room_id: str) -> None:
        """The presence of everyone with a live socket in the room, once per user."""
        if self.identity is None or not self.ephemeral_wanted:
            return
        for user_id, presence in (await present_in(room_id)).items():
            if user_id != self.identity.user_id and self._learns(user_id, presence_key(presence)):
                self._queue_presence(user_id, protocol.encode(presence_frame(user_id, presence)))
        self._flush_presence()

    def _learns(self, user_id: str, key: str) -> bool:
        """Whether `key` is news to this socket about `user_id` (then it is noted): a socket
        gets each change of a user once, however many ways it comes."""
        known = self._presence_known
        if known is None:
            known = self._presence_known = {}
        if known.get(user_id) == key:
            return False
        known[user_id] = key
        return True

    def _queue_presence(self, user_id: str, text: str) -> None:
        """A change of `user_id`'s presence for this socket, written with the window's others:
        a user's latest change replaces an unwritten one."""
        pending = self._presence_pending
        if pending is None:
            pending = self._presence_pending = {}
        pending.pop(user_id, None)
        pending[user_id] = text
        if self._presence_flush is None:
            delay = settings.CHAT_PRESENCE_BATCH_SECONDS
            if delay <= 0:
                self._flush_presence()
                return
            self._presence_flush = asyncio.get_running_loop().call_later(delay, self._flush_presence)

    def _flush_presence(self) -> None:
        """The pending changes in one frame (a snapshot: at once). Straight to daphne's
        socket when its writer takes the bytes, else the ASGI way in a task of its own."""
        if self._presence_flush is not None:
            self._presence_flush.cancel()
            self._presence_flush = None
        pending, self._presence_pending = self._presence_pending, None
        if not pending or self.disconnected:
            return
        text = presence_batch(list(pending.values()))
        if self.frames is not None and self.frames.write(text_frame(text)):
            return
        task = asyncio.get_running_loop().create_task(self._send_presence(text))
        _sending.add(task)
        task.add_done_callback(_sending.discard)

    async def _send_presence(self, text: str) -> None:
        with contextlib.suppress(Exception):  # a socket closing meanwhile: nothing to tell
            await self.send(text_data=text)

    async def presence_closed(self) -> None:
        await local_presence().report(self, CLOSED)

    async def presence_touch(self, command: protocol.Command) -> None:
        """A client frame: activity, unless it is the heartbeat or a token."""
        if isinstance(command, _NOT_ACTIVITY):
            return
        self.last_active = time.monotonic()
        if self.presence_state == IDLE and not self.presence_hidden:
            self.presence_state = ACTIVE
            await local_presence().report(self)

    # Actions ----------------------------------------------------------------------------

    async def on_typing(self, command: protocol.Typing) -> None:
        assert self.identity is not None
        if not self.core.joined(command.room_id):
            raise ChatError(
                ErrorCode.NOT_JOINED, "join the room before typing in it", action="typing", room_id=command.room_id
            )
        await typing_send(identity=self.identity, room_id=command.room_id)

    async def _fellows_snapshot(self) -> None:
        """The presence of everyone who shares a room membership with this user and is not
        offline, once per user: the changes that follow reach this socket whether or not
        it has the room open (chat.presence.announce)."""
        if self.identity is None:
            return
        for user_id, presence in (await fellows_present(self.identity.user_id)).items():
            if self._learns(user_id, presence_key(presence)):
                self._queue_presence(user_id, protocol.encode(presence_frame(user_id, presence)))
        self._flush_presence()

    async def on_presence(self, command: protocol.SetPresence) -> None:
        if not self.ephemeral_wanted:
            self.ephemeral_wanted = True
            for room_id in self.joined_rooms():
                await self._presence_snapshot(room_id)
            await self._fellows_snapshot()
        self.presence_hidden = command.status == "away"
        if self.presence_hidden:
            state = IDLE
        else:
            self.last_active = time.monotonic()
            state = ACTIVE
        if state != self.presence_state:
            self.presence_state = state
            await local_presence().report(self)

    # Events from the fan-out ------------------------------------------------------------

    def _wants(self, event: dict[str, Any]) -> bool:
        """Never the user's own events, nor a room's this socket has not joined."""
        identity = self.identity
        if (
            not self.ephemeral_wanted
            or self.disconnected
            or identity is None
            or event.get("user_id") == identity.user_id
        ):
            return False
        room_id = event.get("room_id")  # none on a co-member's presence: it is for this user
        return room_id is None or self.core.joined(room_id)

    def offer_ephemeral(self, event: dict[str, Any], frame: bytes) -> Offer:
        """Write a typing event's ready-made frame, or say how else to send it."""
        if not self._wants(event):
            return Offer.SKIPPED
        return Offer.SENT if self.frames is not None and self.frames.write(frame) else Offer.SLOW

    def offer_presence(self, event: dict[str, Any]) -> None:
        """A presence change (PRESENCE_EVENT or MEMBER_PRESENCE_EVENT), once per change of
        that user, written with the window's others."""
        if self._wants(event) and self._learns(event["user_id"], event["key"]):
            self._queue_presence(event["user_id"], event["text"])
