"""The storage adapter: plain records and the `ChatStore` protocol both backends implement.

Backends are synchronous (the Django ORM and boto3 both are); `chat.services` calls them off
the event loop. Every read filters out expired records (ttl in the past) whether or not a
purge has removed them yet, because DynamoDB deletes expired items days late.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Room:
    room_id: str
    name: str
    created_at: datetime
    created_by: str | None
    last_seq: int


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

    # Connections
    def save_connection(self, record: ConnectionRecord) -> None: ...
    def refresh_connection(self, *, connection_id: str, ttl: int) -> None: ...
    def delete_connection(self, connection_id: str) -> None: ...
    def connections_for_user(self, *, user_id: str, now: datetime) -> list[ConnectionRecord]: ...
    def connections_on_instance(self, *, instance_id: str, now: datetime) -> list[ConnectionRecord]: ...

    # Housekeeping
    def purge_expired(self, *, now: datetime) -> int:
        """Delete expired messages and connections; return how many records went."""
        ...
