"""Per-user quotas: what one account may hold or do, whichever sockets and processes it uses.

Rate limits (chat/ratelimit.py) smooth bursts; quotas cap totals that a single account could
otherwise grow without bound: open sockets and rooms created per day. Both are counted from
the store (connection rows, rooms' created_by and created_at), so every process sees the
same count on either storage backend, and a restart forgets nothing. Settings, defaults and
who is exempt: docs/auth.md, "Quotas".
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Final

from django.conf import settings

from accounts.identity import Identity
from chat.errors import ChatError, ErrorCode
from chat.storage.base import ConnectionRecord

DAY: Final = timedelta(days=1)


class QuotaExceeded(ChatError):
    """Over a per-user quota; `retry_after` is when one unit frees up, when that is known."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(
            ErrorCode.QUOTA_EXCEEDED, message, retry_after=None if retry_after is None else math.ceil(retry_after)
        )


def rooms_created_today(*, identity: Identity, now: datetime, created: Iterable[datetime]) -> None:
    """Raise QuotaExceeded when `identity` created CHAT_ROOMS_PER_USER_PER_DAY rooms in the last 24 hours.

    `created`: when each room `identity` created was made (the store's room_creation_times,
    one index query; older times are ignored here)."""
    limit: int = settings.CHAT_ROOMS_PER_USER_PER_DAY
    if limit <= 0:
        return
    recent = sorted(at for at in created if at > now - DAY)
    if len(recent) >= limit:
        wait = (recent[-limit] + DAY - now).total_seconds()
        raise QuotaExceeded(f"at most {limit} new rooms a day: try again later", retry_after=max(1.0, wait))


def sockets_open(*, connection_id: str, connections: Iterable[ConnectionRecord]) -> None:
    """Raise QuotaExceeded when this connection is past CHAT_MAX_SOCKETS_PER_USER of its user's.

    `connections` are the user's live rows, this one included. The oldest keep their place:
    the newest past the limit are the ones refused.
    """
    limit: int = settings.CHAT_MAX_SOCKETS_PER_USER
    if limit <= 0:
        return
    ordered = sorted(connections, key=lambda c: (c.connected_at, c.connection_id))
    allowed = {c.connection_id for c in ordered[:limit]}
    if connection_id not in allowed:
        raise QuotaExceeded(f"at most {limit} open connections per user: close one first")
