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

    class Meta:
        ordering = ["room_id"]

    def __str__(self) -> str:
        return self.room_id


class RoomMember(models.Model):
    """A member of a private room (a user id, as in messages)."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="members", db_column="room_id")
    user_id = models.CharField(max_length=128, db_index=True)

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
    # Shared files (chat.records.NewMessage.attachments): a list of small JSON objects.
    attachments = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["room_id", "seq"]
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


class Connection(models.Model):
    connection_id = models.CharField(primary_key=True, max_length=64)
    user_id = models.CharField(max_length=128, db_index=True)
    username = models.CharField(max_length=150)
    connected_at = models.DateTimeField()
    ttl = models.BigIntegerField(db_index=True)
    instance_id = models.CharField(max_length=128, db_index=True)

    def __str__(self) -> str:
        return self.connection_id


# Moderation records live in Django's database whichever backend holds messages.
from chat.moderation_models import AuditLog, Ban, Mute, Report, SlowModeStamp  # noqa: E402

__all__ = [
    "AuditLog",
    "Ban",
    "Connection",
    "Message",
    "Mute",
    "Report",
    "Room",
    "RoomEvent",
    "RoomMember",
    "SlowModeStamp",
]
