"""Feeding the search index from each room's log, so that no stored message is lost to it.

The index (search.models) is a derived copy: the store (chat.storage, either backend) is the
truth. Each room has a cursor, `indexed_seq`: every room event up to it is in the index. A
batch of stored entries is written only when it starts right after the cursor, and the
cursor moves in the same transaction, claimed by a conditional update (`WHERE indexed_seq
= <what we read>`), so two processes never apply one room's events out of order. When a
batch does not follow on (an entry this process never saw: a write on another process that
failed to index, a crash between the store and the index), the room catches up from the
store instead (`catch_up`: `events_after` from the cursor, messages in their current
state), which is also what `manage.py reindex_search` runs for every room.

Hot path: chat.services tells `notify` of every stored change; `notify` appends to this
process's queue and returns (no I/O before the ack); one task per event loop drains the
queue in batches on Django's sync thread. A batch that fails is retried with backoff; one
that fails every time is left behind, and the room's next write or `reindex_search` brings
it back (the lag metric shows it meanwhile: search.metrics).

A seq can be missing from a room's log for good (an expired entry) or for a moment (a
DynamoDB write that took its seq and has not landed yet). Catching up waits at such a hole
until the entry after it is HOLE_GRACE_SECONDS old, then steps over it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Final

from channels.db import database_sync_to_async
from django.db import connection, transaction

from chat import events
from chat.services import store_call
from chat.storage import get_store
from chat.storage.base import LogEntry, MessageRecord
from search import metrics
from search.models import SearchEntry, SearchRoomCursor

log = logging.getLogger(__name__)

HOLE_GRACE_SECONDS: Final = 30
CATCH_UP_PAGE: Final = 500
RETRY_DELAYS: Final = (0.2, 1.0, 5.0)

_LINK = re.compile(r"(?i)\b(?:https?://|www\.)\S+")


def _now() -> datetime:
    return datetime.now(UTC)


def has_link(text: str) -> bool:
    return _LINK.search(text) is not None


def _has_file(message: MessageRecord) -> bool:
    # Messages with attachments carry them on the record (the files feature); none do yet.
    return bool(getattr(message, "attachments", None) or getattr(message, "files", None))


def _row(message: MessageRecord) -> SearchEntry:
    return SearchEntry(
        message_id=message.message_id,
        room_id=message.room_id,
        seq=message.seq,
        user_id=message.user_id,
        username=message.username,
        author_key=message.username.casefold(),
        text=message.text,
        at_us=int(message.timestamp.timestamp() * 1_000_000),
        ttl=message.ttl,
        has_link=has_link(message.text),
        has_file=_has_file(message),
    )


_COLUMNS: Final = (
    "message_id",
    "room_id",
    "seq",
    "user_id",
    "username",
    "author_key",
    "text",
    "at_us",
    "ttl",
    "has_link",
    "has_file",
)
# One statement, no ORM on the per-message path; ON CONFLICT works on SQLite and PostgreSQL.
# (A table name and column names: no user value; S608 cannot tell.)
_UPSERT_SQL: Final = (
    f"INSERT INTO {SearchEntry._meta.db_table} ({', '.join(_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join(['%s'] * len(_COLUMNS))}) ON CONFLICT (message_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[1:])
)


def _apply_entries(entries: Sequence[LogEntry]) -> None:
    """Write these entries (seq order) to the index: new and current messages upserted,
    removed ones dropped, edits applied to the text."""
    upserts: list[SearchEntry] = []

    def flush() -> None:
        if upserts:
            with connection.cursor() as cursor:
                cursor.executemany(_UPSERT_SQL, [[getattr(row, f) for f in _COLUMNS] for row in upserts])
            upserts.clear()

    for entry in entries:
        if isinstance(entry, MessageRecord):
            if entry.removed:
                flush()
                SearchEntry.objects.filter(message_id=entry.message_id).delete()
            else:
                upserts.append(_row(entry))
            continue
        flush()
        if entry.type == events.MESSAGE_REMOVED:
            SearchEntry.objects.filter(message_id=entry.data.get("messageId")).delete()
        elif entry.type == events.MESSAGE_EDITED and isinstance(entry.data.get("message"), str):
            text = entry.data["message"]
            SearchEntry.objects.filter(message_id=entry.data.get("messageId")).update(
                text=text, has_link=has_link(text)
            )
    flush()


def _cursor(room_id: str) -> int:
    row, _ = SearchRoomCursor.objects.get_or_create(room_id=room_id)
    return row.indexed_seq


def _write(room_id: str, from_seq: int, entries: Sequence[LogEntry], up_to: int) -> bool:
    """Apply entries and move the room's cursor from `from_seq` to `up_to`, in one
    transaction; False (nothing written) when the cursor is no longer at `from_seq`."""
    with transaction.atomic():
        claimed = SearchRoomCursor.objects.filter(room_id=room_id, indexed_seq=from_seq).update(indexed_seq=up_to)
        if not claimed:
            return False
        _apply_entries(entries)
    return True


def _contiguous(items: Sequence[LogEntry]) -> bool:
    return all(b.seq == a.seq + 1 for a, b in pairwise(items))


def apply(entries: Iterable[LogEntry]) -> None:
    """Bring the index up to date with entries a write just stored (synchronous).

    The usual case, a batch that follows on from the room's cursor, is one transaction of
    two statements: the cursor's conditional update and the upsert. Anything else (a new
    room, entries seen already, a gap) reads the cursor and, on a gap, catches up.
    """
    by_room: dict[str, list[LogEntry]] = {}
    for entry in entries:
        by_room.setdefault(entry.room_id, []).append(entry)
    if len(by_room) > 1:
        # One transaction for the batch's rooms (each room's write a savepoint in it): on
        # SQLite most of a small write's cost is the commit, where FTS5 writes a segment,
        # so a batch of 10 messages in 10 rooms costs one commit, not ten.
        with transaction.atomic():
            _apply_rooms(by_room)
    else:
        _apply_rooms(by_room)


def _apply_rooms(by_room: dict[str, list[LogEntry]]) -> None:
    for room_id, items in by_room.items():
        items.sort(key=lambda e: e.seq)
        if _contiguous(items) and _write(room_id, items[0].seq - 1, items, items[-1].seq):
            continue
        cursor = _cursor(room_id)
        fresh = [e for e in items if e.seq > cursor]
        if not fresh:
            continue
        seqs = [e.seq for e in fresh]
        if seqs == list(range(cursor + 1, cursor + 1 + len(fresh))) and _write(room_id, cursor, fresh, seqs[-1]):
            continue
        catch_up(room_id)


def _followed_on(entries: Sequence[LogEntry], cursor: int, now: datetime) -> list[LogEntry]:
    """The entries that may be applied after `cursor`: those in an unbroken run, and past a
    hole only when the entry after it is old enough for the hole to be for good."""
    taken: list[LogEntry] = []
    expected = cursor + 1
    for entry in entries:
        if entry.seq != expected and now - entry.timestamp < timedelta(seconds=HOLE_GRACE_SECONDS):
            break
        taken.append(entry)
        expected = entry.seq + 1
    return taken


def catch_up(room_id: str, *, page: int = CATCH_UP_PAGE, max_pages: int | None = None) -> int:
    """Apply the room's log from its cursor on, read from the store, page by page; return how
    many entries were applied. Resumable: each page moves the cursor in its transaction."""
    store = get_store()
    applied = pages = 0
    while max_pages is None or pages < max_pages:
        pages += 1
        cursor = _cursor(room_id)
        now = _now()
        entries = store_call(store.events_after, room_id=room_id, after_seq=cursor, limit=page, now=now)
        taken = _followed_on(entries, cursor, now)
        if not taken:
            return applied
        if not _write(room_id, cursor, taken, taken[-1].seq):
            continue  # another writer moved the cursor: read again from where it is now
        applied += len(taken)
        if len(taken) < len(entries) or len(entries) < page:
            return applied
    return applied


def reset_room(room_id: str) -> None:
    """Forget a room's entries and cursor (a rebuild starts here)."""
    with transaction.atomic():
        SearchEntry.objects.filter(room_id=room_id).delete()
        SearchRoomCursor.objects.update_or_create(room_id=room_id, defaults={"indexed_seq": 0})


