"""ORM tables of the local storage backend (chat.storage.local).

Only chat.storage.local reads and writes these; everything else goes through the storage
adapter so that the DynamoDB backend serves the same callers. The moderation records
(chat.moderation_models, imported at the end) are the exception: they are Django's with
either backend.
"""

from __future__ import annotations

from django.db import models


class Room(models.Model):
    room_id = models.CharField(primary_key=True, max_length=64)
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField()
    created_by = models.CharField(max_length=128, null=True, blank=True)  # noqa: DJ001 - NULL: no creator
    # The last seq handed out; incremented in the same transaction that stores a message.
    last_seq = models.BigIntegerField(default=0)
    # Moderation settings (chat.storage.base.Room, docs/moderation.md).
    archived = models.BooleanField(default=False)
    private = models.BooleanField(default=False)
    read_only = models.BooleanField(default=False)
    slow_mode_seconds = models.PositiveIntegerField(default=0)
    # People and rooms (chat.records.Room): a direct-message room, its topic, its latest message's time.
    direct = models.BooleanField(default=False)
    topic = models.CharField(max_length=250, blank=True, default="")
    last_activity = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["room_id"]

    def __str__(self) -> str:
        return self.room_id


class RoomMember(models.Model):
    """A user in a room (a user id, as in messages): access to a private room, a place in
    the user's room list for any room, a role (owner or member) and a per-user mute."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="members", db_column="room_id")
    user_id = models.CharField(max_length=128, db_index=True)
    role = models.CharField(max_length=16, default="member")
    muted = models.BooleanField(default=False)
    joined_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["room", "user_id"], name="chat_roommember_unique")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.room_id}"


class Message(models.Model):
    message_id = models.CharField(primary_key=True, max_length=36)
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages", db_column="room_id")
    seq = models.BigIntegerField()
    user_id = models.CharField(max_length=128)
    username = models.CharField(max_length=150)
    text = models.TextField()
    timestamp = models.DateTimeField()
    connection_id = models.CharField(max_length=64)
    # NULL, not "": the idempotency constraint must not match messages sent without one.
    client_message_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    ttl = models.BigIntegerField(db_index=True)
    # "hidden" or "deleted" by a moderator (a tombstone for clients); NULL: a live message.
    removed = models.CharField(max_length=16, null=True, blank=True)  # noqa: DJ001
    # Changes people make (chat.message_changes, chat.reactions; chat.records.MessageRecord).
    edited_at = models.DateTimeField(null=True, blank=True)
    edits = models.JSONField(default=list, blank=True)  # earlier texts: [{"text", "editedAt", "clientMessageId"}]
    reactions = models.JSONField(default=dict, blank=True)  # {emoji: [user ids in the order they reacted]}
    # A reply: the original's id, author and excerpt as sent ("" once the original is removed).
    reply_to_id = models.CharField(max_length=36, null=True, blank=True)  # noqa: DJ001
    reply_seq = models.BigIntegerField(default=0)
    reply_username = models.CharField(max_length=150, blank=True, default="")
    reply_excerpt = models.CharField(max_length=200, blank=True, default="")
    reply_removed = models.BooleanField(default=False)
    reply_count = models.PositiveIntegerField(default=0)
    # On a reply: the original's reply_count with this reply (chat.records.ReplyRef.number).
    reply_number = models.PositiveIntegerField(default=0)
    removed_by = models.CharField(max_length=16, blank=True, default="")  # "author" or "moderator"
    # User ids the server resolved from @mentions (chat.mentions).
    mentions = models.JSONField(default=list, blank=True)
    # Shared files (chat.records.NewMessage.attachments): a list of small JSON objects.
    attachments = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["room_id", "seq"]
        indexes = [models.Index(fields=["room", "reply_to_id", "seq"], name="chat_message_thread")]
        constraints = [
            models.UniqueConstraint(fields=["room", "seq"], name="chat_message_room_seq_unique"),
            models.UniqueConstraint(
                fields=["room", "user_id", "client_message_id"], name="chat_message_idempotency_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.room_id}#{self.seq}"


class RoomEvent(models.Model):
    """A room change other than a message (a removal, new settings, ...), with its own seq
    in the room's one sequence: the seqs of a room's messages and events never collide."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="events", db_column="room_id")
    seq = models.BigIntegerField()
    type = models.CharField(max_length=32)
    data = models.JSONField()  # the frame beyond type, roomId and seq (chat.storage.base.NewEvent)
    timestamp = models.DateTimeField()
    ttl = models.BigIntegerField(db_index=True)

    class Meta:
        ordering = ["room_id", "seq"]
        constraints = [models.UniqueConstraint(fields=["room", "seq"], name="chat_roomevent_room_seq_unique")]

    def __str__(self) -> str:
        return f"{self.room_id}#{self.seq} {self.type}"  # type: ignore[attr-defined]


class ReadMark(models.Model):
    """How far a user has read a room: the seq of the last room event they have seen.

    A plain room id (no foreign key): a mark outlives nothing it points at, and a public
    room's readers are no members.
    """

    room_id = models.CharField(max_length=64)
    user_id = models.CharField(max_length=128, db_index=True)
    last_read_seq = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["room_id", "user_id"], name="chat_readmark_unique")]

    def __str__(self) -> str:
        return f"{self.user_id} read {self.room_id} to {self.last_read_seq}"


class Connection(models.Model):
    connection_id = models.CharField(primary_key=True, max_length=64)
    user_id = models.CharField(max_length=128, db_index=True)
    username = models.CharField(max_length=150)
    connected_at = models.DateTimeField()
    ttl = models.BigIntegerField(db_index=True)
    instance_id = models.CharField(max_length=128, db_index=True)

    def __str__(self) -> str:
        return self.connection_id


class Instance(models.Model):
    """A daphne process with open sockets, alive until `ttl` (its keeper beats every
    CHAT_CONNECTION_HEARTBEAT_SECONDS). One that stops beating is dead: any live process
    deletes its connection rows (chat.connections), so the rows themselves can live long."""

    instance_id = models.CharField(primary_key=True, max_length=128)
    ttl = models.BigIntegerField()

    def __str__(self) -> str:
        return self.instance_id


# Moderation records live in Django's database whichever backend holds messages.
from chat.moderation_models import AuditLog, Ban, Mute, Report, SlowModeStamp  # noqa: E402

__all__ = [
    "AuditLog",
    "Ban",
    "Connection",
    "Instance",
    "Message",
    "Mute",
    "ReadMark",
    "Report",
    "Room",
    "RoomEvent",
    "RoomMember",
    "SlowModeStamp",
]
