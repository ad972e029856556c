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
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Final

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection, transaction

from chat import events
from chat.services import store_call
from chat.storage import get_store
from chat.storage.base import LogEntry, MessageRecord
from chatsite.db import rows
from search import metrics
from search.models import SearchEntry, SearchRoomCursor

log = logging.getLogger(__name__)

HOLE_GRACE_SECONDS: Final = 30
# How long the feed waits after a room change before it indexes what has queued: a batch's
# fixed cost (a transaction, FTS5's segment at its commit) is shared by the changes of that
# time, about 5 at 100 messages a second, instead of paid by each (docs/performance.md,
# "Indexing"). A message becomes searchable this much later; a search's page never waits.
GATHER_SECONDS: Final = 0.05
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


def _row(message: MessageRecord) -> tuple[str | int | bool, ...]:
    """The entry's column values, in _COLUMNS' order (a plain tuple: building a model
    instance to read its fields back cost more CPU than the insert's statement)."""
    return (
        message.message_id,
        message.room_id,
        message.seq,
        message.user_id,
        message.username,
        message.username.casefold(),  # author_key: from:
        message.text,
        int(message.timestamp.timestamp() * 1_000_000),  # at_us
        message.ttl,
        has_link(message.text),
        _has_file(message),
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
    upserts: list[tuple[str | int | bool, ...]] = []

    def flush() -> None:
        rows.run_many(rows.default(), _UPSERT_SQL, upserts)
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


_CLAIM_SQL: Final = (
    f"UPDATE {SearchRoomCursor._meta.db_table} SET indexed_seq = %s"  # noqa: S608
    " WHERE room_id = %s AND indexed_seq = %s RETURNING room_id"
)


def _write(room_id: str, from_seq: int, entries: Sequence[LogEntry], up_to: int) -> bool:
    """Apply entries and move the room's cursor from `from_seq` to `up_to`, in one
    transaction (the batch's, when `apply` opened one); False (nothing written) when the
    cursor is no longer at `from_seq`.

    No savepoint of its own: the claim is the first statement, so a room whose claim fails
    has written nothing, and a write that raises fails the whole batch, which the feed
    retries (as it did when each room had a savepoint: atomic re-raised it). The claim is
    one raw statement: the ORM's update cost more CPU than the statement (docs/performance.md).
    Both run through `chatsite.db.rows.fetch` (on SQLite, without Django's cursor wrapper)."""
    with _index_transaction():
        if len(rows.fetch(rows.default(), _CLAIM_SQL, [up_to, room_id, from_seq])) != 1:
            return False
        _apply_entries(entries)
    return True


@contextmanager
def _index_transaction() -> Iterator[None]:
    """A transaction for index writes, or none when one is open (a batch's, a caller's).

    On SQLite it commits without waiting for the disk (`synchronous = NORMAL` in WAL mode:
    the log is written, not synced; the store's next commit, synced, takes it along). The
    sync was half of a one-message index write's CPU (docs/performance.md). What a power cut
    can cost is the index's last commits, each with its cursor's move: the room's next write
    finds the gap and catches up from the store, `reindex_search` does it for every room, and
    a query checks its page against the store meanwhile, so a removed or edited message is
    never shown for what it was. The setting is the connection's: it is put back after."""
    if connection.in_atomic_block:
        yield
        return
    if connection.vendor != "sqlite":
        with transaction.atomic():
            yield
        return
    connection.ensure_connection()
    raw = connection.connection
    (synchronous,) = raw.execute("PRAGMA synchronous").fetchone()
    raw.execute("PRAGMA synchronous = NORMAL")
    try:
        with transaction.atomic():
            yield
    finally:
        if connection.connection is raw:  # not if Django closed it after an error
            raw.execute(f"PRAGMA synchronous = {int(synchronous)}")


def _contiguous(items: Sequence[LogEntry]) -> bool:
    return all(b.seq == a.seq + 1 for a, b in pairwise(items))


def apply(entries: Iterable[LogEntry]) -> None:
    """Bring the index up to date with entries a write just stored (synchronous).

    The usual case, a batch that follows on from each room's cursor, is one transaction of
    two statements a room: the cursor's conditional update and the upsert. Anything else (a
    new room, entries seen already) reads the cursor; a room with a gap catches up from the
    store after that transaction, page by page, each page committed (resumable).
    """
    by_room: dict[str, list[LogEntry]] = {}
    for entry in entries:
        by_room.setdefault(entry.room_id, []).append(entry)
    # One transaction for the batch's rooms: on SQLite most of a small write's cost is the
    # commit, where FTS5 writes a segment, so a batch of 10 messages in 10 rooms costs one
    # commit, not ten.
    with _index_transaction():
        behind = [room_id for room_id, items in by_room.items() if not _apply_room(room_id, items)]
    for room_id in behind:
        catch_up(room_id)


def _apply_room(room_id: str, items: list[LogEntry]) -> bool:
    """Write a room's entries if they follow on from its cursor; False when the room has a
    gap to catch up from the store."""
    items.sort(key=lambda e: e.seq)
    if _contiguous(items) and _write(room_id, items[0].seq - 1, items, items[-1].seq):
        return True
    cursor = _cursor(room_id)
    fresh = [e for e in items if e.seq > cursor]
    if not fresh:
        return True
    seqs = [e.seq for e in fresh]
    return seqs == list(range(cursor + 1, cursor + 1 + len(fresh))) and _write(room_id, cursor, fresh, seqs[-1])


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
    # This thread's CPU for the batch (Django's sync thread runs nothing else meanwhile):
    # what indexing costs this process, without the database server's share on PostgreSQL.
    started = time.thread_time()
    try:
        apply(entries)
    except Exception:
        log.exception("search: indexing %d room events failed", len(entries))
        metrics.INDEX_FAILURES.inc()
        return False
    finally:
        metrics.INDEX_CPU.inc(time.thread_time() - started)
        metrics.INDEXED_EVENTS.inc(len(entries))
    return True


_apply_on_sync_thread = database_sync_to_async(_apply_safely)  # made once, not per batch


class _Feed:
    """This event loop's queue of stored entries and the task that indexes them."""

    def __init__(self) -> None:
        self.pending: list[LogEntry] = []
        self.task: asyncio.Task[None] | None = None
        self.idle = asyncio.Event()
        self.idle.set()

    async def run(self) -> None:
        try:
            await asyncio.sleep(GATHER_SECONDS)
            while self.pending:
                batch, self.pending = self.pending, []
                for delay in (*RETRY_DELAYS, None):
                    if await _apply_on_sync_thread(batch):
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
    indexes now outside one: management commands, admin actions after their commit).
    Nothing with CHAT_SEARCH_INDEX_FEED off: `reindex_search` catches up when it is on again."""
    if not settings.CHAT_SEARCH_INDEX_FEED:
        return
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
