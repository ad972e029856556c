"""Presence as the people features read it: synchronous, for chat.people's thread.

`members` answers each member's status; chat.people runs on a thread (it writes through the
ORM), while presence lives on the event loop (its Redis client belongs to the loop). This
adapter hands the read back to the loop the thread was called from.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync

from chat import presence


def presence_of(user_ids: list[str]) -> dict[str, dict[str, Any]]:
    """{user id: {"status": ..., "lastSeenAt": ...}} for each user (offline, no last seen,
    for one never seen or when the presence store cannot be read)."""
    found = async_to_sync(presence.presence_of)(user_ids)
    return {user_id: presence.presence_payload(p) for user_id, p in found.items()}
