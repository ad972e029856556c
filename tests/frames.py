"""Reading the server's frames as the protocol client does (static/chat/core/client.js)."""

from __future__ import annotations

from typing import Any


def as_read(frame: dict[str, Any]) -> list[dict[str, Any]]:
    """The frames one server frame stands for: a window's presence changes come as
    `{"type": "presence", "users": [...]}` (docs/protocol.md) and are read one per user, as
    the JavaScript client hands them on (core/presence.js, presenceFrames)."""
    users = frame.get("users") if frame.get("type") == "presence" else None
    if not isinstance(users, list):
        return [frame]
    return [{**one, "type": "presence"} for one in users if isinstance(one, dict)]
