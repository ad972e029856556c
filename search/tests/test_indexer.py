"""The feed's batching and the index transaction (search.indexer), on the index's SQL
database: how changes are gathered and written (the access and freshness rules are
test_search's). `backend` (search/tests/conftest.py) runs a test on SQLite, PostgreSQL and
with messages in DynamoDB."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection

from chat.storage import get_store
from chat.storage.base import LogEntry, MessageRecord, NewMessage
from search import indexer
from search.models import SearchEntry, SearchRoomCursor


def _stored(room_id: str, text: str) -> MessageRecord:
    store = get_store()
    store.ensure_room(room_id=room_id, name=room_id, created_by=None, now=datetime.now(UTC))
    return store.append_message(
        NewMessage(
            room_id=room_id,
            user_id="u-1",
            username="one",
            text=text,
            connection_id="c",
            client_message_id=None,
            timestamp=datetime.now(UTC),
            ttl_seconds=86_400,
        )
    ).message


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(30)
def test_changes_that_arrive_while_the_feed_gathers_are_written_in_one_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """A change starts the feed's wait (GATHER_SECONDS); changes stored meanwhile, in other
    rooms too, join its batch: one index transaction for all of them. (The default database
    only: the feed writes on Django's sync thread, which `backend` does not repoint.)"""
    batches: list[list[LogEntry]] = []
    apply = indexer.apply
    monkeypatch.setattr(indexer, "apply", lambda entries: (batches.append(list(entries)), apply(entries)))
    monkeypatch.setattr(indexer, "GATHER_SECONDS", 0.01)
    messages = [_stored(room, f"gathered {room}") for room in ("a", "b", "c")]

    async def feed() -> None:
        indexer.notify([messages[0]])
        await asyncio.sleep(0)  # the feed's task starts, and waits
        indexer.notify(messages[1:])
        await indexer.flush()

    asyncio.run(feed())
    assert [[m.message_id for m in batch] for batch in batches] == [[m.message_id for m in messages]]
    assert SearchEntry.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_a_batch_writes_the_rooms_that_follow_on_and_catches_up_the_one_with_a_gap(backend: str) -> None:
    """A batch over rooms is one transaction; a room whose entries do not follow on from its
    cursor writes nothing in it and catches up from the store after it."""
    first = _stored("a", "alpha one")
    indexer.apply([first])
    _stored("a", "alpha two, never told to the index")
    third = _stored("a", "alpha three")
    other = _stored("b", "beta one")
    indexer.apply([third, other])
    assert sorted(SearchEntry.objects.values_list("text", flat=True)) == [
        "alpha one",
        "alpha three",
        "alpha two, never told to the index",
        "beta one",
    ]
    assert dict(SearchRoomCursor.objects.values_list("room_id", "indexed_seq")) == {"a": third.seq, "b": other.seq}


@pytest.mark.django_db(transaction=True)
def test_an_index_write_puts_the_connections_sync_setting_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """On SQLite the index's transaction commits unsynced (the store's next commit syncs the
    log); the connection's setting is back after it, written or failed, for the store's
    writes on the same connection."""
    if connection.vendor != "sqlite":
        pytest.skip("a SQLite setting")

    def synchronous() -> Any:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA synchronous")
            return cursor.fetchone()[0]

    before = synchronous()
    indexer.apply([_stored("a", "synced after")])
    assert synchronous() == before
    seen: list[Any] = []

    def failing(entries: Any) -> None:
        seen.append(synchronous())
        raise RuntimeError("disk full")

    monkeypatch.setattr(indexer, "_apply_entries", failing)
    with pytest.raises(RuntimeError):
        indexer.apply([_stored("a", "not written")])
    assert seen == [1] and synchronous() == before  # NORMAL while writing
    assert SearchRoomCursor.objects.get(room_id="a").indexed_seq == 1  # the failed write's claim rolled back


@pytest.mark.django_db(transaction=True)
def test_with_the_feed_off_nothing_is_indexed_and_the_next_write_on_catches_up(settings: Any) -> None:
    """CHAT_SEARCH_INDEX_FEED off (docs/operations.md): a stored change is not written to the
    index, in an event loop or outside one; with the feed on again the room's next write
    catches up from the store, the skipped change included."""
    settings.CHAT_SEARCH_INDEX_FEED = False
    first = _stored("a", "skipped outside a loop")
    indexer.notify([first])
    second = _stored("a", "skipped in a loop")

    async def feed() -> None:
        indexer.notify([second])
        await indexer.flush()

    asyncio.run(feed())
    assert SearchEntry.objects.count() == 0
    settings.CHAT_SEARCH_INDEX_FEED = True
    indexer.notify([_stored("a", "indexed again")])
    assert sorted(SearchEntry.objects.values_list("text", flat=True)) == [
        "indexed again",
        "skipped in a loop",
        "skipped outside a loop",
    ]
