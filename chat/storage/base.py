"""The storage adapter: plain records and the `ChatStore` protocol both backends implement.

Backends are synchronous (the Django ORM and boto3 both are); `chat.services` calls them off
the event loop. Every read filters out expired records (ttl in the past) whether or not a
purge has removed them yet, because DynamoDB deletes expired items days late.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, Protocol, runtime_checkable


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
    ) -> Room:
        """Change the given settings (None: leave as is); return the room. Raises RoomNotFound."""
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

    def remove_message(self, *, room_id: str, message_id: str, removal: Removal) -> MessageRecord | None:
        """Make a live message a tombstone; `deleted` also erases its text from the store.

        Returns the record as it is now, or None when there is no such message. A deleted
        message stays deleted: hiding it again changes nothing.
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
        self, *, user_id: str, room_id: str | None, removal: Removal, now: datetime
    ) -> list[MessageRecord]:
        """Make every live message of a user (in one room, or everywhere) a tombstone; return
        those that changed, oldest first per room."""
        ...

    # Connections
    def save_connection(self, record: ConnectionRecord) -> None: ...
    def refresh_connection(self, *, connection_id: str, ttl: int) -> None: ...
    def delete_connection(self, connection_id: str) -> None: ...
    def connections_for_user(self, *, user_id: str, now: datetime) -> list[ConnectionRecord]: ...
    def connections_on_instance(self, *, instance_id: str, now: datetime) -> list[ConnectionRecord]: ...
    def connections_live_summary(self, *, now: datetime) -> tuple[int, int]:
        """(open sockets, distinct users) over every process: the admin dashboard's "now".
        A scan of the connections table (live rows only), so never on a per-message path."""
        ...

    # Housekeeping
    def purge_expired(self, *, now: datetime) -> int:
        """Delete expired messages and connections; return how many records went."""
        ...
