"""Who is this connection: the one seam between authentication and chat.

The consumer asks `identify(scope)` at connect, and `identify(scope, token=...)` for a token
sent in an `authenticate` or `refreshToken` frame, and gets an `Identity`, None, or an
`AuthenticationFailed`. It never sees a session, a token or a claim.

At connect, in this order:
1. the session cookie of a signed-in page;
2. a token offered in the handshake: as a `Sec-WebSocket-Protocol` value that looks like a
   JWT (next to the protocol name `chatsite`), or as the `token` query parameter;
3. a session cookie that names nobody, and no token: AuthenticationFailed;
4. nothing at all: None, and the client may authenticate with its first frame.

Tokens are verified by `accounts.auth` (one path for Cognito and the built-in issuer),
which logs every rejection with its reason and never the token.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from importlib import import_module
from types import SimpleNamespace
from typing import Any, Final
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model

from accounts import auth
from accounts.sessions import began_after, session_user, signed_in_user
from accounts.tokens import TokenRejected
from accounts.users import roles, standing
from chatsite.db.side_by_side import side_by_side

log = logging.getLogger(__name__)

TOKEN_QUERY_PARAM: Final = "token"  # noqa: S105 - a parameter name
_JWT_SHAPE: Final = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    username: str
    is_moderator: bool = False
    is_bot: bool = False  # a member of AUTH_BOT_GROUP: exempt from rate limits, like moderators
    # A token's exp (epoch seconds): the socket is closed with 4401 then, unless refreshed.
    # None for a session, which is checked again every CHAT_SESSION_RECHECK_SECONDS instead.
    expires_at: int | None = None
    # The session a cookie-authenticated socket lives on (never logged; events name it by
    # accounts.revocation.session_digest). None for a token.
    session_key: str | None = field(default=None, repr=False)
    # The sign-in a token came from (its `origin_jti`; for built-in tokens, the refresh
    # token's digest): revoking that refresh token closes the socket. None for a session.
    token_origin: str | None = None


class AuthenticationFailed(Exception):
    """Credentials were offered and refused. `reason` is logged and safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def identity_from_user(user: Any) -> Identity | None:
    """The identity of an active, signed-in user. Synchronous: it may read the user's groups."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    moderator, bot = roles(user)
    return Identity(user_id=str(user.pk), username=user.get_username(), is_moderator=moderator, is_bot=bot)


def _session_identity(holder: Any) -> Identity | None:
    """The session's user and their roles, read in one trip to the sync thread (each trip
    costs a thread switch and a wake-up of the event loop on every socket opened), and the
    "sign out everywhere" cutoff read with the roles, in one query (accounts.users.standing).
    The same rule as `session_user` then `identity_from_user`: a session from before the
    cutoff is flushed and names nobody."""
    user = signed_in_user(holder)
    if not user.is_authenticated or not user.is_active:
        return None
    cutoff, moderator, bot = standing(user)
    if not began_after(holder.session, cutoff):
        holder.session.flush()
        return None
    return Identity(user_id=str(user.pk), username=user.get_username(), is_moderator=moderator, is_bot=bot)


def _token_identity(verified: Any, *, client: str | None) -> Identity | None:
    """The token's user and their roles, in one trip to the sync thread (as above)."""
    return identity_from_user(auth.user_for(verified, via="websocket", client=client))


def _session_store(session_key: str) -> Any:
    """The session a cookie names, from the configured engine (read lazily, on first access)."""
    return import_module(settings.SESSION_ENGINE).SessionStore(session_key)


async def identity_now(identity: Identity) -> Identity | None:
    """The same socket's identity as the database has it now (roles may have changed), or None
    if the user is gone or inactive. Its session and expiry stay those it authenticated with."""

    def read() -> Identity | None:
        user = get_user_model().objects.filter(pk=identity.user_id).first()
        return identity_from_user(user)

    current: Identity | None = await database_sync_to_async(read)()
    if current is None:
        return None
    return replace(
        current, expires_at=identity.expires_at, session_key=identity.session_key, token_origin=identity.token_origin
    )


def live_sessions(session_keys: Iterable[str]) -> set[str]:
    """Which of these sessions still sign an active user in (not flushed, expired, made stale
    by a password change, or older than the user's last "sign out everywhere").
    Synchronous: one pass for every socket of a process."""
    alive = set()
    for key in session_keys:
        if identity_from_user(session_user(SimpleNamespace(session=_session_store(key)))) is not None:
            alive.add(key)
    return alive


def handshake_token(scope: dict[str, Any]) -> str | None:
    """A token offered in the handshake: a JWT-shaped subprotocol, else the `token` query parameter."""
    for offered in scope.get("subprotocols") or ():
        if _JWT_SHAPE.match(offered):
            return str(offered)
    query = scope.get("query_string") or b""
    values = parse_qs(query.decode("latin-1"), max_num_fields=20).get(TOKEN_QUERY_PARAM)
    return values[0] if values else None


def _client(scope: dict[str, Any]) -> str | None:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else None


async def _from_token(token: str, scope: dict[str, Any]) -> Identity:
    client = _client(scope)
    try:
        # Verification may wait for a JWKS fetch: keep it off the thread that serialises ORM
        # work, and off the default pool (accounts.auth.verify_executor).
        verify = sync_to_async(auth.verify, thread_sensitive=False, executor=auth.verify_executor())
        verified = await verify(token, via="websocket", client=client)
        identity: Identity | None = await side_by_side(_token_identity)(verified, client=client)
    except TokenRejected as error:
        raise AuthenticationFailed(error.reason.value) from None
    if identity is None:
        raise AuthenticationFailed("user_inactive")
    origin = verified.claims.get("origin_jti")
    return replace(identity, expires_at=verified.expires_at, token_origin=origin if isinstance(origin, str) else None)


async def identify(scope: dict[str, Any], *, token: str | None = None) -> Identity | None:
    """Who this connection is. None: nothing offered yet. Raises AuthenticationFailed."""
    if token is not None:
        return await _from_token(token, scope)
    session_key = (scope.get("cookies") or {}).get(settings.SESSION_COOKIE_NAME)
    if session_key:
        # Read here and not kept: the socket lives on as this identity (chat.entry).
        holder = SimpleNamespace(session=_session_store(session_key))
        session_identity: Identity | None = await side_by_side(_session_identity)(holder)
        if session_identity is not None:
            return replace(session_identity, session_key=session_key)
    offered = handshake_token(scope)
    if offered is not None:
        return await _from_token(offered, scope)
    if session_key is not None:
        log.warning("session rejected via=websocket reason=invalid_session client=%s", _client(scope) or "-")
        raise AuthenticationFailed("invalid_session")
    return None
