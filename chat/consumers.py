"""The WebSocket edge: authenticate, parse a frame, call a service, hand events to delivery.

Room events go through the socket's delivery core (chat.delivery), whose decisions
`chat.socket_delivery.RoomDelivery` executes. No storage logic and no business rules live
here. Every error a handler raises becomes an error frame in one place (`receive`); the
socket stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from accounts.identity import AuthenticationFailed, Identity, identify, identity_now
from accounts.revocation import session_digest
from accounts.socket_auth import NO_AUTHENTICATE_FRAME, Reason, SocketAuth
from chat import (
    connections,
    message_changes,
    metrics,
    moderation,
    people,
    people_protocol,
    protocol,
    reactions,
    services,
)
from chat.daphne_adapt.frames import FrameWriter, writer
from chat.delivery import SocketDelivery
from chat.ephemeral import EphemeralSocket
from chat.errors import ChatError, ErrorCode
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
from chat.quota import QuotaExceeded
from chat.ratelimit import RateLimited, SocketLimits, check_address
from chat.socket_delivery import RoomDelivery
from chatsite.ops import logs
from unread import services as unread

log = logging.getLogger(__name__)


class ChatConsumer(AsyncWebsocketConsumer, RoomDelivery, EphemeralSocket):
    identity: Identity | None = None
    connection_id: str | None = None
    disconnected = False
    auth: SocketAuth | None = None  # the first-frame deadline and the token's expiry (accounts.socket_auth)
    tail_check: asyncio.Task[None] | None = None  # the heartbeat's store check (on_ping)
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

    async def connect(self) -> None:
        # Accept before closing so a browser sees 4401 rather than an anonymous 1006.
        await self.accept(subprotocol=protocol.select_subprotocol(list(self.scope.get("subprotocols") or [])))
        if connections.draining():
            await self.close(code=CloseCode.GOING_AWAY)
            return
        try:
            await check_address(self.scope)  # before any credential is looked at
        except RateLimited as limited:
            await self.too_many(limited)
            return
        # The delivery core (chat.delivery): a cursor per joined room, and the backlog that
        # keeps room events back while `delivery` is held (chat.socket_delivery).
        self.core = SocketDelivery(gap_cap=settings.CHAT_REPLAY_CAP)
        self.delivery = asyncio.Lock()
        self.frames = writer(self.scope)
        self.limits = protocol.Limits(
            max_frame_bytes=settings.CHAT_MAX_FRAME_BYTES,
            max_message_length=settings.CHAT_MAX_MESSAGE_LENGTH,
            max_attachments=settings.CHAT_MAX_ATTACHMENTS,
        )
        self.auth = SocketAuth(
            ran_out=self._auth_ran_out,
            first_frame_timeout=settings.CHAT_AUTH_TIMEOUT,
            leeway=settings.AUTH_TOKEN_LEEWAY,
        )
        try:
            identity = await identify(self.scope)
        except AuthenticationFailed:
            await self.refuse()
            return
        if identity is None:
            # Nothing in the handshake: the first frame must be `authenticate`, in time.
            self.auth.await_first_frame()
            return
        await self._open(identity, announce=identity.expires_at is not None)

    async def _open(self, identity: Identity, *, announce: bool) -> None:
        self.identity = identity
        self.rate = SocketLimits(user_id=identity.user_id, exempt=identity.is_moderator or identity.is_bot)
        try:
            await self.rate.check_connect()
        except RateLimited as limited:
            await self.too_many(limited)
            return
        local = connections.local_sockets()
        try:
            await local.prepare()
            # Into the user's group before the ban check: a ban between the two still
            # reaches this socket.
            await services.user_subscribe(user_id=identity.user_id, member=self)
            self.in_user_group = True
            notice = await services.user_ban_notice(user_id=identity.user_id)
            if notice is not None:
                await self.forbid(notice)
                return
            async with local.opening():
                record = await services.connection_open(identity=identity)
                self.connection_id = record.connection_id
                await local.add(self, record)
        except QuotaExceeded as over:
            await self.too_many(over)  # too many open sockets for this user: 4429
            return
        except ChatError:
            metrics.record_connection("failed")
            await self.close(code=CloseCode.INTERNAL_ERROR)
            return
        metrics.record_connection("accepted")
        logs.bind_connection(self.scope, connection_id=record.connection_id, user_id=identity.user_id)
        await self.presence_opened()
        self._identified()
        if announce:
            await self.send_frame(self._authenticated_frame())

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
            handler = self._handlers[type(command)]
            await self.presence_touch(command)
            await handler(self, command)
        except ChatError as error:
            metrics.record_error(error.code.value)
            await self.send_frame(protocol.error_frame(error))
            if isinstance(error, RateLimited) and self.rate.struck_out():
                await self.too_many(None)  # it keeps going: 4429
        except Exception:
            metrics.record_error(ErrorCode.INTERNAL_ERROR.value)
            log.exception("unhandled error in a client frame, connection=%s", self.connection_id)
            internal = ChatError(ErrorCode.INTERNAL_ERROR, "internal error, retry shortly")
            if command is not None:
                # Answer the frame, so a client can fail (and retry) that very send.
                internal.action = protocol.action_of(command)
                internal.client_message_id = getattr(command, "client_message_id", None)
                internal.room_id = getattr(command, "room_id", None)
            await self.send_frame(protocol.error_frame(internal))

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

    async def too_many(self, limited: ChatError | None) -> None:
        """Over a rate limit for good: the last error frame, then close with 4429."""
        if self.connection_id is None:
            metrics.record_connection("rate_limited")
        if limited is not None:
            metrics.record_error(limited.code.value)
            await self.send_frame(protocol.error_frame(limited))
        self.refused = True
        await self.close(code=CloseCode.TOO_MANY_REQUESTS)

    async def on_send(self, command: protocol.SendMessage) -> None:
        assert self.identity is not None and self.connection_id is not None
        if command.legacy and not self.core.joined(command.room_id):
            # A client of the AWS original never joins: join it to the default room so it
            # receives the room's messages from now on, as it would there.
            await self._join(command.room_id, last_seq=None, reply=False)
        try:
            if command.reply_to is not None:
                message = await message_changes.message_reply(
                    identity=self.identity,
                    connection_id=self.connection_id,
                    room_id=command.room_id,
                    text=command.message,
                    client_message_id=command.client_message_id,
                    reply_to=command.reply_to,
                    attachments=command.attachments,
                )
            else:
                message = await services.message_send(
                    identity=self.identity,
                    connection_id=self.connection_id,
                    room_id=command.room_id,
                    text=command.message,
                    client_message_id=command.client_message_id,
                    attachments=command.attachments,
                )
        except ChatError as error:
            error.action = error.action or protocol.action_of(command)
            error.client_message_id = command.client_message_id
            raise
        await self.send_frame(protocol.ack_frame(message))

    async def on_join(self, command: protocol.JoinRoom) -> None:
        await self._join(command.room_id, last_seq=command.last_seq, reply=True)
        await self.presence_rooms_changed(joined=command.room_id)

    async def _join(self, room_id: str, *, last_seq: int | None, reply: bool) -> None:
        assert self.identity is not None
        async with self.delivering():
            try:
                result = await services.room_join(
                    room_id=room_id,
                    member=self,
                    last_seq=last_seq,
                    identity=self.identity,
                    already_joined=self.core.joined(room_id),
                )
            except ChatError as error:
                error.action = error.action or "joinRoom"
                error.room_id = room_id
                raise
            self.core.join(room_id, result.last_seq)
            metrics.record_join(last_seq=last_seq, recovered=result.recovered)
            if reply:
                await self._send_joined(room_id, result)

    async def on_leave(self, command: protocol.LeaveRoom) -> None:
        if self.core.leave(command.room_id):
            await services.room_leave(room_id=command.room_id, member=self)
            await self.presence_rooms_changed()
        await self.send_frame(protocol.left_frame(command.room_id))

    async def on_history(self, command: protocol.History) -> None:
        assert self.identity is not None
        if command.around_seq is not None or command.after_seq is not None:
            await self.on_history_around(command)
            return
        try:
            page = await services.room_history(
                room_id=command.room_id, before_seq=command.before_seq, limit=command.limit, identity=self.identity
            )
        except ChatError as error:
            error.action = error.action or "history"
            error.room_id = command.room_id
            raise
        await self.send_frame(protocol.history_frame(command.room_id, page.messages, has_more=page.has_more))

    async def on_ping(self, command: protocol.Ping) -> None:
        """`pong` from memory, at once; then the tail check, off the ping's path.

        The client's heartbeat doubles as the tail check: a lost broadcast of a room's
        latest message has no later seq to reveal it, so compare cursors with the store.
        It used to run before the pong, so a stalled store made every client's heartbeat
        time out and reconnect (issue 24); the store's health is not the socket's.
        """
        await self.send_frame(protocol.pong_frame())
        if self.tail_check is None or self.tail_check.done():  # one at a time per socket
            self.tail_check = asyncio.create_task(self._tail_check())

    async def _tail_check(self) -> None:
        try:
            await self.catch_up(fresh=False)
        except ChatError:
            log.warning("tail check skipped: storage unavailable, connection=%s", self.connection_id)
        except Exception:
            log.exception("tail check failed on connection=%s", self.connection_id)

    async def on_token(self, command: protocol.Authenticate | protocol.RefreshToken) -> None:
        """A fresh token for this socket's user: the socket and its rooms live on to its expiry."""
        current = self.identity
        assert current is not None
        action = protocol.action_of(command)
        try:
            identity = await identify(self.scope, token=command.token)
        except AuthenticationFailed as failed:
            # The socket keeps its current expiry: the client may retry with another token.
            raise ChatError(ErrorCode.INVALID_TOKEN, f"token rejected: {failed.reason}", action=action) from None
        if identity is None or identity.user_id != current.user_id:
            log.warning("token for another user refused on connection=%s", self.connection_id)
            raise ChatError(ErrorCode.INVALID_TOKEN, "the token is for another user", action=action)
        self.identity = identity
        self._identified()
        await self.send_frame(self._authenticated_frame())

    async def on_report(self, command: protocol.ReportMessage) -> None:
        assert self.identity is not None
        try:
            await moderation.report_create(
                identity=self.identity, room_id=command.room_id, message_id=command.message_id, reason=command.reason
            )
        except ChatError as error:
            error.action = "reportMessage"
            error.room_id = command.room_id
            raise
        await self.send_frame(protocol.reported_frame(command.room_id, command.message_id))

    async def on_moderate(self, command: protocol.ModerateMessage | protocol.BanUser) -> None:
        """A moderator's message menu (docs/moderation.md): the moderation services check the
        rights (`forbidden` for anyone else), write, audit and broadcast; this answers."""
        assert self.identity is not None
        try:
            if isinstance(command, protocol.ModerateMessage):
                await moderation.message_moderate(
                    identity=self.identity,
                    room_id=command.room_id,
                    message_id=command.message_id,
                    removal=command.removal,
                    reason=command.reason,
                )
                frame = protocol.moderated_frame(command.room_id, command.message_id, command.removal)
            else:
                ban, username = await moderation.user_ban_from_chat(
                    identity=self.identity,
                    user_id=command.user_id,
                    reason=command.reason,
                    duration_seconds=command.duration_seconds,
                    room_id=command.room_id,
                    message_id=command.message_id,
                )
                frame = protocol.user_banned_frame(user_id=command.user_id, username=username, until=ban.expires_at)
        except ChatError as error:
            error.action = protocol.action_of(command)
            error.room_id = command.room_id
            raise
        await self.send_frame(frame)

    async def on_people(self, command: people_protocol.PeopleCommand) -> None:
        """Rooms users make, members, DMs (chat.people): one answer frame; the changes
        themselves reach sockets as room events and per-user frames."""
        assert self.identity is not None
        frame = await database_sync_to_async(people.handle)(identity=self.identity, command=command)
        await self.send_frame(frame)

    # Changes people make to messages (chat.message_changes, chat.reactions) -----------------

    async def on_change(self, command: protocol.EditMessage | protocol.DeleteMessage | protocol.ChangeReaction) -> None:
        """Edit, delete, react: the service writes and sends the room event; this answers."""
        assert self.identity is not None
        try:
            if isinstance(command, protocol.EditMessage):
                changed = await message_changes.message_edit(
                    identity=self.identity,
                    room_id=command.room_id,
                    message_id=command.message_id,
                    text=command.message,
                    client_message_id=command.client_message_id,
                )
            elif isinstance(command, protocol.DeleteMessage):
                changed = await message_changes.message_delete(
                    identity=self.identity, room_id=command.room_id, message_id=command.message_id
                )
            else:
                changed = await reactions.reaction_change(
                    identity=self.identity,
                    room_id=command.room_id,
                    message_id=command.message_id,
                    emoji=command.emoji,
                    add=command.add,
                )
        except ChatError as error:
            error.action = protocol.action_of(command)
            error.room_id = command.room_id
            error.client_message_id = command.client_message_id
            raise
        await self.send_frame(
            protocol.changed_frame(
                protocol.action_of(command),
                command.room_id,
                command.message_id,
                seq=changed.seq,
                client_message_id=command.client_message_id,
            )
        )

    async def on_thread(self, command: protocol.ReadThread) -> None:
        assert self.identity is not None
        try:
            thread = await message_changes.thread_read(
                identity=self.identity, room_id=command.room_id, message_id=command.message_id
            )
        except ChatError as error:
            error.action, error.room_id = "thread", command.room_id
            raise
        await self.send_frame(protocol.thread_frame(command.room_id, thread.root, thread.replies))

    async def on_history_around(self, command: protocol.History) -> None:
        """`history` with aroundSeq (a jump far back) or afterSeq (filling up from there)."""
        assert self.identity is not None
        try:
            if command.around_seq is not None:
                page = await message_changes.history_around(
                    identity=self.identity, room_id=command.room_id, around_seq=command.around_seq, limit=command.limit
                )
            else:
                assert command.after_seq is not None
                page = await message_changes.history_after(
                    identity=self.identity, room_id=command.room_id, after_seq=command.after_seq, limit=command.limit
                )
        except ChatError as error:
            error.action, error.room_id = "history", command.room_id
            raise
        await self.send_frame(
            protocol.history_frame(
                command.room_id,
                page.messages,
                has_more=page.has_more,
                around_seq=command.around_seq,
                after_seq=command.after_seq,
                has_newer=page.has_newer,
            )
        )

    # Read state, mentions and receipts (unread/, docs/protocol.md "Read state") ---------------

    async def on_mark_read(self, command: protocol.MarkRead) -> None:
        assert self.identity is not None
        try:
            frame = await unread.read_mark(
                identity=self.identity, room_id=command.room_id, seq=command.seq, origin=self.connection_id
            )
        except ChatError as error:
            error.action, error.room_id = "markRead", command.room_id
            raise
        await self.send_frame(frame)

    async def on_read_states(self, command: protocol.ReadStates) -> None:
        assert self.identity is not None
        states = await unread.read_states(identity=self.identity, room_ids=command.room_ids)
        await self.send_frame({"type": "readStates", "rooms": states})

    async def on_mentions(self, command: protocol.Mentions) -> None:
        assert self.identity is not None
        await self.send_frame(await unread.mentions_list(identity=self.identity))

    async def on_receipts(self, command: protocol.Receipts) -> None:
        assert self.identity is not None
        try:
            frame = await unread.receipts(identity=self.identity, room_id=command.room_id)
        except ChatError as error:
            error.action, error.room_id = "receipts", command.room_id
            raise
        await self.send_frame(frame)

    async def _on_read_state(self, event: dict[str, Any]) -> None:
        """The user's read state changed on another socket (any process): tabs stay in step."""
        if event.get("origin") != self.connection_id:
            await self.send_frame(event["frame"])

    async def _on_read_receipt(self, event: dict[str, Any]) -> None:
        if self.core.joined(event["room_id"]):
            await self.send_frame(event["frame"])

    _handlers: dict[type, Callable[[Any, Any], Awaitable[None]]] = {
        **dict.fromkeys(people_protocol.COMMANDS, on_people),
        protocol.SendMessage: on_send,
        protocol.JoinRoom: on_join,
        protocol.LeaveRoom: on_leave,
        protocol.History: on_history,
        protocol.Ping: on_ping,
        protocol.Authenticate: on_token,
        protocol.RefreshToken: on_token,
        protocol.ReportMessage: on_report,
        protocol.ModerateMessage: on_moderate,
        protocol.BanUser: on_moderate,
        protocol.Typing: EphemeralSocket.on_typing,
        protocol.SetPresence: EphemeralSocket.on_presence,
        protocol.EditMessage: on_change,
        protocol.DeleteMessage: on_change,
        protocol.ChangeReaction: on_change,
        protocol.ReadThread: on_thread,
        protocol.MarkRead: on_mark_read,
        protocol.ReadStates: on_read_states,
        protocol.Mentions: on_mentions,
        protocol.Receipts: on_receipts,
    }

    # Authentication ---------------------------------------------------------------------

    async def _authenticate_first(self, text_data: str | None, bytes_data: bytes | None) -> None:
        """The first frame of a socket without credentials: `authenticate`, or 4401."""
        if self.auth is not None:
            self.auth.first_frame_arrived()  # the deadline is for sending it, not for verifying it
        client = self._client()
        try:
            command = protocol.parse_client_frame(text_data, self.limits, binary=bytes_data is not None)
        except ChatError as error:
            log.warning("unauthenticated socket closed: first frame refused (%s) client=%s", error.code.value, client)
            await self.refuse()
            return
        if not isinstance(command, protocol.Authenticate):
            log.warning("unauthenticated socket closed: first frame was not authenticate client=%s", client)
            await self.refuse()
            return
        try:
            identity = await identify(self.scope, token=command.token)
        except AuthenticationFailed:
            identity = None  # accounts.auth logged why
        if identity is None:
            await self.refuse()
            return
        await self._open(identity, announce=True)

    async def refuse(self) -> None:
        metrics.record_refused(accepted=self.connection_id is not None)
        self.refused = True
        await self.close(code=CloseCode.UNAUTHORIZED)

    async def forbid(self, notice: dict[str, Any] | None = None) -> None:
        """Banned: close with 4403, which tells the client to stop reconnecting; a ban's
        `notice` (the `banned` frame: reason, until) goes first, so the page can say why."""
        if self.connection_id is None:
            metrics.record_connection("forbidden")
        self.refused = True
        if notice is not None:
            with contextlib.suppress(Exception):  # the socket may be closing already
                await self.send_frame(notice)
        await self.close(code=CloseCode.FORBIDDEN)

    def _identified(self) -> None:
        """Watch the identity's expiry: 4401 at exp + leeway, unless a fresh token comes first."""
        if self.auth is not None and self.identity is not None:
            self.auth.identified(self.identity)

    async def _auth_ran_out(self, reason: Reason) -> None:
        if reason == NO_AUTHENTICATE_FRAME:
            if self.identity is not None:
                return  # signed in by a frame that arrived as the deadline ran out
            log.warning(
                "unauthenticated socket closed: no authenticate frame within %.1f s client=%s",
                settings.CHAT_AUTH_TIMEOUT,
                self._client(),
            )
        else:
            log.info("token expired on an open socket, connection=%s", self.connection_id)
        await self.refuse()

    def _authenticated_frame(self) -> dict[str, Any]:
        assert self.identity is not None
        expires = self.identity.expires_at
        return protocol.authenticated_frame(
            user_id=self.identity.user_id,
            username=self.identity.username,
            expires_at=datetime.fromtimestamp(expires, UTC) if expires is not None else None,
            moderator=self.identity.is_moderator,
        )

    def _client(self) -> str:
        client = self.scope.get("client")
        return f"{client[0]}:{client[1]}" if client else "-"

    # Control events (chat.moderation, through chat.broadcast): no seq, no room change -------
    #
    # Every room change (a removal, new settings, ...) is a room event with its own seq and
    # goes through the delivery core (chat.socket_delivery); these only act on the socket.

    async def _on_room_access(self, event: dict[str, Any]) -> None:
        """The room turned private (its roomUpdated event came first): a non-member's
        socket leaves it."""
        room_id: str = event["room_id"]
        if not self.core.joined(room_id) or self.identity is None:
            return
        if not await services.room_access(room_id=room_id, identity=self.identity):
            await self._leave_by_server(room_id, reason="private")

    _control_handlers: dict[Any, Callable[[Any, dict[str, Any]], Awaitable[None]]] = {
        ROOM_ACCESS_EVENT: _on_room_access,
        READ_RECEIPT_EVENT: _on_read_receipt,
    }

    async def user_event(self, event: dict[str, Any]) -> None:
        """An event for this socket's user from the fan-out: a ban closes it with 4403, access
        that ended (accounts.revocation) with its close code, a lost role leaves rooms."""
        handler = self._user_event_handlers.get(event.get("type"))
        if handler is None or self.identity is None or event.get("user_id") != self.identity.user_id:
            return
        try:
            await handler(self, event)
        except Exception:
            log.exception("user event %s failed on connection=%s", event.get("type"), self.connection_id)

    async def _on_user_banned(self, event: dict[str, Any]) -> None:
        if not self.disconnected:
            log.info("banned: closing connection=%s with 4403", self.connection_id)
            await self.forbid(event.get("notice"))

    async def _on_access_ended(self, event: dict[str, Any]) -> None:
        """Signed out (only the session or token sign-in the event names, if it names one),
        password changed, deactivated or deleted: close with the event's code (4401 or 4403)."""
        assert self.identity is not None
        session, origin = event.get("session"), event.get("token_origin")
        if session is not None and (
            self.identity.session_key is None or session_digest(self.identity.session_key) != session
        ):
            return
        if origin is not None and self.identity.token_origin != origin:
            return
        await self.end_access(event["close_code"])

    async def end_access(self, close_code: int) -> None:
        """Close because this socket's access ended: 4403 (the account is gone) or 4401 (sign in again)."""
        if self.disconnected or self.refused:
            return
        log.info("access ended: closing connection=%s with %d", self.connection_id, close_code)
        if close_code == CloseCode.FORBIDDEN:
            await self.forbid()
        else:
            await self.refuse()

    async def _on_roles_changed(self, event: dict[str, Any]) -> None:
        """A role was lost: read who this user is now, and leave the rooms they may no longer read."""
        assert self.identity is not None
        current = await identity_now(self.identity)
        if current is None:
            await self.end_access(CloseCode.UNAUTHORIZED)
            return
        self.identity = current
        for room_id in self.joined_rooms():
            if not await services.room_access(room_id=room_id, identity=current):
                async with self.delivering():
                    await self._leave_by_server(room_id, reason="removed")

    async def _on_user_frame(self, event: dict[str, Any]) -> None:
        """A change to this user's room list (chat.people): pass the frame on; a room they
        are no longer in is left at once on every socket of theirs."""
        if self.disconnected or self.refused:
            return
        await self.send(text_data=event["text"])
        room_id = event.get("leave_room")
        if isinstance(room_id, str) and self.core.joined(room_id):
            async with self.delivering():
                await self._leave_by_server(room_id, reason="removed")

    _user_event_handlers: dict[Any, Callable[[Any, dict[str, Any]], Awaitable[None]]] = {
        USER_FRAME_EVENT: _on_user_frame,
        USER_BANNED_EVENT: _on_user_banned,
        USER_ACCESS_ENDED_EVENT: _on_access_ended,
        USER_ROLES_CHANGED_EVENT: _on_roles_changed,
        USER_READ_STATE_EVENT: _on_read_state,
    }

    async def _leave_by_server(self, room_id: str, *, reason: str) -> None:
        """Leave a room by the server's decision. Hold `delivery`."""
        if not self.core.leave(room_id):
            return
        await services.room_leave(room_id=room_id, member=self)
        await self.send_frame(protocol.left_frame(room_id, reason=reason))
        # The user's presence leaves the room with the socket, now: those still there no
        # longer see them present (a join's snapshot) nor hear of their changes through it.
        await self.presence_rooms_changed()

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
        await self.send(text_data=protocol.encode(frame))
