"""A socket's side of presence and typing: mixed into the consumer (chat.consumers).

Handles the `typing` and `presence` actions, reports the socket's presence as it opens,
joins and leaves rooms, turns idle and closes (chat.presence), and takes the ephemeral
events the fan-out offers (chat.fanout): written as ready-made bytes like room messages,
with no seq and no lock, since nothing about them needs ordering or repair. A presence
event reaches a socket once per change of that user, however many rooms they share.

Only sockets that have sent a `presence` action receive typing and presence frames: a
client that shows them says so first (docs/protocol.md), and a client written before them
(a v1 client, a bot, a test reading frames in order) never sees a frame it does not expect.
Every socket counts towards its user's presence either way.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from accounts.identity import Identity
from chat import protocol
from chat.daphne_adapt.frames import FrameWriter, text_frame
from chat.delivery import SocketDelivery
from chat.errors import ChatError, ErrorCode
from chat.fanout import Offer
from chat.groups import MEMBER_PRESENCE_EVENT, PRESENCE_EVENT
from chat.presence import fellows_present, local_presence, presence_key, present_in
from chat.presence_rules import ACTIVE, CLOSED, IDLE, presence_frame
from chat.typing_service import typing_send

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

    if TYPE_CHECKING:

        def joined_rooms(self) -> list[str]: ...

        async def send_frame(self, frame: dict[str, Any]) -> None: ...

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
        known = self._presence_known
        if known is None:
            known = self._presence_known = {}
        snapshot = []
        for user_id, presence in (await present_in(room_id)).items():
            key = presence_key(presence)
            if user_id != self.identity.user_id and known.get(user_id) != key:
                known[user_id] = key
                snapshot.append(presence_frame(user_id, presence))
        await self._send_snapshot(snapshot)

    async def _send_snapshot(self, snapshot: list[dict[str, Any]]) -> None:
        """A snapshot's presence frames in one write: a socket that joins a room of 100
        gets up to 99 of them, and one system call each was most of what asking for
        presence cost a connect (docs/performance.md). The ASGI way, one by one, when the
        socket cannot take bytes now."""
        if not snapshot:
            return
        if self.frames is not None and self.frames.write(
            b"".join(text_frame(protocol.encode(frame)) for frame in snapshot)
        ):
            return
        for frame in snapshot:
            await self.send_frame(frame)

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
        known = self._presence_known
        if known is None:
            known = self._presence_known = {}
        snapshot = []
        for user_id, presence in (await fellows_present(self.identity.user_id)).items():
            key = presence_key(presence)
            if known.get(user_id) != key:
                known[user_id] = key
                snapshot.append(presence_frame(user_id, presence))
        await self._send_snapshot(snapshot)

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

    def offer_ephemeral(self, event: dict[str, Any], frame: bytes) -> Offer:
        """Write a typing or presence event's ready-made frame, or say how else to send it.
        Never the user's own events; a presence change once per socket."""
        identity = self.identity
        if (
            not self.ephemeral_wanted
            or self.disconnected
            or identity is None
            or event.get("user_id") == identity.user_id
        ):
            return Offer.SKIPPED
        room_id = event.get("room_id")  # none on a co-member's presence: it is for this user
        if room_id is not None and not self.core.joined(room_id):
            return Offer.SKIPPED
        if event["type"] in (PRESENCE_EVENT, MEMBER_PRESENCE_EVENT):
            known = self._presence_known
            if known is None:
                known = self._presence_known = {}
            if known.get(event["user_id"]) == event["key"]:
                return Offer.SKIPPED
            known[event["user_id"]] = event["key"]
        return Offer.SENT if self.frames is not None and self.frames.write(frame) else Offer.SLOW
