"""The room-event vocabulary: the kinds of change a room has, and the record one travels in.

Every change to a room (a new message, an edit, a removal, a reaction change, a member added
or removed, new settings) takes the room's next seq, so one cursor per room covers all of
them and gap detection stays one rule: a socket or client applies seq N only after N - 1.
This module sits below everything that sends, stores or delivers events, and imports none
of them, so the sender (chat.broadcast), the receiver (chat.fanout) and the clients' rule
share the names without importing each other. docs/protocol.md has the event table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

# Server frame types that are room events: each carries "roomId" and "seq".
MESSAGE: Final = "message"
MESSAGE_EDITED: Final = "messageEdited"
MESSAGE_REMOVED: Final = "messageRemoved"
REACTIONS: Final = "reactions"
MEMBER_ADDED: Final = "memberAdded"
MEMBER_REMOVED: Final = "memberRemoved"
ROOM_UPDATED: Final = "roomUpdated"
MEMBER_UPDATED: Final = "memberUpdated"  # a member's role changed (chat.people)

ROOM_EVENT_TYPES: Final = frozenset(
    {MESSAGE, MESSAGE_EDITED, MESSAGE_REMOVED, REACTIONS, MEMBER_ADDED, MEMBER_REMOVED, ROOM_UPDATED, MEMBER_UPDATED}
)


@dataclass(frozen=True, slots=True)
class RoomEvent:
    """One change to a room at its place in the room's sequence.

    `frame` is the server frame exactly as a joined socket receives it ({"type", "roomId",
    "seq", ...}); delivery never looks inside it beyond room and seq, so a new kind of change
    needs no new delivery rule.
    """

    room_id: str
    seq: int
    frame: dict[str, Any]

    @property
    def type(self) -> str:
        kind = self.frame["type"]
        assert isinstance(kind, str)
        return kind


# Who removed a message (the `removedBy` of a messageRemoved frame).
BY_AUTHOR: Final = "author"
BY_MODERATOR: Final = "moderator"


def frame(kind: str, room_id: str, seq: int, data: dict[str, Any]) -> dict[str, Any]:
    """The server frame of a room event: its type, room and seq, then what the event says.

    `data` is what the store keeps of a non-message event (chat.storage.base.EventRecord),
    so a replayed event is, byte for byte, the frame a live socket got.
    """
    return {"type": kind, "roomId": room_id, "seq": seq, **data}


def message_removed_data(*, message_id: str, message_seq: int, removed_by: str) -> dict[str, Any]:
    """What a messageRemoved event says: which message (by id and by its own seq), and by whom."""
    return {"messageId": message_id, "messageSeq": message_seq, "removedBy": removed_by}


def room_settings(
    *, name: str, private: bool, read_only: bool, archived: bool, slow_mode_seconds: int, topic: str = ""
) -> dict[str, Any]:
    """A room's settings as clients see them (in `joined` and in a roomUpdated event).
    `topic` only when there is one: a missing topic reads as none."""
    settings = {
        "name": name,
        "private": private,
        "readOnly": read_only,
        "archived": archived,
        "slowModeSeconds": slow_mode_seconds,
    }
    if topic:
        settings["topic"] = topic
    return settings


def member_data(*, user_id: str, username: str, role: str | None = None) -> dict[str, Any]:
    """What a memberAdded, memberRemoved or memberUpdated event says: who (and their role)."""
    data: dict[str, Any] = {"userId": user_id, "username": username}
    if role is not None:
        data["role"] = role
    return data


def message_edited_data(*, message_id: str, message_seq: int, text: str, edited_at: str) -> dict[str, Any]:
    """What a messageEdited event says: the message (by id and by its own seq), its new text
    and when (an ISO timestamp). A removal later blanks `message` in the stored event."""
    return {"messageId": message_id, "messageSeq": message_seq, "message": text, "editedAt": edited_at}


# User ids listed per emoji in a reactions summary: enough to show who reacted, bounded for
# a message thousands react to (the count stays exact).
REACTION_USER_IDS_CAP: Final = 25


def reactions_summary(reactions: tuple[tuple[str, tuple[str, ...]], ...]) -> list[dict[str, Any]]:
    """A message's reactions as clients see them: [{"emoji", "count", "userIds"}], by emoji."""
    return [
        {"emoji": emoji, "count": len(users), "userIds": list(users[:REACTION_USER_IDS_CAP])}
        for emoji, users in reactions
        if users
    ]


def reactions_data(
    *,
    message_id: str,
    message_seq: int,
    reactions: tuple[tuple[str, tuple[str, ...]], ...],
    user_id: str,
    emoji: str,
    added: bool,
) -> dict[str, Any]:
    """What a reactions event says: the message's reactions after the change, and the change
    itself (who, which emoji, added or removed), from which a client keeps its own `me` exact
    even past the user-id cap."""
    return {
        "messageId": message_id,
        "messageSeq": message_seq,
        "reactions": reactions_summary(reactions),
        "change": {"userId": user_id, "emoji": emoji, "added": added},
    }
