"""The storage adapter: plain records and the `ChatStore` protocol both backends implement.

Backends are synchronous (the Django ORM and boto3 both are); `chat.services` calls them off
the event loop. Every read filters out expired records (ttl in the past) whether or not a
purge has removed them yet, because DynamoDB deletes expired items days late.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from chat.records import (  # the records live below the storage package; re-exported here
    DELETED,
    HIDDEN,
    AppendResult,
    ChangeResult,
    ConnectionRecord,
    EventRecord,
    InstanceBeat,
    LogEntry,
    Membership,
    MessageRecord,
    NewEvent,
    NewMessage,
    PastVersion,
    Reactions,
    ReadMarkResult,
    Removal,
    RemoveResult,
    ReplyRef,
    Room,
    RoomNotFound,
    RoomUpdate,
)

__all__ = [
    "DELETED",
    "HIDDEN",
    "AppendResult",
    "ChangeResult",
    "ChatStore",
    "ConnectionRecord",
    "EventRecord",
    "InstanceBeat",
    "LogEntry",
    "Membership",
    "MessageRecord",
    "NewEvent",
    "NewMessage",
    "PastVersion",
    "Reactions",
    "ReadMarkResult",
    "Removal",
    "RemoveResult",
    "ReplyRef",
    "Room",
    "RoomNotFound",
    "RoomUpdate",
    "membership_changed",
    "on_membership_change",
]

log = logging.getLogger(__name__)

# Told of every membership a backend adds or removes, whoever asked for it (a socket's
# action, the admin, a command, a test): chat.fellows keeps who shares a room with whom and
# must hear of each change. Called on the store's thread, right after the write.
_membership_listeners: list[Callable[[str, str], None]] = []


def on_membership_change(listener: Callable[[str, str], None]) -> None:
    """Call `listener(room_id, user_id)` after every membership added or removed."""
    if listener not in _membership_listeners:
        _membership_listeners.append(listener)


def membership_changed(*, room_id: str, user_id: str) -> None:
    """For the backends: a membership of `user_id` in `room_id` was added or removed."""
    for listener in _membership_listeners:
        try:
            listener(room_id, user_id)
        except Exception:
            log.exception("membership listener %r failed", listener)


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
    def create_room(
        self,
        *,
        room_id: str,
        name: str,
        created_by: str | None,
        now: datetime,
        private: bool = False,
        direct: bool = False,
        topic: str = "",
    ) -> tuple[Room, bool]:
        """Store a new room: (room, True); when the id is taken, (the room there, False) and
        nothing changes. Atomic: of two concurrent creations of one id, one is True."""
        ...

    def get_rooms(self, room_ids: list[str]) -> list[Room]:
        """The rooms among these ids that exist, in no particular order (by key, never a scan)."""
        ...

    def public_room_ids(self) -> list[str]:
        """The ids of the rooms that are not private, sorted (search: the rooms everyone
        reads, without reading every room's record)."""
        ...

    def update_room(
        self,
        *,
        room_id: str,
        name: str | None = None,
        archived: bool | None = None,
        private: bool | None = None,
        read_only: bool | None = None,
        slow_mode_seconds: int | None = None,
        topic: str | None = None,
        now: datetime,
        ttl_seconds: int,
    ) -> RoomUpdate:
        """Change the given settings (None: leave as is) and, when any changed, store a
        roomUpdated event (the new settings) with the room's next seq, atomically. Raises
        RoomNotFound."""
        ...

    # Members (user ids): access to a private room; for any room, a place in the member's
    # room list, a role and a mute. One record per (room, user), never a list on the room.
    def add_member(self, *, room_id: str, user_id: str, role: str = "member", now: datetime | None = None) -> bool:
        """True when the user became a member now. Raises RoomNotFound. Adding a member
        twice is harmless: the first role and join time stay."""
        ...

    def get_membership(self, *, room_id: str, user_id: str) -> Membership | None: ...
    def set_membership(
        self, *, room_id: str, user_id: str, role: str | None = None, muted: bool | None = None
    ) -> Membership | None:
        """Change a member's role or mute (None: leave as is); None when not a member."""
        ...

    def members_page(self, *, room_id: str, after_user_id: str | None = None, limit: int = 100) -> list[Membership]:
        """The room's members with user id > after_user_id, by user id, at most `limit`."""
        ...

    def rooms_of_user(self, user_id: str) -> list[Membership]:
        """Every membership of one user (an index query, never a scan)."""
        ...

    def remove_member(self, *, room_id: str, user_id: str) -> bool:
        """True when the user was a member."""
        ...

    def change_membership(
        self, *, user_id: str, event: NewEvent, role: str = "member", now: datetime | None = None
    ) -> EventRecord | None:
        """One membership change and its room event, in one atomic write: both or neither.

        `event.type` says which change: memberAdded (the user becomes a member with `role`),
        memberRemoved (the user's membership goes) or memberUpdated (the member's role
        becomes `role`). The event takes the room's next seq. None, with nothing written,
        when there is nothing to change (a member already, not a member, the role as it
        is). Raises RoomNotFound.
        """
        ...

    def public_rooms(self) -> list[Room]:
        """Every room that is neither private nor a DM (archived ones included), by room id:
        what browsing lists. A key or index query, never a scan."""
        ...

    def private_rooms(self) -> list[Room]:
        """Every private room that is not a DM (archived ones included), by room id: what a
        moderator lists besides the public rooms. A key or index query, never a scan."""
        ...

    def room_creation_times(self, *, created_by: str, since: datetime) -> list[datetime]:
        """When each room `created_by` created after `since` was created (the per-day room
        quota), in no particular order. A key or index query, never a scan."""
        ...

    def is_member(self, *, room_id: str, user_id: str) -> bool: ...
    def room_members(self, room_id: str) -> list[str]:
        """The room's member user ids, sorted."""
        ...

    def member_rooms(self, *, user_id: str) -> list[str]:
        """The ids of the rooms the user is a member of, sorted (search: the private rooms
        a user reads, in one call rather than one per room)."""
        ...

    # Messages
    def append_message(self, new: NewMessage) -> AppendResult:
        """Store a message with the room's next seq, atomically and exactly once; the room's
        last activity becomes the message's time.

        A second call with the same (room, user, clientMessageId) stores nothing and returns
        the original record with created=False. Raises RoomNotFound.
        """
        ...

    def messages_after(self, *, room_id: str, after_seq: int, limit: int, now: datetime) -> list[MessageRecord]:
        """Live messages with seq > after_seq, oldest first, at most `limit`."""
        ...

    def messages_after_many(self, windows: list[tuple[str, int, int]], *, now: datetime) -> list[list[MessageRecord]]:
        """`messages_after` for each (room_id, after_seq, limit), in order: the local store
        reads them all in one statement (the counts of a batch of markReads)."""
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

    def get_messages(self, *, keys: list[tuple[str, str]], now: datetime) -> list[MessageRecord]:
        """The live messages (tombstones included) among these (room id, message id) pairs,
        in no particular order: a page of search results checked in one read, by key."""
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

    # Changes people make to messages (chat.message_changes, chat.reactions). Each takes the
    # room's next seq with its event, atomically, like a removal.
    def edit_message(
        self,
        *,
        room_id: str,
        message_id: str,
        text: str,
        client_message_id: str | None,
        now: datetime,
        ttl_seconds: int,
    ) -> ChangeResult | None:
        """Replace a live message's text, keep the old one in `edits`, and store a
        messageEdited event (chat.events.message_edited_data). None when there is no live
        (not removed) message of that id in the room. No event when the text is unchanged or
        `client_message_id` already made an edit of this message (a retry)."""
        ...

    def change_reaction(
        self,
        *,
        room_id: str,
        message_id: str,
        user_id: str,
        emoji: str,
        add: bool,
        max_distinct: int,
        now: datetime,
        ttl_seconds: int,
    ) -> ChangeResult | None:
        """Add (or remove) `user_id`'s `emoji` on a live message and store a reactions event
        (chat.events.reactions_data) with the message's reactions after the change. None
        when there is no live message. No event when nothing changed (added twice, removed
        when absent) or when adding a new emoji would exceed `max_distinct` (the result's
        message then lacks it: the caller tells the two apart)."""
        ...

    def find_message(self, *, message_id: str, now: datetime) -> MessageRecord | None:
        """A live message by id in any room (a tombstone included), or None: tells a message
        of another room from one that does not exist."""
        ...

    def replies(self, *, room_id: str, message_id: str, limit: int, now: datetime) -> list[MessageRecord]:
        """The live replies to a message (its thread), oldest first, at most `limit`."""
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
    def delete_connection(self, connection_id: str, *, ttl: int | None = None) -> None:
        """Delete the row; with `ttl`, only while its ttl is still that (a sweep must not
        delete a row its process, back from a stall, has just written again)."""
        ...

    def delete_connections(self, connection_ids: Sequence[str]) -> None:
        """Delete these rows (unconditionally; unknown ids are ignored), in as few requests as
        the backend allows: a stopping process closes thousands of sockets at once."""
        ...

    def connections_for_user(self, *, user_id: str, now: datetime) -> list[ConnectionRecord]: ...
    def connections_on_instance(self, *, instance_id: str, now: datetime) -> list[ConnectionRecord]: ...
    def connections_live_summary(self, *, now: datetime) -> tuple[int, int]:
        """(open sockets, distinct users) over every process: the admin dashboard's "now".
        A scan of the connections table (live rows only), so never on a per-message path."""
        ...

    # Processes: one entry per daphne process (CHAT_INSTANCE_ID) that has open sockets.
    def beat_instance(self, *, instance_id: str, ttl: int, now: datetime) -> InstanceBeat:
        """Record that this process is alive until `ttl` (epoch seconds), in one write that
        also answers whether its entry was still live and which other entries have expired."""
        ...

    def forget_instance(self, *, instance_id: str, ttl: int) -> None:
        """Remove a dead process's entry, unless it has beaten again since it was seen with `ttl`."""
        ...

    # Read state (unread/): per user and room, the seq up to which the user has read.
    def mark_reads(self, marks: dict[tuple[str, str], int]) -> dict[tuple[str, str], ReadMarkResult]:
        """Move each (room_id, user_id) key's last-read seq forward to its seq (never back),
        one write each at most; what each mark is after the call, and whether the call moved
        it. The local store writes them all in one transaction (one synced commit for all:
        unread.services gathers the markReads that arrive while the store is busy into one
        call); DynamoDB writes one item at a time."""
        ...

    def read_seqs(self, *, user_id: str, room_ids: list[str]) -> dict[str, int]:
        """The user's last-read seq per room, for those of `room_ids` ever marked read."""
        ...

    def room_readers(self, *, room_id: str, user_ids: list[str]) -> dict[str, int]:
        """The last-read seq of each of `user_ids` who ever marked the room read (receipts)."""
        ...

    # Housekeeping
    def purge_expired(self, *, now: datetime) -> int:
        """Delete expired messages, events and connections; return how many records went."""
        ...
