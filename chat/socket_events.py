"""What a socket does with the events the server pushes to it that are not room deliveries.

Two kinds reach a socket this way (chat.fanout, sent by chat.broadcast):

- its user's events, through the user's group: a ban (4403), access that ended
  (accounts.revocation: sign-out, password change, deactivation; 4401 or 4403), a lost
  role (leave the rooms it may no longer read), a change to the user's room list
  (chat.people), and read state from the user's other sockets;
- a room's control events, which take no seq and change no room, handled behind the
  socket's delivery like room events (chat.socket_delivery): a room turned private, a read
  receipt.

Every room change proper (a removal, new settings, ...) is a room event with its own seq
and goes through the delivery core instead; these only act on the socket. The handlers are
plain functions of the socket (`EventSocket`); the rules that decide whether an event
concerns this socket (`is_for_user`, `ends_access_here`) are pure.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from accounts.identity import Identity, identity_now
from accounts.revocation import session_digest
from chat import protocol, services
from chat.delivery import SocketDelivery
from chat.fanout import RoomMember
from chat.groups import (
    READ_RECEIPT_EVENT,
    ROOM_ACCESS_EVENT,
    USER_ACCESS_ENDED_EVENT,
    USER_BANNED_EVENT,
    USER_FRAME_EVENT,
    USER_READ_STATE_EVENT,
    USER_ROLES_CHANGED_EVENT,
)
from chat.protocol import CloseCode

log = logging.getLogger(__name__)


class EventSocket(RoomMember, Protocol):
    """What these handlers need of a socket (chat.consumers.ChatConsumer)."""

    identity: Identity | None
    connection_id: str | None
    core: SocketDelivery
    disconnected: bool
    refused: bool

    def delivering(self) -> AbstractAsyncContextManager[Any]: ...

    def joined_rooms(self) -> list[str]: ...

    async def send(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None: ...

    async def send_frame(self, frame: dict[str, Any]) -> None: ...

    async def presence_rooms_changed(self, joined: str | None = None) -> None: ...

    async def refuse(self) -> None: ...

    async def forbid(self, notice: dict[str, Any] | None = None) -> None: ...


EventHandler = Callable[[EventSocket, dict[str, Any]], Awaitable[None]]


# The rules --------------------------------------------------------------------------------


def is_for_user(identity: Identity | None, event: dict[str, Any]) -> bool:
    """A user's event concerns a signed-in socket of that very user (the group is the user's,
    but a socket whose identity changed keeps no claim on another's events)."""
    return identity is not None and event.get("user_id") == identity.user_id


def ends_access_here(identity: Identity, event: dict[str, Any]) -> bool:
    """Access that ended reaches every socket of the user, unless the event names one
    sign-in: a session (by its digest, accounts.revocation) or a token's origin; then only
    the sockets that live on it."""
    session, origin = event.get("session"), event.get("token_origin")
    if session is not None and (identity.session_key is None or session_digest(identity.session_key) != session):
        return False
    return origin is None or identity.token_origin == origin


# The user's events (chat.fanout's user groups) ---------------------------------------------


async def user_event(socket: EventSocket, event: dict[str, Any]) -> None:
    """An event for this socket's user from the fan-out: a ban closes it with 4403, access
    that ended (accounts.revocation) with its close code, a lost role leaves rooms."""
    handler = USER_EVENTS.get(event.get("type"))
    if handler is None or not is_for_user(socket.identity, event):
        return
    try:
        await handler(socket, event)
    except Exception:
        log.exception("user event %s failed on connection=%s", event.get("type"), socket.connection_id)


async def banned(socket: EventSocket, event: dict[str, Any]) -> None:
    if not socket.disconnected:
        log.info("banned: closing connection=%s with 4403", socket.connection_id)
        await socket.forbid(event.get("notice"))


async def access_ended(socket: EventSocket, event: dict[str, Any]) -> None:
    """Signed out (only the session or token sign-in the event names, if it names one),
    password changed, deactivated or deleted: close with the event's code (4401 or 4403)."""
    assert socket.identity is not None
    if ends_access_here(socket.identity, event):
        await end_access(socket, event["close_code"])


async def end_access(socket: EventSocket, close_code: int) -> None:
    """Close because this socket's access ended: 4403 (the account is gone) or 4401 (sign in again)."""
    if socket.disconnected or socket.refused:
        return
    log.info("access ended: closing connection=%s with %d", socket.connection_id, close_code)
    if close_code == CloseCode.FORBIDDEN:
        await socket.forbid()
    else:
        await socket.refuse()


async def roles_changed(socket: EventSocket, event: dict[str, Any]) -> None:
    """A role was lost: read who this user is now, and leave the rooms they may no longer read."""
    assert socket.identity is not None
    current = await identity_now(socket.identity)
    if current is None:
        await end_access(socket, CloseCode.UNAUTHORIZED)
        return
    socket.identity = current
    for room_id in socket.joined_rooms():
        if not await services.room_access(room_id=room_id, identity=current):
            async with socket.delivering():
                await leave_by_server(socket, room_id, reason="removed")


async def user_frame(socket: EventSocket, event: dict[str, Any]) -> None:
    """A change to this user's room list (chat.people): pass the frame on; a room they
    are no longer in is left at once on every socket of theirs."""
    if socket.disconnected or socket.refused:
        return
    await socket.send(text_data=event["text"])
    room_id = event.get("leave_room")
    if isinstance(room_id, str) and socket.core.joined(room_id):
        async with socket.delivering():
            await leave_by_server(socket, room_id, reason="removed")


async def read_state(socket: EventSocket, event: dict[str, Any]) -> None:
    """The user's read state changed on another socket (any process): tabs stay in step."""
    if event.get("origin") != socket.connection_id:
        await socket.send_frame(event["frame"])


USER_EVENTS: dict[Any, EventHandler] = {
    USER_FRAME_EVENT: user_frame,
    USER_BANNED_EVENT: banned,
    USER_ACCESS_ENDED_EVENT: access_ended,
    USER_ROLES_CHANGED_EVENT: roles_changed,
    USER_READ_STATE_EVENT: read_state,
}


# A room's control events (behind the socket's delivery, chat.socket_delivery) -------------


async def room_access(socket: EventSocket, event: dict[str, Any]) -> None:
    """The room turned private (its roomUpdated event came first): a non-member's
    socket leaves it."""
    room_id: str = event["room_id"]
    if not socket.core.joined(room_id) or socket.identity is None:
        return
    if not await services.room_access(room_id=room_id, identity=socket.identity):
        await leave_by_server(socket, room_id, reason="private")


async def read_receipt(socket: EventSocket, event: dict[str, Any]) -> None:
    if socket.core.joined(event["room_id"]):
        await socket.send_frame(event["frame"])


CONTROL_EVENTS: dict[Any, EventHandler] = {
    ROOM_ACCESS_EVENT: room_access,
    READ_RECEIPT_EVENT: read_receipt,
}


async def leave_by_server(socket: EventSocket, room_id: str, *, reason: str) -> None:
    """Leave a room by the server's decision. Hold the socket's delivery."""
    if not socket.core.leave(room_id):
        return
    await services.room_leave(room_id=room_id, member=socket)
    await socket.send_frame(protocol.left_frame(room_id, reason=reason))
    # The user's presence leaves the room with the socket, now: those still there no
    # longer see them present (a join's snapshot) nor hear of their changes through it.
    await socket.presence_rooms_changed()
