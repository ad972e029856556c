"""Typing indicators: which `typing` frames go out, and what they say. Pure code, no I/O.

Typing is ephemeral: never stored, never on a room's sequence, never replayed. A client
says it is typing at most once per CHAT_TYPING_INTERVAL_SECONDS (2 s) per room; the server
drops anything more, silently (no error frame, no rate-limit strike), so a chatty client
costs a dictionary lookup per extra frame and the room sees one frame per interval.
Receivers clear an indicator after CHAT_TYPING_EXPIRY_SECONDS (6 s) without a new frame,
so nothing ever has to say "stopped typing".
"""

from __future__ import annotations

from typing import Any, Final

DEFAULT_INTERVAL_SECONDS: Final = 2.0
# Entries kept before the gate forgets the ones past their interval.
MAX_ENTRIES: Final = 50_000


class TypingGate:
    """One accepted typing frame per user per room per interval (this process's clock)."""

    def __init__(self, *, interval: float = DEFAULT_INTERVAL_SECONDS) -> None:
        self.interval = interval
        self.last: dict[tuple[str, str], float] = {}

    def admit(self, user_id: str, room_id: str, now: float) -> bool:
        """True when this frame goes out; False when it comes too soon after the last one."""
        key = (user_id, room_id)
        last = self.last.get(key)
        if last is not None and now - last < self.interval:
            return False
        if len(self.last) >= MAX_ENTRIES:
            self.last = {k: t for k, t in self.last.items() if now - t < self.interval}
        self.last[key] = now
        return True


def batch_for(framed: list[tuple[str, bytes]], user_id: str | None, shared: bytes) -> bytes:
    """The bytes one socket gets from a room's typing frames of one batch window: `shared`
    (every frame) unless its own user typed in the window, whose frames it never gets.

    `framed` is (typist's user id, ready-made WebSocket frame) per event: a socket takes
    them all with one write instead of one write per frame, which is most of what typing
    costs a busy room (docs/performance.md)."""
    if user_id is None or all(typist != user_id for typist, _ in framed):
        return shared
    return b"".join(frame for typist, frame in framed if typist != user_id)


def typing_events(event: dict[str, Any]) -> list[dict[str, Any]]:
    """A typing event off the layer, as one event per typist ({"type", "room_id", "user_id",
    "text"}). chat.broadcast.typing publishes a window's typists of a room in one event
    (`typists`: [user id, frame text] pairs); an event without them, from a process that
    published each frame on its own, names one typist, and is taken as it is."""
    typists = event.get("typists")
    if typists is None:
        return [event]
    return [
        {"type": event["type"], "room_id": event["room_id"], "user_id": typist[0], "text": typist[1]}
        for typist in typists
        if isinstance(typist, list) and len(typist) == 2 and isinstance(typist[0], str) and isinstance(typist[1], str)
    ]


def may_type(*, archived: bool, read_only: bool, muted: bool, moderator: bool) -> bool:
    """Typing reaches a room only from someone who may post there now."""
    if archived or muted:
        return False
    return not read_only or moderator


def typing_frame(*, room_id: str, user_id: str, username: str) -> dict[str, Any]:
    """{"type": "typing", "roomId", "userId", "username"} (docs/protocol.md)."""
    return {"type": "typing", "roomId": room_id, "userId": user_id, "username": username}
