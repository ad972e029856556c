"""Presence as the people features read it: a stub the presence branch replaces.

`members` answers each member's status through `presence_of`; until presence is built it
knows nobody, and callers show "offline" with no last-seen time.
"""

from __future__ import annotations

from typing import Any


def presence_of(user_ids: list[str]) -> dict[str, dict[str, Any]]:
    """{user id: {"status": ..., "lastSeenAt": ...}} for the users whose presence is known."""
    return {}
