"""Who is this connection: the one seam between authentication and chat.

The consumer asks `identify(scope)` and gets an `Identity` or None. The session cookie is
the first way in; token-based sign-in (Cognito JWTs, the built-in issuer) plugs in here
without the consumer changing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from channels.auth import get_user


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    username: str
    is_moderator: bool = False


def identity_from_user(user: Any) -> Identity | None:
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    return Identity(user_id=str(user.pk), username=user.get_username(), is_moderator=bool(user.is_staff))


async def identify(scope: dict[str, Any]) -> Identity | None:
    """The identity of a WebSocket handshake, from its session cookie."""
    if "session" not in scope:
        return None
    user = await get_user(scope)
    return identity_from_user(user)
