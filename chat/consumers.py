"""The WebSocket edge: authenticate, parse a frame, call a service, hand events to delivery.

What a socket does is in modules of their own, each a plain function or a small part of
the socket, and this class puts them together:

- chat.signin: the connect path (identify from the handshake or a first `authenticate`
  frame, register), the token's expiry and refresh, the refusals (4401, 4403, 4429);
- chat.commands: a table from parsed command (chat.protocol) to the handler that calls a
  service and answers;
- chat.socket_delivery and chat.delivery: room events, through the socket's delivery core;
- chat.socket_events: what the server pushes that is not a room delivery (a ban, access
  that ended, a lost role, a room turned private);
- chat.ephemeral: presence and typing.

No storage logic and no business rules live here. Every error a handler raises becomes an
error frame in one place (`receive`); the socket stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer

from accounts.identity import Identity
from accounts.socket_auth import SocketAuth
from chat import connections, metrics, protocol, services, socket_events
from chat.commands import COMMANDS, internal_error_for
from chat.daphne_adapt.frames import FrameWriter, text_frame
from chat.ephemeral import EphemeralSocket
from chat.errors import ChatError, ErrorCode
from chat.protocol import CloseCode
from chat.ratelimit import RateLimited, SocketLimits
from chat.signin import SocketOpening
from chat.socket_delivery import RoomDelivery
from chatsite.ops import logs

log = logging.getLogger(__name__)


class ChatConsumer(SocketOpening, AsyncWebsocketConsumer, RoomDelivery, EphemeralSocket):
    """One WebSocket. The connect path is `SocketOpening`'s (chat.signin): it comes first,
    so its `connect` is the one Channels calls, not AsyncWebsocketConsumer's."""

    identity: Identity | None = None
    connection_id: str | None = None
    disconnected = False
    auth: SocketAuth | None = None  # the first-frame deadline and the token's expiry (accounts.socket_auth)
    tail_check: asyncio.Task[None] | None = None  # the heartbeat's store check (chat.commands.ping)
    # The newest command answered apart from the frame loop: the next waits for it. It holds
    # its predecessor in turn, so every pending one is referenced from here.
    answered_last: asyncio.Task[None] | None = None
    rate: SocketLimits  # this socket's rate limits, once its user is known
    refused = False  # closed with 4401 or 4403; frames still in flight are ignored
    in_user_group = False  # reached through its user's group (a ban closes it through there)
    frames: FrameWriter | None = None  # writes the fan-out's ready-made frames (daphne only)
    cleaning_up: asyncio.Future[None] | None = None  # disconnect()'s cleanup, which no cancellation stops

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self._serve(scope, receive, send)
        except asyncio.CancelledError:
            # daphne cancels every open socket's application on SIGTERM and then drops
            # the TCP connection: close with 1001 first so the client resumes elsewhere.
            if not self.disconnected:
                await connections.going_away(
                    close=lambda code: self.close(code=code),
                    receive=receive,
                    cleanup=lambda: self.disconnect(CloseCode.GOING_AWAY),
                )
            raise

    async def _serve(self, scope: Any, receive: Any, send: Any) -> None:
        """Channels' AsyncConsumer.__call__, without a channel-layer channel of its own.

        A Channels consumer gets a channel per socket and waits on it and on the client with
        two tasks (await_many_dispatch), re-created after every event. Chatsite reaches its
        sockets through the process's fan-out instead (chat.fanout: rooms, and a user's
        sockets for a ban), so a socket needs no channel, no subscription in the layer
        (with Redis, a SUBSCRIBE per socket), and no task beyond its own: it reads the client.
        """
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        with contextlib.suppress(StopConsumer):
            while True:
                await self.dispatch(await receive())

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch without its per-event thread-pool round trip.

        Channels awaits `aclose_old_connections()` before every handler, so that ORM code in
        it never uses a stale database connection: a hop to the sync thread and back for
        every client frame, measured at 30-45 % of a consumer's CPU. Here every database
        call on a socket's path already closes stale connections around itself, in the
        thread that uses them (`database_sync_to_async`, and `services._store_call`).
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"no handler for message type {message['type']}")
        await handler(message)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        """AsyncWebsocketConsumer's, without its group discards (a socket here has no channel
        and no `groups`) and without its trip to the sync thread for `close_old_connections`
        after the cleanup: one more trip per close, thousands queued behind each other when a
        stopping process closes its sockets (the cleanup's own calls close stale connections)."""
        await self.disconnect(message["code"])
        raise StopConsumer()

    async def disconnect(self, code: int) -> None:
        if self.disconnected:
            if self.cleaning_up is not None:
                await asyncio.shield(self.cleaning_up)
            return
        self.disconnected = True
        metrics.record_disconnect(accepted=self.connection_id is not None)
        logs.connection_closed(code)
        if self.auth is not None:
            self.auth.close()
        if self.tail_check is not None and self.tail_check is not asyncio.current_task():
            self.tail_check.cancel()
        # A task of its own, shielded: daphne cancels every application on SIGTERM, and a socket
        # closing just then was cancelled halfway through its cleanup, leaving its connection row
        # behind (counted as an open socket until its ttl; seen on PostgreSQL, 1 stop in 5).
        self.cleaning_up = asyncio.ensure_future(self._clean_up())
        await asyncio.shield(self.cleaning_up)

    async def _clean_up(self) -> None:
        """Leave presence, rooms and the user's group, delete the connection row; discard last."""
        try:
            if self.connection_id is not None:
                await self.presence_closed()
            for room_id in self.joined_rooms():
                await services.room_leave(room_id=room_id, member=self)
            if self.in_user_group and self.identity is not None:
                await services.user_unsubscribe(user_id=self.identity.user_id, member=self)
            if self.connection_id is not None:
                await services.connection_close(connection_id=self.connection_id)
        finally:
            # Last: a draining process waits for this, so the row is gone before it exits.
            connections.local_sockets().discard(self)

    # Client frames ----------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.refused or self.disconnected:  # disconnected: released by a stopping process (release())
            return
        if self.identity is None:
            await self._authenticate_first(text_data, bytes_data)
            return
        if self.connection_id is None:
            return
        command: protocol.Command | None = None
        try:
            command = await self._parse_within_limits(text_data, bytes_data)
            logs.bind(room_id=getattr(command, "room_id", None))
            handler = COMMANDS[type(command)]
            await self.presence_touch(command)
            await handler(self, command)
        except Exception as error:
            await self._answer_failure(command, error)

    async def _answer_failure(self, command: protocol.Command | None, error: Exception) -> None:
        """A command that failed gets its error frame: the domain's, or internal_error."""
        if isinstance(error, ChatError):
            metrics.record_error(error.code.value)
            await self.send_frame(protocol.error_frame(error))
            if isinstance(error, RateLimited) and self.rate.struck_out():
                await self.too_many(None)  # it keeps going: 4429
            return
        metrics.record_error(ErrorCode.INTERNAL_ERROR.value)
        log.error("unhandled error in a client frame, connection=%s", self.connection_id, exc_info=error)
        await self.send_frame(protocol.error_frame(internal_error_for(command)))

    def answer_apart(self, command: protocol.Command, answer: Awaitable[None]) -> None:
        """Answer `command` in a task of its own, so the socket's next frames are not held
        behind it: a markRead waits for its batch (unread.services gathers them), and a reply
        sent just after it waited that long too. Errors are answered as `receive` answers
        them (to a closed socket daphne drops the frame; an unexpected failure is logged
        either way). The task outlives the socket, as the frame loop's handler did: a mark
        read just before the tab closes is still stored and told to the user's other sockets."""

        # One after another among themselves, as on the frame loop: two markReads of one
        # socket never share a batch, and each gets its own answer, in order.
        previous = self.answered_last

        async def run() -> None:
            if previous is not None:
                await asyncio.wait([previous])
            try:
                await answer
            except Exception as error:
                await self._answer_failure(command, error)

        self.answered_last = asyncio.get_running_loop().create_task(run())

    async def _parse_within_limits(self, text_data: str | None, bytes_data: bytes | None) -> protocol.Command:
        """Parse a frame once the socket's rate limits have counted it: a flood of frames,
        valid or not, is refused before it costs a store call."""
        try:
            command = protocol.parse_client_frame(text_data, self.limits, binary=bytes_data is not None)
        except ChatError:
            await self.rate.check_frame(None)  # a refusal answers instead of the parse error
            raise
        await self.rate.check_frame(command)
        return command

    # Events the server pushes (chat.socket_events) -----------------------------------------
    #
    # Plain functions of the socket, bound here as its methods: the fan-out's call reaches
    # the handler directly. A room's control events (no seq) run behind `delivery`
    # (chat.socket_delivery); every room change proper is a room event with its own seq.

    _control_handlers = socket_events.CONTROL_EVENTS
    user_event = socket_events.user_event
    end_access = socket_events.end_access

    # The connection keeper (chat.connections) ----------------------------------------------

    def session_key(self) -> str | None:
        return self.identity.session_key if self.identity is not None else None

    async def go_away(self) -> None:
        """The process is shutting down: the client should resume on another one."""
        await self.close(code=CloseCode.GOING_AWAY)

    async def release(self) -> None:
        """The process is stopping and this client never answered its 1001: clean up now."""
        await self.disconnect(CloseCode.GOING_AWAY)

    async def send_frame(self, frame: dict[str, Any]) -> None:
        """A frame for this socket alone (an answer, an error): straight to daphne's socket
        when its writer takes it (chat.daphne_adapt.frames), as the fan-out's frames go; the
        ASGI way costs about 0.1 ms of CPU more per frame, which a markRead a second per
        reader pays as often as a small room's deliveries (docs/performance.md "Read state")."""
        text = protocol.encode(frame)
        if self.frames is not None and self.frames.write(text_frame(text)):
            return
        await self.send(text_data=text)
