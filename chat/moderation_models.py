"""Moderation records: bans, mutes, reports, slow-mode stamps and the audit log.

They live in Django's database whichever storage backend holds rooms and messages (users
are Django users either way). Only `chat.moderation` and `chat.services` write them;
admin shows them read-only, so every change goes through a service and into the audit log.
Rooms and messages are referred to by id (`room_id`, `message_id`), never by foreign key:
with the DynamoDB backend they are not rows of this database.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from chatsite.db import rows


def _active(now: datetime) -> Q:
    return Q(lifted_at__isnull=True) & (Q(expires_at__isnull=True) | Q(expires_at__gt=now))


def _any_active(model: type[models.Model], *, user_id: int, now: datetime, room_id: str | None = None) -> bool:
    """Whether `model` (Ban, Mute) holds a record for the user active now (`_active`'s rule),
    one covering `room_id` (or every room) when given. Asked on every socket opened (bans) and
    every message sent (mutes), and almost always no: one statement written out, as the ORM
    spent about ten times the statement's own cost building the query (docs/performance.md,
    "Many small rooms"), and its text made once. Names come from the model, quoted; values
    are parameters."""
    db = rows.default()
    params: list[Any] = [user_id, db.ops.adapt_datetimefield_value(now)]
    if room_id is not None:
        params.append(room_id)
    return bool(rows.fetch(db, _active_statement(db.vendor, model, room_id is not None), params))


@functools.cache
def _active_statement(vendor: str, model: type[models.Model], in_room: bool) -> str:
    user, lifted, expires = (rows.column(model, name) for name in ("user", "lifted_at", "expires_at"))
    where = f"{user} = %s AND {lifted} IS NULL AND ({expires} IS NULL OR {expires} > %s)"
    if in_room:
        room = rows.column(model, "room_id")
        where += f" AND ({room} = '' OR {room} = %s)"
    return f"SELECT 1 FROM {rows.table(model)} WHERE {where} LIMIT 1"  # noqa: S608


class Ban(models.Model):
    """A banned user's sockets are closed with 4403, and new ones refused, until it is lifted."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_bans")
    reason = models.TextField()
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    expires_at = models.DateTimeField(null=True, blank=True)  # None: until lifted
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "lifted_at"], name="chat_ban_user_active")]

    def __str__(self) -> str:
        return f"ban of {self.user_id}"

    @classmethod
    def active(cls, now: datetime) -> models.QuerySet[Ban]:
        return cls.objects.filter(_active(now))

    @classmethod
    def any_active(cls, *, user_id: int, now: datetime) -> bool:
        """Whether the user is banned now (one statement: `_any_active`)."""
        return _any_active(cls, user_id=user_id, now=now)

    def is_active(self, now: datetime) -> bool:
        return self.lifted_at is None and (self.expires_at is None or self.expires_at > now)


class Mute(models.Model):
    """A muted user reads but cannot post: in one room, or everywhere (room_id empty)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_mutes")
    room_id = models.CharField(max_length=64, blank=True, default="")  # "": every room
    reason = models.TextField()
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    expires_at = models.DateTimeField()
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "expires_at"], name="chat_mute_user_expires")]

    def __str__(self) -> str:
        return f"mute of {self.user_id} in {self.room_id or 'every room'}"

    @classmethod
    def active(cls, now: datetime) -> models.QuerySet[Mute]:
        return cls.objects.filter(_active(now))

    @classmethod
    def until(cls, *, user_id: str, room_id: str, now: datetime) -> datetime | None:
        """When the user's latest-ending mute that covers this room ends, or None if not muted."""
        if not user_id.isdigit():
            return None  # not a Django user id (a test identity): nobody can have muted it
        if not cls._any_active(user_id=int(user_id), room_id=room_id, now=now):
            return None
        latest = (
            cls.active(now)
            .filter(user_id=int(user_id))
            .filter(Q(room_id="") | Q(room_id=room_id))
            .order_by("-expires_at")
            .values_list("expires_at", flat=True)
            .first()
        )
        return latest

    @classmethod
    def _any_active(cls, *, user_id: int, room_id: str, now: datetime) -> bool:
        """Whether any mute covers the user in this room now: `until`'s common answer (no),
        in one statement (`_any_active`)."""
        return _any_active(cls, user_id=user_id, now=now, room_id=room_id)


class Report(models.Model):
    """A user's report of a message, with a copy of what it said when reported."""

    OPEN = "open"
    RESOLVED = "resolved"
    DISMISSED = "dismissed"
    STATUSES = [(OPEN, "Open"), (RESOLVED, "Resolved"), (DISMISSED, "Dismissed")]

    room_id = models.CharField(max_length=64)
    message_id = models.CharField(max_length=64)
    seq = models.BigIntegerField()
    author_id = models.CharField(max_length=128)  # the reported message's user id
    author_username = models.CharField(max_length=150)
    text = models.TextField()  # the message as reported: moderators judge it even if deleted since
    reporter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_reports")
    reason = models.TextField()
    created_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=STATUSES, default=OPEN, db_index=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    resolution = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # One report per reporter and message: a second one changes nothing.
            models.UniqueConstraint(fields=["reporter", "message_id"], name="chat_report_once_per_reporter")
        ]

    def __str__(self) -> str:
        return f"report {self.pk} of {self.room_id}#{self.seq}"


class SlowModeStamp(models.Model):
    """When a user last posted in a slow-mode room: shared by every daphne process."""

    room_id = models.CharField(max_length=64)
    user_id = models.CharField(max_length=128)
    posted_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["room_id", "user_id"], name="chat_slowmode_unique")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.room_id} at {self.posted_at}"

    @classmethod
    def take(cls, *, room_id: str, user_id: str, now: datetime, seconds: int) -> float | None:
        """Claim a post now: None when allowed (and recorded), else the seconds left to wait.

        The conditional UPDATE is the check: two posts racing on two processes cannot both
        pass, whatever the database.
        """
        allowed_before = now - timedelta(seconds=seconds)
        if cls.objects.filter(room_id=room_id, user_id=user_id, posted_at__lte=allowed_before).update(posted_at=now):
            return None
        stamp, created = cls.objects.get_or_create(room_id=room_id, user_id=user_id, defaults={"posted_at": now})
        if created:
            return None
        return max(0.1, seconds - (now - stamp.posted_at).total_seconds())

    @classmethod
    def give_back(cls, *, room_id: str, user_id: str, now: datetime) -> None:
        """Undo `take` for a post that was not stored after all."""
        cls.objects.filter(room_id=room_id, user_id=user_id, posted_at=now).delete()


class AuditLog(models.Model):
    """One moderator action: who, what, when, why. Written once by chat.moderation, never changed."""

    at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    actor_username = models.CharField(max_length=150)  # kept when the account goes
    action = models.CharField(max_length=40, db_index=True)
    room_id = models.CharField(max_length=64, blank=True, default="")
    target = models.CharField(max_length=200, blank=True, default="")  # "user:17", "message:<id>", ...
    reason = models.TextField()
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_username} {self.action} {self.target}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValueError("audit log entries are never changed")
        super().save(*args, **kwargs)
