"""Analytics rollups: counters per day (per room, per user) in Django's database.

They are written as things happen (analytics.services, called by the chat and moderation
services after their durable write) or by `manage.py rollup_analytics` (analytics.rollup),
whichever storage backend holds messages: DynamoDB messages are counted as they are
written, never by scanning the table. No row holds message text; a message that expires
from the store still counts on the day it was sent. docs/moderation.md defines the figures.
"""

from __future__ import annotations

from django.db import models


class DayCounter(models.Model):
    """A count of one thing on one UTC day, by key: "messages" by room id, "reports_opened"
    by room id, "reports_resolved" (key ""), "mod_action" by audit action, and the histograms
    behind medians ("first_reply", "resolve"): key = a duration bucket (analytics.durations)."""

    day = models.DateField()
    name = models.CharField(max_length=32)
    key = models.CharField(max_length=64, blank=True, default="")
    value = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "name", "key"], name="analytics_daycounter_unique")]
        indexes = [models.Index(fields=["name", "day"], name="analytics_daycounter_name_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.name}[{self.key}]={self.value}"


class UserDay(models.Model):
    """A user was active on a day: sent a message or had a socket open (the definition of
    "active" everywhere on the dashboard)."""

    day = models.DateField()
    user_id = models.CharField(max_length=128)
    messages = models.IntegerField(default=0)
    sockets = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "user_id"], name="analytics_userday_unique")]
        indexes = [models.Index(fields=["user_id", "day"], name="analytics_userday_user_day")]

    def __str__(self) -> str:
        return f"{self.user_id} on {self.day}"


class MinuteCounter(models.Model):
    """Messages stored in one UTC minute, across every process: the live messages/minute.
    Kept for a day (rollup_analytics prunes older rows)."""

    minute = models.DateTimeField(primary_key=True)
    messages = models.IntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.minute:%H:%M} {self.messages}"


class RoomActivity(models.Model):
    """A room's current conversation, for time to first reply: who opened it, when, and
    whether someone else has answered yet."""

    room_id = models.CharField(primary_key=True, max_length=64)
    last_at = models.DateTimeField()
    opened_at = models.DateTimeField()
    opener_id = models.CharField(max_length=128)
    answered = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.room_id


class SocketSpan(models.Model):
    """When a socket was open, for peak concurrent users (rollup_analytics sweeps these)."""

    connection_id = models.CharField(primary_key=True, max_length=64)
    user_id = models.CharField(max_length=128)
    opened_at = models.DateTimeField(db_index=True)
    closed_at = models.DateTimeField(null=True, blank=True, db_index=True)

    def __str__(self) -> str:
        return self.connection_id


class DayStat(models.Model):
    """A figure of a day computed by rollup_analytics: "wau", "mau", "peak_users"."""

    day = models.DateField()
    name = models.CharField(max_length=32)
    value = models.FloatField()
    computed_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "name"], name="analytics_daystat_unique")]

    def __str__(self) -> str:
        return f"{self.day} {self.name}={self.value}"


class Retention(models.Model):
    """Of the users who joined in the week starting `cohort` (a Monday), how many were active
    in week cohort+offset (offset 1..4). Computed by rollup_analytics."""

    cohort = models.DateField()
    offset = models.PositiveSmallIntegerField()
    cohort_size = models.IntegerField()
    active = models.IntegerField()
    computed_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["cohort", "offset"], name="analytics_retention_unique")]

    def __str__(self) -> str:
        return f"{self.cohort}+{self.offset}: {self.active}/{self.cohort_size}"
