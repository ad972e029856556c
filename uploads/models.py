"""An uploaded file, from its slot to its message's end (issue 18; docs/data-model.md).

One table in the Django database whichever chat store holds the messages: an upload is
claimed by one message, whose record then carries what clients see of it. The bytes are in
the "uploads" storage (S3 or the file system) under keys made of the upload id only:
`incoming/<id>` where the browser posts, `files/<id>` once verified, `thumbs/<id>` for an
image's thumbnail. The browser can write to incoming/ only, so a slot used again changes
nothing that was verified.
"""

from __future__ import annotations

from django.db import models


class Upload(models.Model):
    PENDING = "pending"  # a slot was given; the file may be on its way
    READY = "ready"  # verified, in files/, not on a message yet
    ATTACHED = "attached"  # claimed by a message (message_id set once it is stored)
    STATUSES = [(s, s) for s in (PENDING, READY, ATTACHED)]

    upload_id = models.CharField(primary_key=True, max_length=32)
    user_id = models.CharField(max_length=128, db_index=True)
    room_id = models.CharField(max_length=64, db_index=True)
    name = models.CharField(max_length=200)
    declared_size = models.BigIntegerField()
    declared_type = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=STATUSES, default=PENDING)
    created_at = models.DateTimeField(db_index=True)
    slot_expires_at = models.DateTimeField()
    received = models.BooleanField(default=False)  # the embedded default's one-time POST was used
    # Known once verified: the real size and type, an image's size and thumbnail.
    size = models.BigIntegerField(null=True, blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    thumbnail_type = models.CharField(max_length=32, blank=True)  # "" when there is none
    # The message that claimed it: (user, room, clientMessageId) of the claim, then its id.
    claim_cmid = models.CharField(max_length=64, blank=True)
    message_id = models.CharField(max_length=64, blank=True, db_index=True)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)  # the message's ttl

    class Meta:
        indexes = [models.Index(fields=["status", "created_at"], name="uploads_status_created")]

    def __str__(self) -> str:
        return f"{self.upload_id} {self.name!r} ({self.status})"

    @property
    def incoming_key(self) -> str:
        return f"incoming/{self.upload_id}"

    @property
    def file_key(self) -> str:
        return f"files/{self.upload_id}"

    @property
    def thumbnail_key(self) -> str:
        return f"thumbs/{self.upload_id}"