def purge_expired(*, now: datetime | None = None) -> int:
    """Drop entries of expired messages (queries skip them already)."""
    deleted, _ = SearchEntry.objects.filter(ttl__lte=int((now or _now()).timestamp())).delete()
    return deleted


@dataclass(frozen=True, slots=True)
class Lag:
    events_behind: int  # room events stored and not yet applied to the index, over every room
    rooms_behind: int


def lag() -> Lag:
    """How far the index is behind the store (a scan of the room list)."""
    rooms = store_call(get_store().list_rooms)
    cursors = dict(SearchRoomCursor.objects.values_list("room_id", "indexed_seq"))
    behind = [room.last_seq - cursors.get(room.room_id, 0) for room in rooms]
    behind = [b for b in behind if b > 0]
    return Lag(events_behind=sum(behind), rooms_behind=len(behind))


# The hot path: queue, then a task per event loop ---------------------------------------------


def _apply_safely(entries: list[LogEntry]) -> bool:
    try:
        apply(entries)
    except Exception:
        log.exception("search: indexing %d room events failed", len(entries))
        metrics.INDEX_FAILURES.inc()
        return False
    return True


class _Feed:
    """This event loop's queue of stored entries and the task that indexes them."""

    def __init__(self) -> None:
        self.pending: list[LogEntry] = []
        self.task: asyncio.Task[None] | None = None
        self.idle = asyncio.Event()
        self.idle.set()

    async def run(self) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending, []
                for delay in (*RETRY_DELAYS, None):
                    if await database_sync_to_async(_apply_safely)(batch):
                        break
                    if delay is None:
                        log.error("search: %d room events left for the next catch-up", len(batch))
                        break
                    await asyncio.sleep(delay)
        finally:
            self.task = None
            self.idle.set()


_feeds: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Feed] = weakref.WeakKeyDictionary()


def notify(entries: list[LogEntry]) -> None:
    """A room change was stored: index it soon (queued; returns at once in an event loop,
    indexes now outside one: management commands, admin actions after their commit)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        _apply_safely(list(entries))
        return
    feed = _feeds.get(loop)
    if feed is None:
        feed = _feeds[loop] = _Feed()
    feed.pending.extend(entries)
    if feed.task is None:
        feed.idle.clear()
        feed.task = loop.create_task(feed.run())


async def flush() -> None:
    """Wait until this event loop's queue is indexed (tests, and a search right after a send)."""
    feed = _feeds.get(asyncio.get_running_loop())
    if feed is not None:
        await feed.idle.wait()
