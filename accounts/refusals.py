"""Users who are signed in but refused everything: one answer for every HTTP way in.

A ban is the chat's record (chat.moderation_models), yet it must stop the token endpoints
here too: a banned user gets no tokens from /api/auth/token or /api/auth/refresh and is
answered 403 on every /api/ endpoint (RefusedUserMiddleware), saying why and until when.
Accounts never imports chat: the chat registers its check at start-up (ChatConfig.ready),
and every caller asks `refusal_for(user)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.http import JsonResponse


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a user is refused. `code` is stable and machine-readable (`banned`)."""

    code: str
    message: str
    until: datetime | None = None  # None: until lifted
    reason: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "error": self.code,
            "message": self.message,
            "until": self.until.isoformat() if self.until is not None else None,
            "reason": self.reason,
        }


Check = Callable[[Any], Refusal | None]
_checks: list[Check] = []


def register(check: Check) -> None:
    """Add a check every refusal_for() runs (idempotent)."""
    if check not in _checks:
        _checks.append(check)


def refusal_for(user: Any) -> Refusal | None:
    """The first reason this signed-in user is refused, or None. Synchronous (reads the database)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    for check in _checks:
        refusal = check(user)
        if refusal is not None:
            return refusal
    return None


def refused_response(refusal: Refusal) -> JsonResponse:
    return JsonResponse(refusal.as_json(), status=403)
