"""Plain records of rooms, messages and connections: no Django, no storage, no I/O.

They sit below everything that uses them (the storage backends, the wire protocol, the
services, delivery), so `chat.protocol` can build frames from them without importing the
storage package or Django. chat.storage.base re-exports them for the backends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, TypeAlias


def iso_timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with milliseconds, as the wire protocol writes times: 2026-11-26T06:55:06.123Z."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class Room:
    room_id: str
    name: str
    created_at: datetime
    created_by: str | None
    last_seq: int
    # Moderation settings (docs/moderation.md). An archived room takes no posts and leaves
    # the room list; a private room is for its members (and moderators) only; in a
    # read-only room only moderators post; slow mode allows one post per user per N seconds.
    archived: bool = False
    private: bool = False
    read_only: bool = False
    slow_mode_seconds: int = 0
    # People and rooms (docs/protocol.md "Rooms users make"): a direct-message room is
    # private and has only the members it was opened with; the topic is free text; last
    # activity is the time of the room's latest message (None: none yet).
    direct: bool = False
    topic: str = ""
    last_activity: datetime | None = None

    @property
    def kind(self) -> Literal["public", "private", "direct"]:
        if self.direct:
            return "direct"
        return "private" if self.private else "public"


# A member's role in a room: owners manage it (docs/protocol.md).
OWNER: Final = "owner"
MEMBER: Final = "member"
ROLES: Final = (OWNER, MEMBER)


@dataclass(frozen=True, slots=True)
class Membership:
    """One user in one room: their role, and whether they muted it."""

    room_id: str
    user_id: str
    role: str = MEMBER
    muted: bool = False
    joined_at: datetime | None = None


# What a moderator did to a message. Either way clients get a tombstone (empty text,
# "removed": true); a hidden message keeps its text in the store for moderators, a deleted
# one does not.
HIDDEN: Final = "hidden"
DELETED: Final = "deleted"
Removal = Literal["hidden", "deleted"]


@dataclass(frozen=True, slots=True)
class ReplyRef:
    """What a reply quotes of the message it answers, kept with the reply: the excerpt is
    taken when the reply is sent, and blanked (`removed`) when the original is removed, so
    a reply never carries text its original no longer shows."""

    message_id: str
    seq: int  # the original's seq: a client loads history around it (`history` with aroundSeq)
    username: str
    excerpt: str
    removed: bool = False
    # The original's replyCount with this reply (its 1st, 2nd, ... reply), fixed when the
    # reply is stored: a client sets the original's count to the largest it has seen, so a
    # count reaches it through the room's events (live, replayed, repaired) and is never
    # counted twice. 0: a reply stored before replies were numbered.
    number: int = 0


@dataclass(frozen=True, slots=True)
class PastVersion:
    """A message's text before one edit (moderators read these in admin)."""

    text: str
    edited_at: datetime  # when this text was replaced
    client_message_id: str | None  # of the edit that replaced it: a retry is applied once


# A message's reactions: (emoji, user ids in the order they reacted), sorted by emoji.
Reactions: TypeAlias = tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True, slots=True)
class NewMessage:
    """What a sender asks to store; the store assigns messageId, seq and ttl."""

    room_id: str
    user_id: str
    username: str
    text: str
    connection_id: str
    client_message_id: str | None
    timestamp: datetime
    ttl_seconds: int
    reply_to: ReplyRef | None = None  # a reply: the original is in the same room
    # User ids the server resolved from the text's @mentions (chat.mentions): never the client's.
    mentions: tuple[str, ...] = ()
    # Files shared with the message (uploads, verified and claimed by chat.attachments):
    # what a client shows of each, never a URL (URLs are minted per frame, short-lived).
    attachments: tuple[dict[str, Any], ...] = ()
    # The room's lastSeq as the sender's checks read it a moment ago (a strongly consistent
    # read of the room): a store whose seqs are taken by a conditional write (DynamoDB) takes
    # the next seq from it on its first attempt instead of reading the room again. Only a
    # proposal, like any read there: the write's condition on lastSeq is the guarantee, and a
    # stale value costs one cancelled attempt and a fresh read. None: read the room.
    last_seq: int | None = None


@dataclass(frozen=True, slots=True)
class MessageRecord:
    message_id: str
    room_id: str
    seq: int
    user_id: str
    username: str
    text: str
    timestamp: datetime
    connection_id: str
    client_message_id: str | None
    ttl: int  # epoch seconds after which the record no longer exists
    removed: Removal | None = None  # a tombstone: never send `text` to a client
    edited_at: datetime | None = None
    reply_to: ReplyRef | None = None
    reply_count: int = 0  # replies to this message (its thread)
    reactions: Reactions = ()
    edits: tuple[PastVersion, ...] = ()  # earlier texts, oldest first (erased on delete)
    removed_by: str | None = None  # a tombstone's remover: chat.events.BY_AUTHOR or BY_MODERATOR
    mentions: tuple[str, ...] = ()  # user ids mentioned (NewMessage.mentions)
    attachments: tuple[dict[str, Any], ...] = ()  # as NewMessage's; a tombstone shows none


@dataclass(frozen=True, slots=True)
class AppendResult:
    message: MessageRecord
    created: bool  # False: a retry of a clientMessageId already stored


@dataclass(frozen=True, slots=True)
class NewEvent:
    """A room change other than a new message, to store with the room's next seq.

    `type` is a chat.events frame type; `data` is the frame beyond type, roomId and seq,
    kept as it is (JSON), so a replay sends the frame a live socket got.
    """

    room_id: str
    type: str
    data: dict[str, Any]
    timestamp: datetime
    ttl_seconds: int


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A stored room event (not a message): its own seq in the room's one sequence."""

    room_id: str
    seq: int
    type: str
    data: dict[str, Any]
    timestamp: datetime
    ttl: int  # epoch seconds, as a message's


# One entry of a room's log: a message (in its current state) or another event.
LogEntry: TypeAlias = MessageRecord | EventRecord


@dataclass(frozen=True, slots=True)
class RemoveResult:
    message: MessageRecord  # as it is now: a tombstone
    # The messageRemoved event, or None when the message was a tombstone already (deleting
    # a hidden one erases its text; clients see no change, so no event).
    event: EventRecord | None


@dataclass(frozen=True, slots=True)
class ChangeResult:
    """An edit or a reaction change: the message as it is now, and the event that said so
    (None: nothing changed, e.g. a retried edit or a reaction added twice)."""

    message: MessageRecord
    event: EventRecord | None


@dataclass(frozen=True, slots=True)
class RoomUpdate:
    room: Room
    event: EventRecord | None  # the roomUpdated event; None when no setting changed


@dataclass(frozen=True, slots=True)
class ConnectionRecord:
    connection_id: str
    user_id: str
    username: str
    connected_at: datetime
    ttl: int
    instance_id: str


@dataclass(frozen=True, slots=True)
class InstanceBeat:
    """What a process learns when it records that it is alive (ChatStore.beat_instance)."""

    # The process's own entry was there and live until this beat: nobody can have swept its
    # rows. False on a first beat, and after a stall long enough for another process to
    # count it dead (its rows may be gone: it writes them again).
    kept: bool
    # Other processes whose entries have expired, with the ttl each was seen with: dead,
    # their connection rows to be deleted by whoever sees them first.
    dead: dict[str, int]


@dataclass(frozen=True, slots=True)
class ReadMarkResult:
    """One user's mark in one room after ChatStore.mark_reads."""

    last_read_seq: int  # as stored after the call
    moved: bool  # this call moved it forward (or wrote it for the first time)


class RoomNotFound(LookupError):
    pass
