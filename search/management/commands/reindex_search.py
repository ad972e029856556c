"""manage.py reindex_search: bring the search index up to date with the store, or rebuild it.

Room by room, page by page (`--page` room events a store read), each page committed with
the room's cursor: an interrupted run loses nothing, and running it again resumes where each
room's cursor stands. `--rebuild` first forgets what the index holds (all rooms, or the
`--room` given) and builds it again from the store; `--status` only says how far behind the
index is. Expired entries are dropped on every run.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from chat.services import store_call
from chat.storage import get_store
from search import indexer


class Command(BaseCommand):
    help = "Bring the search index up to date with the message store (resumable), or --rebuild it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rebuild", action="store_true", help="forget the index's rows first, then rebuild")
        parser.add_argument("--room", action="append", default=[], help="only this room (repeatable)")
        parser.add_argument("--page", type=int, default=indexer.CATCH_UP_PAGE, help="room events per store read")
        parser.add_argument("--status", action="store_true", help="only report how far the index lags")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["status"]:
            lag = indexer.lag()
            self.stdout.write(f"{lag.events_behind} room events behind in {lag.rooms_behind} rooms")
            return
        rooms = store_call(get_store().list_rooms)
        if options["room"]:
            rooms = [r for r in rooms if r.room_id in set(options["room"])]
        total = sum(r.last_seq for r in rooms) if options["rebuild"] else indexer.lag().events_behind
        progress = _Progress(total, enabled=not options["no_progress"] and sys.stderr.isatty())
        applied = 0
        for room in rooms:
            if options["rebuild"]:
                indexer.reset_room(room.room_id)
            while True:
                count = indexer.catch_up(room.room_id, page=options["page"], max_pages=1)
                applied += count
                progress.advance(count, room.room_id)
                if count == 0:
                    break
        progress.done()
        purged = indexer.purge_expired()
        self.stdout.write(f"indexed {applied} room events in {len(rooms)} rooms; dropped {purged} expired entries")


class _Progress:
    """A one-line progress bar on stderr (a terminal only)."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.total, self.count, self.enabled, self.started = max(total, 1), 0, enabled, time.monotonic()

    def advance(self, count: int, label: str) -> None:
        self.count += count
        if not self.enabled:
            return
        share = min(1.0, self.count / self.total)
        bar = "#" * int(share * 30)
        rate = self.count / max(time.monotonic() - self.started, 1e-6)
        sys.stderr.write(f"\r[{bar:<30}] {share:6.1%} {self.count}/{self.total} {rate:,.0f}/s {label[:24]:<24}")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
