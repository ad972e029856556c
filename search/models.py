"""The search index's tables: a derived copy of the searchable messages, and how far each
room's copy has come.

The index is never the truth (the store is: chat.storage): it is fed after each stored room
event (search.indexer), rebuilt by `manage.py reindex_search`, and what a query returns is
checked against the store (search.services). The full-text part is the engine's
(search.engines): an FTS5 table kept in step by triggers on SQLite, a generated tsvector
column with a GIN index on PostgreSQL, both made by this app's migration.
"""

from __future__ import annotations

from django.db import models


class SearchEntry(models.Model):
    """One live, searchable message (removed and expired ones are not here)."""

    message_id = models.CharField(max_length=36, unique=True)
    room_id = models.CharField(max_length=64)
    seq = models.BigIntegerField()
    user_id = models.CharField(max_length=128)
    username = models.CharField(max_length=150)
    author_key = models.CharField(max_length=150)  # the username case-folded: from:
    text = models.TextField()
    at_us = models.BigIntegerField()  # the message's time, epoch microseconds (recency, before:/after:)
    ttl = models.BigIntegerField()  # epoch seconds after which the message no longer exists
    has_link = models.BooleanField(default=False)
    has_file = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(fields=["room_id", "at_us"], name="search_entry_room_at"),
            models.Index(fields=["ttl"], name="search_entry_ttl"),
        ]

    def __str__(self) -> str:
        return f"{self.room_id}#{self.seq}"


class SearchRoomCursor(models.Model):
    """The highest seq of a room up to which every room event is in the index."""

    room_id = models.CharField(primary_key=True, max_length=64)
    indexed_seq = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.room_id}@{self.indexed_seq}"
