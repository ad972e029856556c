"""A socket's sign-in: how it opens, how its token is kept fresh, and how it is refused.

`SocketOpening` holds the consumer's connect path as it was written there: accept (so a
browser sees a close code rather than 1006), the draining and per-address checks before any
credential is looked at, the socket's delivery core and limits, the identity from the
handshake or from a first `authenticate` frame (accounts.identity, with its clocks in
accounts.socket_auth), then the user's rate limit, the user's group before the ban check,
the connection row and the local registry (chat.connections), presence, and `authenticated`.
The connect path's methods are the consumer's own, moved whole (mixed into
chat.consumers.ChatConsumer) rather than rewritten as functions, so that work on the
connect path lands on the same lines it did in the consumer.

Beside it: the refusals every part of the socket uses (4401 `refuse`, 4403 `forbid`, 4429
`too_many`), the token's clocks (the first frame's deadline, the expiry), `on_token` (a
fresh token on an open socket, a plain function of the socket), and the pure pieces (the
`authenticated` frame, the peer as logs name it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from django.conf import settings

from accounts.identity import AuthenticationFailed, Identity, identify
from accounts.socket_auth import NO_AUTHENTICATE_FRAME, Reason, SocketAuth
from chat import connections, metrics, protocol, services
from chat.daphne_adapt.frames import FrameWriter, writer
from chat.delivery import SocketDelivery
from chat.errors import ChatError, ErrorCode
from chat.open_gate import OPEN_WAIT_SECONDS, OpenBusy, open_gate
from chat.protocol import CloseCode
from chat.quota import QuotaExceeded
from chat.ratelimit import RateLimited, SocketLimits, check_address
from chatsite.ops import logs

log = logging.getLogger(__name__)


class SocketOpening:
    """The connect path, the refusals and the token clocks of one socket. Mixed into ChatConsumer."""

    scope: Any
    identity: Identity | None
    connection_id: str | None
    auth: SocketAuth | None
    rate: SocketLimits
    in_user_group: bool
    refused: bool
    frames: FrameWriter | None
    core: SocketDelivery
    delivery: asyncio.Lock
    limits: protocol.Limits

    if TYPE_CHECKING:  # provided by the consumer (chat.consumers) and its mixins

        async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None: ...

        async def close(self, code: int | bool | None = None, reason: str | None = None) -> None: ...

        async def send_frame(self, frame: dict[str, Any]) -> None: ...

        async def presence_opened(self) -> None: ...

        # what the fan-out's user group and the connection keeper need of a socket
        async def user_event(self, event: dict[str, Any]) -> None: ...

        def joined_rooms(self) -> list[str]: ...

        async def go_away(self) -> None: ...

        async def release(self) -> None: ...

        async def catch_up(self, *, fresh: bool) -> None: ...

        def session_key(self) -> str | None: ...

        async def end_access(self, close_code: int) -> None: ...

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
            # The identity and the admission in one turn of the process's opens (chat.open_gate).
            async with open_gate().turn():
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
        except OpenBusy:
            await self._busy()

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
            # Into the user's group before the ban check (in connection_open): a ban between
            # the two still reaches this socket.
            await services.user_subscribe(user_id=identity.user_id, member=self)
            self.in_user_group = True
            async with local.opening():
                record = await services.connection_open(identity=identity)
                self.connection_id = record.connection_id
                await local.add(self, record)
        except services.Banned as banned:
            await self.forbid(banned.notice)
            return
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
            async with open_gate().turn():
                try:
                    identity = await identify(self.scope, token=command.token)
                except AuthenticationFailed:
                    identity = None  # accounts.auth logged why
                if identity is None:
                    await self.refuse()
                    return
                await self._open(identity, announce=True)
        except OpenBusy:
            await self._busy()

    async def _busy(self) -> None:
        """No turn to open in time (chat.open_gate): 1011, as a refused store trip closes an
        open, and the client comes back after its backoff."""
        count = open_gate().busy_to_report()
        if count:
            log.warning("%d socket(s) closed unopened: no turn to open within %.0f s", count, OPEN_WAIT_SECONDS)
        metrics.record_connection("busy")
        self.refused = True  # frames already sent (a join) are not read as a first `authenticate`
        await self.close(code=CloseCode.INTERNAL_ERROR)

    # Refusals: the closes that tell a client not to retry as it is --------------------------

    async def too_many(self, limited: ChatError | None) -> None:
        """Over a rate limit for good: the last error frame, then close with 4429."""
        if self.connection_id is None:
            metrics.record_connection("rate_limited")
        if limited is not None:
            metrics.record_error(limited.code.value)
            await self.send_frame(protocol.error_frame(limited))
        self.refused = True
        await self.close(code=CloseCode.TOO_MANY_REQUESTS)

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

    # The token's clocks (accounts.socket_auth) ------------------------------------------------

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
        return authenticated_frame(self.identity)

    def _client(self) -> str:
        return client_address(self.scope)


class TokenSocket(Protocol):
    """What a token refresh needs of a socket (chat.consumers.ChatConsumer)."""

    scope: Any
    identity: Identity | None
    connection_id: str | None

    async def send_frame(self, frame: dict[str, Any]) -> None: ...

    def _identified(self) -> None:
        """Watch the (new) identity's expiry (SocketOpening._identified)."""
        ...


async def on_token(socket: TokenSocket, command: protocol.Authenticate | protocol.RefreshToken) -> None:
    """A fresh token for this socket's user: the socket and its rooms live on to its expiry."""
    current = socket.identity
    assert current is not None
    action = protocol.action_of(command)
    try:
        identity = await identify(socket.scope, token=command.token)
    except AuthenticationFailed as failed:
        # The socket keeps its current expiry: the client may retry with another token.
        raise ChatError(ErrorCode.INVALID_TOKEN, f"token rejected: {failed.reason}", action=action) from None
    if identity is None or identity.user_id != current.user_id:
        log.warning("token for another user refused on connection=%s", socket.connection_id)
        raise ChatError(ErrorCode.INVALID_TOKEN, "the token is for another user", action=action)
    socket.identity = identity
    socket._identified()
    await socket.send_frame(authenticated_frame(identity))


def authenticated_frame(identity: Identity) -> dict[str, Any]:
    """The `authenticated` frame for an identity: who, until when, whether a moderator."""
    expires = identity.expires_at
    return protocol.authenticated_frame(
        user_id=identity.user_id,
        username=identity.username,
        expires_at=datetime.fromtimestamp(expires, UTC) if expires is not None else None,
        moderator=identity.is_moderator,
    )


def client_address(scope: Any) -> str:
    """The peer as logs name it, host:port, or "-" when the server gave none."""
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "-"
