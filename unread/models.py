"""What a user asked to be told, and where to: notification levels, push subscriptions,
mobile device endpoints. Django's database with either storage backend (like moderation's
records); read state itself is in the chat store (chat.storage: mark_read)."""

from __future__ import annotations

from django.db import models


class Level(models.TextChoices):
    ALL = "all", "All messages"
    MENTIONS = "mentions", "Mentions and direct messages"
    NOTHING = "nothing", "Nothing"


class RoomNotify(models.Model):
    """A user's notification level in one room (default: mentions and DMs), and mute."""

    user_id = models.CharField(max_length=128)
    room_id = models.CharField(max_length=64, db_index=True)
    level = models.CharField(max_length=16, choices=Level.choices, default=Level.MENTIONS)
    muted = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user_id", "room_id"], name="unread_roomnotify_unique")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.room_id}: {self.level}{' (muted)' if self.muted else ''}"


class Preference(models.Model):
    """Per user: whether to send read receipts (on unless turned off)."""

    user_id = models.CharField(max_length=128, unique=True)
    send_receipts = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"{self.user_id}: receipts {'on' if self.send_receipts else 'off'}"


class PushSubscription(models.Model):
    """A browser's Web Push subscription (PushSubscription.toJSON()): endpoint and keys."""

    user_id = models.CharField(max_length=128, db_index=True)
    endpoint = models.URLField(max_length=1000, unique=True)
    p256dh = models.CharField(max_length=200)
    auth = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.user_id}: {self.endpoint[:60]}"


class Device(models.Model):
    """A phone's push token, registered as an Amazon SNS platform endpoint (APNs or FCM)."""

    class Platform(models.TextChoices):
        APNS = "apns", "APNs (iOS)"
        FCM = "fcm", "FCM (Android)"

    user_id = models.CharField(max_length=128, db_index=True)
    platform = models.CharField(max_length=8, choices=Platform.choices)
    token = models.CharField(max_length=512)
    endpoint_arn = models.CharField(max_length=512)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["platform", "token"], name="unread_device_unique")]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.platform}"
