"""The storage adapter: plain records and the `ChatStore` protocol both backends implement.

Backends are synchronous (the Django ORM and boto3 both are); `chat.services` calls them off
the event loop. Every read filters out expired records (ttl in the past) whether or not a
purge has removed them yet, because DynamoDB deletes expired items days late.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, Protocol, TypeAlias, runtime_checkable


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


# What a moderator did to a message. Either way clients get a tombstone (empty text,
# "removed": true); a hidden message keeps its text in the store for moderators, a deleted
# one does not.
HIDDEN: Final = "hidden"
DELETED: Final = "deleted"
Removal = Literal["hidden", "deleted"]


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


class RoomNotFound(LookupError):
    pass


@runtime_checkable
class ChatStore(Protocol):
    """Persistence for rooms, messages and connections."""

    # True when calls must run on Django's single sync thread (ORM on SQLite); False when
    # they may run concurrently in a thread pool (boto3 clients are thread-safe).
    thread_sensitive: bool

    # Rooms
    def ensure_room(self, *, room_id: str, name: str, created_by: str | None, now: datetime) -> Room: ...
    def get_room(self, room_id: str) -> Room | None: ...
    def list_rooms(self) -> list[Room]: ...
    def update_room(
        self,
        *,
        room_id: str,
        name: str | None = None,
        archived: bool | None = None,
        private: bool | None = None,
        read_only: bool | None = None,
        slow_mode_seconds: int | None = None,
        now: datetime,
        ttl_seconds: int,
    ) -> RoomUpdate:
        """Change the given settings (None: leave as is) and, when any changed, store a
        roomUpdated event (the new settings) with the room's next seq, atomically. Raises
        RoomNotFound."""
        ...

    # Members of private rooms (user ids). Membership means nothing for a public room.
    def add_member(self, *, room_id: str, user_id: str) -> None:
        """Raises RoomNotFound. Adding a member twice is harmless."""
        ...

    def remove_member(self, *, room_id: str, user_id: str) -> bool:
        """True when the user was a member."""
        ...

    def is_member(self, *, room_id: str, user_id: str) -> bool: ...
    def room_members(self, room_id: str) -> list[str]:
        """The room's member user ids, sorted."""
        ...

    # Messages
    def append_message(self, new: NewMessage) -> AppendResult:
        """Store a message with the room's next seq, atomically and exactly once.

        A second call with the same (room, user, clientMessageId) stores nothing and returns
        the original record with created=False. Raises RoomNotFound.
        """
        ...

    def messages_after(self, *, room_id: str, after_seq: int, limit: int, now: datetime) -> list[MessageRecord]:
        """Live messages with seq > after_seq, oldest first, at most `limit`."""
        ...

    def messages_before(
        self, *, room_id: str, before_seq: int | None, limit: int, now: datetime
    ) -> list[MessageRecord]:
        """The `limit` live messages just below before_seq (or the latest), oldest first."""
        ...

    # Moderation of messages. Removed messages stay in every read, as tombstones.
    def get_message(self, *, room_id: str, message_id: str, now: datetime) -> MessageRecord | None:
        """A live message of this room by id (a tombstone included), or None."""
        ...

    def remove_message(
        self, *, room_id: str, message_id: str, removal: Removal, removed_by: str, now: datetime, ttl_seconds: int
    ) -> RemoveResult | None:
        """Make a live message a tombstone; `deleted` also erases its text from the store.

        A live message's removal also stores a messageRemoved event (chat.events
        .message_removed_data) with the room's next seq, in the same transaction. None when
        there is no such message. A deleted message stays deleted: hiding it again changes
        nothing; a tombstone removed again takes no seq.
        """
        ...

    def search_messages(
        self,
        *,
        room_id: str,
        now: datetime,
        text: str | None = None,
        user_id: str | None = None,
        limit: int = 50,
        scan: int = 1000,
    ) -> list[MessageRecord]:
        """Among the room's newest `scan` live messages, those whose text contains `text`
        (case-insensitively) and whose author is `user_id`; newest first, at most `limit`."""
        ...

    def removed_between(self, *, room_id: str, after_seq: int, up_to_seq: int, now: datetime) -> list[MessageRecord]:
        """The room's tombstones with after_seq < seq <= up_to_seq, oldest first."""
        ...

    def remove_user_messages(
        self, *, user_id: str, room_id: str | None, removal: Removal, now: datetime, ttl_seconds: int
    ) -> list[RemoveResult]:
        """Make every live message of a user (in one room, or everywhere) a tombstone, each as
        remove_message does (by a moderator); return those that changed, oldest first per room."""
        ...

    # The room's log: messages and every other room event, in one seq order.
    def append_event(self, new: NewEvent) -> EventRecord:
        """Store an event with the room's next seq, atomically. Raises RoomNotFound."""
        ...

    def events_after(self, *, room_id: str, after_seq: int, limit: int, now: datetime) -> list[LogEntry]:
        """Live log entries with seq > after_seq (messages in their current state, and
        events), in seq order, at most `limit`."""
        ...

    # Connections
    def save_connection(self, record: ConnectionRecord) -> None: ...
    def refresh_connection(self, *, connection_id: str, ttl: int) -> None: ...
    def delete_connection(self, connection_id: str) -> None: ...
    def connections_for_user(self, *, user_id: str, now: datetime) -> list[ConnectionRecord]: ...
    def connections_on_instance(self, *, instance_id: str, now: datetime) -> list[ConnectionRecord]: ...

    # Housekeeping
    def purge_expired(self, *, now: datetime) -> int:
        """Delete expired messages, events and connections; return how many records went."""
        ...
