"""The storage contract: every test runs against both backends (local ORM, DynamoDB on moto),
the local one on SQLite and on PostgreSQL.

A behaviour `chat.services` relies on belongs here, once, not in a per-backend copy. The
DynamoDB store is built with a tiny page size and recent window, so reads here cross
DynamoDB pages, meet pages emptied by the expiry filter, and join the index's older seqs
to the newest ones read by key.
"""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from django.db import connections

from chat import events
from chat.storage import schema
from chat.storage.base import (
    ChatStore,
    ConnectionRecord,
    EventRecord,
    MessageRecord,
    NewEvent,
    NewMessage,
    ReadMarkResult,
    RoomNotFound,
)
from chat.storage.dynamodb import DynamoDBClient, DynamoDBStore, ensure_tables, make_client
from chat.storage.local import LocalStore
from tests.fixtures.aws import MotoServer, running_moto
from tests.fixtures.postgres import default_database, module_postgres

T = TypeVar("T")

# Every test gets pytest-django's database for the local backend (unused by DynamoDB runs).
pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC)
DAY = 86_400
MESSAGE_TTL = 30 * DAY


@pytest.fixture(scope="session")
def serial_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """A moto server process whose requests are atomic, as DynamoDB's are (moto_process.py says why)."""
    with running_moto(tmp_path_factory.mktemp("serial-moto"), serial=True) as server:
        yield server


@pytest.fixture(scope="session")
def serial_dynamodb(serial_moto: MotoServer) -> DynamoDBClient:
    """One boto3 client for the suite (building one loads botocore's models: ~0.2 s)."""
    with pytest.MonkeyPatch.context() as env:
        for key, value in serial_moto.env.items():
            env.setenv(key, value)
        return make_client(region=serial_moto.env["AWS_REGION"])


def _dynamodb_store(request: pytest.FixtureRequest) -> Iterator[ChatStore]:
    """A DynamoDB store on tables of its own, with pages of two items and a recent window of three seqs."""
    client: DynamoDBClient = request.getfixturevalue("serial_dynamodb")
    names = schema.TableNames.with_prefix(f"contract-{uuid.uuid4().hex[:10]}-")
    ensure_tables(client, names, poll_seconds=0.05)
    yield DynamoDBStore(client=client, tables=names, page_size=2, recent_window=3)
    for table in schema.TABLES:
        client.delete_table(TableName=names.of(table))


@pytest.fixture(params=["local", "postgresql", "dynamodb"])
def store(request: pytest.FixtureRequest) -> Iterator[ChatStore]:
    if request.param == "local":
        yield LocalStore()  # on pytest-django's test database (see pytestmark)
    elif request.param == "postgresql":
        yield from _postgres_store(request)
    else:
        yield from _dynamodb_store(request)


def _postgres_store(request: pytest.FixtureRequest) -> Iterator[ChatStore]:
    """The local store on PostgreSQL, the production database: a migrated database of this
    module's own (tests/fixtures/postgres.py), its chat tables emptied before each test.

    PostgreSQL refuses what SQLite takes (NUL in text, for one) and locks differently under
    concurrent writers, so the local backend's contract holds on both databases.
    """
    with module_postgres(request, ("chat_",)):
        yield LocalStore()


def _sqlite_file_store(request: pytest.FixtureRequest) -> Iterator[ChatStore]:
    """The local store on a migrated SQLite file, as the embedded default runs it.

    pytest-django's in-memory test database is shared-cache SQLite, whose table locks fail at
    once ("database table is locked") instead of waiting, so it cannot take concurrent writers.
    New connections (one per thread) read `connections.settings`; the test's own thread gets a
    connection to the file too, and everything is put back afterwards.
    """
    migrated_db: Path = request.getfixturevalue("migrated_db")
    tmp_path: Path = request.getfixturevalue("tmp_path")
    path = tmp_path / "db.sqlite3"
    shutil.copy(migrated_db, path)
    with default_database({"NAME": str(path)}):
        yield LocalStore()


@pytest.fixture(params=["local", "postgresql", "dynamodb"])
def threaded_store(request: pytest.FixtureRequest) -> Iterator[ChatStore]:
    """A store many threads write to at once (the local one on an SQLite file, or PostgreSQL)."""
    if request.param == "local":
        yield from _sqlite_file_store(request)
    elif request.param == "postgresql":
        yield from _postgres_store(request)
    else:
        yield from _dynamodb_store(request)


STAMP = {"now": NOW, "ttl_seconds": MESSAGE_TTL}
REMOVAL = {"removed_by": events.BY_MODERATOR, **STAMP}


def remove(store: ChatStore, message_id: str, removal: str) -> MessageRecord | None:
    result = store.remove_message(room_id="lobby", message_id=message_id, removal=removal, **REMOVAL)  # type: ignore[arg-type]
    return None if result is None else result.message


def new_message(
    text: str,
    *,
    room_id: str = "lobby",
    user_id: str = "u-alice",
    client_message_id: str | None = None,
    timestamp: datetime = NOW,
) -> NewMessage:
    return NewMessage(
        room_id=room_id,
        user_id=user_id,
        username=user_id.removeprefix("u-"),
        text=text,
        connection_id="conn-1",
        client_message_id=client_message_id,
        timestamp=timestamp,
        ttl_seconds=MESSAGE_TTL,
    )


def connection(connection_id: str, *, user_id: str, instance_id: str, ttl: int, minute: int = 0) -> ConnectionRecord:
    return ConnectionRecord(
        connection_id=connection_id,
        user_id=user_id,
        username=user_id.removeprefix("u-"),
        connected_at=NOW + timedelta(minutes=minute),
        ttl=ttl,
        instance_id=instance_id,
    )


def in_threads(count: int, work: Callable[[int], T]) -> list[T]:
    """Run work(0..count-1) in threads released together; return results in index order."""
    barrier = threading.Barrier(count)
    results: dict[int, T] = {}
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = work(index)
        except BaseException as exc:
            errors.append(exc)
        finally:
            # The local backend's connection is per thread; give it back like Django's handlers do.
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise errors[0]
    return [results[i] for i in range(count)]


@pytest.fixture
def lobby(store: ChatStore) -> ChatStore:
    store.ensure_room(room_id="lobby", name="Lobby", created_by="u-alice", now=NOW)
    return store


# Rooms -------------------------------------------------------------------------------------


def test_ensure_room_creates_a_room_once(store: ChatStore) -> None:
    """ensure_room creates an empty room, and a second call returns it unchanged."""
    first = store.ensure_room(room_id="lobby", name="Lobby", created_by="u-alice", now=NOW)
    again = store.ensure_room(room_id="lobby", name="Other", created_by=None, now=NOW + timedelta(hours=1))
    assert (first.room_id, first.name, first.created_by, first.created_at, first.last_seq) == (
        "lobby",
        "Lobby",
        "u-alice",
        NOW,
        0,
    )
    assert again == first
    assert store.get_room("lobby") == first


def test_unknown_room_is_none_and_rooms_list_by_id(store: ChatStore) -> None:
    """get_room of an unknown id is None; list_rooms returns every room ordered by id."""
    assert store.get_room("nowhere") is None
    for room_id in ("zebra", "alpha", "mid"):
        store.ensure_room(room_id=room_id, name=room_id.title(), created_by=None, now=NOW)
    rooms = store.list_rooms()
    assert [r.room_id for r in rooms] == ["alpha", "mid", "zebra"]
    assert rooms[0].created_by is None


# Appending ---------------------------------------------------------------------------------


def test_appends_get_contiguous_seqs_from_one(lobby: ChatStore) -> None:
    """Each stored message gets the room's next seq, 1, 2, 3, and the room's lastSeq follows."""
    results = [lobby.append_message(new_message(f"m{i}", client_message_id=f"c{i}")) for i in range(1, 4)]
    assert [r.created for r in results] == [True, True, True]
    assert [r.message.seq for r in results] == [1, 2, 3]
    assert len({r.message.message_id for r in results}) == 3
    room = lobby.get_room("lobby")
    assert room is not None and room.last_seq == 3
    stored = lobby.messages_after(room_id="lobby", after_seq=0, limit=10, now=NOW)
    assert stored == [r.message for r in results]
    first = stored[0]
    assert (first.room_id, first.user_id, first.username, first.text) == ("lobby", "u-alice", "alice", "m1")
    assert (first.connection_id, first.client_message_id, first.timestamp) == ("conn-1", "c1", NOW)
    assert first.ttl == int(NOW.timestamp()) + MESSAGE_TTL


def test_attachments_are_kept_with_their_message(lobby: ChatStore) -> None:
    """A message's attachments (issue 18) come back as stored from every read; a message
    without any has an empty tuple."""
    files = (
        {"id": "a" * 32, "name": "cat.png", "size": 120, "contentType": "image/png", "width": 4, "height": 3},
        {"id": "b" * 32, "name": "r\u00e9sum\u00e9.pdf", "size": 9, "contentType": "application/pdf"},
    )
    with_files = replace(new_message("", client_message_id="c1"), attachments=files)
    stored = lobby.append_message(with_files).message
    plain = lobby.append_message(new_message("hi", client_message_id="c2")).message
    assert stored.attachments == files and plain.attachments == ()
    assert lobby.messages_after(room_id="lobby", after_seq=0, limit=10, now=NOW) == [stored, plain]
    assert lobby.messages_before(room_id="lobby", before_seq=None, limit=10, now=NOW) == [stored, plain]
    assert lobby.get_message(room_id="lobby", message_id=stored.message_id, now=NOW) == stored
    assert lobby.append_message(with_files).message == stored  # a retry returns them too


def test_append_to_an_unknown_room_raises_and_creates_nothing(store: ChatStore) -> None:
    """Appending to a room that does not exist raises RoomNotFound and creates neither room nor message."""
    with pytest.raises(RoomNotFound):
        store.append_message(new_message("hi", room_id="nowhere", client_message_id="c1"))
    assert store.get_room("nowhere") is None
    assert store.messages_after(room_id="nowhere", after_seq=0, limit=10, now=NOW) == []


def test_retry_with_the_same_client_message_id_returns_the_original(lobby: ChatStore) -> None:
    """A retry of (room, user, clientMessageId) stores nothing and returns the original with created=False."""
    original = lobby.append_message(new_message("hello", client_message_id="c1"))
    retry = lobby.append_message(
        new_message("hello again", client_message_id="c1", timestamp=NOW + timedelta(seconds=5))
    )
    assert retry.created is False
    assert retry.message == original.message
    room = lobby.get_room("lobby")
    assert room is not None and room.last_seq == 1
    assert [m.text for m in lobby.messages_after(room_id="lobby", after_seq=0, limit=10, now=NOW)] == ["hello"]


def test_client_message_ids_are_scoped_to_user_and_room(lobby: ChatStore) -> None:
    """The same clientMessageId from another user or in another room, or no id at all, is a new message."""
    lobby.ensure_room(room_id="annex", name="Annex", created_by=None, now=NOW)
    results = [
        lobby.append_message(new_message("a", client_message_id="c1")),
        lobby.append_message(new_message("b", client_message_id="c1", user_id="u-bob")),
        lobby.append_message(new_message("c", client_message_id="c1", room_id="annex")),
        lobby.append_message(new_message("d")),
        lobby.append_message(new_message("d")),
    ]
    assert all(r.created for r in results)
    assert [r.message.seq for r in results] == [1, 2, 1, 3, 4]
    assert results[3].message.client_message_id is None


def test_concurrent_senders_get_gapless_unique_seqs(threaded_store: ChatStore) -> None:
    """Many threads appending to one room at once get seqs 1..N, each exactly once, nothing lost."""
    threaded_store.ensure_room(room_id="lobby", name="Lobby", created_by=None, now=NOW)
    senders, per_sender = 5, 4

    def send(index: int) -> list[int]:
        return [
            threaded_store.append_message(
                new_message(f"{index}-{n}", user_id=f"u-{index}", client_message_id=f"c{n}")
            ).message.seq
            for n in range(per_sender)
        ]

    seqs = in_threads(senders, send)
    total = senders * per_sender
    assert sorted(s for mine in seqs for s in mine) == list(range(1, total + 1))
    assert all(mine == sorted(mine) for mine in seqs)  # one sender's messages keep their order
    stored = threaded_store.messages_after(room_id="lobby", after_seq=0, limit=total + 10, now=NOW)
    assert [m.seq for m in stored] == list(range(1, total + 1))
    assert sorted(m.text for m in stored) == sorted(f"{i}-{n}" for i in range(senders) for n in range(per_sender))
    room = threaded_store.get_room("lobby")
    assert room is not None and room.last_seq == total


def test_concurrent_retries_of_one_client_message_id_store_it_once(threaded_store: ChatStore) -> None:
    """Several threads sending the same clientMessageId at once store one message; all get it back."""
    threaded_store.ensure_room(room_id="lobby", name="Lobby", created_by=None, now=NOW)

    def send(index: int) -> tuple[bool, str, int]:
        result = threaded_store.append_message(new_message("once", client_message_id="c1"))
        return result.created, result.message.message_id, result.message.seq

    results = in_threads(5, send)
    assert sorted(created for created, _, _ in results) == [False, False, False, False, True]
    assert {(message_id, seq) for _, message_id, seq in results} == {(results[0][1], 1)}
    room = threaded_store.get_room("lobby")
    assert room is not None and room.last_seq == 1


# Reading -----------------------------------------------------------------------------------


def _send(store: ChatStore, count: int, *, expired: bool = False) -> None:
    timestamp = NOW - timedelta(seconds=MESSAGE_TTL + 1) if expired else NOW
    for _ in range(count):
        store.append_message(new_message("expired" if expired else "live", timestamp=timestamp))


def test_messages_after_returns_the_next_messages_oldest_first(lobby: ChatStore) -> None:
    """messages_after gives seqs above after_seq in order, at most `limit`, and nothing past the end."""
    _send(lobby, 7)

    def seqs(after_seq: int, limit: int) -> list[int]:
        return [m.seq for m in lobby.messages_after(room_id="lobby", after_seq=after_seq, limit=limit, now=NOW)]

    assert seqs(2, 3) == [3, 4, 5]
    assert seqs(0, 100) == [1, 2, 3, 4, 5, 6, 7]
    assert seqs(5, 10) == [6, 7]
    assert seqs(7, 10) == []
    assert seqs(0, 0) == []


def test_messages_before_returns_the_page_below_oldest_first(lobby: ChatStore) -> None:
    """messages_before gives the `limit` seqs just below before_seq (or the latest), oldest first."""
    _send(lobby, 7)

    def seqs(before_seq: int | None, limit: int) -> list[int]:
        return [m.seq for m in lobby.messages_before(room_id="lobby", before_seq=before_seq, limit=limit, now=NOW)]

    assert seqs(None, 3) == [5, 6, 7]
    assert seqs(8, 3) == [5, 6, 7]
    assert seqs(5, 3) == [2, 3, 4]
    assert seqs(2, 5) == [1]
    assert seqs(1, 5) == []
    assert seqs(None, 100) == [1, 2, 3, 4, 5, 6, 7]


def test_expired_messages_are_never_read_even_before_a_purge(lobby: ChatStore) -> None:
    """Messages past their ttl are skipped by every read, and reads still fill `limit` from live ones."""
    _send(lobby, 2)
    _send(lobby, 5, expired=True)
    _send(lobby, 2)
    after = lobby.messages_after(room_id="lobby", after_seq=0, limit=3, now=NOW)
    assert [(m.seq, m.text) for m in after] == [(1, "live"), (2, "live"), (8, "live")]
    before = lobby.messages_before(room_id="lobby", before_seq=None, limit=3, now=NOW)
    assert [m.seq for m in before] == [2, 8, 9]
    assert [m.seq for m in lobby.messages_before(room_id="lobby", before_seq=8, limit=10, now=NOW)] == [1, 2]
    # Time passes: at the moment of a message's ttl it is gone.
    later = NOW + timedelta(seconds=MESSAGE_TTL)
    assert lobby.messages_after(room_id="lobby", after_seq=0, limit=10, now=later) == []


def test_purge_removes_expired_messages_and_connections_only(lobby: ChatStore) -> None:
    """purge_expired deletes expired messages and connections, counts them, and keeps live ones and seqs."""
    _send(lobby, 3, expired=True)
    _send(lobby, 2)
    now_epoch = int(NOW.timestamp())
    lobby.save_connection(connection("gone", user_id="u-alice", instance_id="i1", ttl=now_epoch))
    lobby.save_connection(connection("live", user_id="u-alice", instance_id="i1", ttl=now_epoch + 60))
    assert lobby.purge_expired(now=NOW) == 4
    assert lobby.purge_expired(now=NOW) == 0
    assert [m.seq for m in lobby.messages_after(room_id="lobby", after_seq=0, limit=10, now=NOW)] == [4, 5]
    assert [c.connection_id for c in lobby.connections_for_user(user_id="u-alice", now=NOW)] == ["live"]
    # Purging frees no seq: the next message continues the room's sequence.
    assert lobby.append_message(new_message("next")).message.seq == 6


# Connections -------------------------------------------------------------------------------


def test_connections_by_user_and_by_instance(store: ChatStore) -> None:
    """A user's live connections and an instance's live connections are found, oldest first."""
    ttl = int(NOW.timestamp()) + 3600
    rows = [
        connection("a2", user_id="u-alice", instance_id="i2", ttl=ttl, minute=2),
        connection("a1", user_id="u-alice", instance_id="i1", ttl=ttl, minute=1),
        connection("b1", user_id="u-bob", instance_id="i1", ttl=ttl, minute=3),
        connection("c1", user_id="u-carol", instance_id="i1", ttl=ttl, minute=4),
    ]
    for row in rows:
        store.save_connection(row)
    assert store.connections_for_user(user_id="u-alice", now=NOW) == [rows[1], rows[0]]
    assert store.connections_on_instance(instance_id="i1", now=NOW) == [rows[1], rows[2], rows[3]]
    assert store.connections_for_user(user_id="u-nobody", now=NOW) == []
    assert store.connections_on_instance(instance_id="i9", now=NOW) == []


def test_live_summary_counts_open_sockets_and_distinct_users_of_every_instance(store: ChatStore) -> None:
    """The dashboard's "now": live sockets of every instance and distinct users; expired rows do not count."""
    ttl = int(NOW.timestamp()) + 3600
    assert store.connections_live_summary(now=NOW) == (0, 0)
    for row in [
        connection("a1", user_id="u-alice", instance_id="i1", ttl=ttl),
        connection("a2", user_id="u-alice", instance_id="i2", ttl=ttl),
        connection("b1", user_id="u-bob", instance_id="i2", ttl=ttl),
        connection("c1", user_id="u-carol", instance_id="i1", ttl=int(NOW.timestamp())),  # expired
    ]:
        store.save_connection(row)
    assert store.connections_live_summary(now=NOW) == (3, 2)


def test_expired_connections_are_never_read_and_refresh_keeps_them(store: ChatStore) -> None:
    """A connection past its ttl is invisible until a heartbeat refreshes it; a refresh of a gone row adds none."""
    now_epoch = int(NOW.timestamp())
    row = connection("a1", user_id="u-alice", instance_id="i1", ttl=now_epoch)
    store.save_connection(row)
    assert store.connections_for_user(user_id="u-alice", now=NOW) == []
    assert store.connections_on_instance(instance_id="i1", now=NOW) == []
    store.refresh_connection(connection_id="a1", ttl=now_epoch + 60)
    assert store.connections_for_user(user_id="u-alice", now=NOW) == [replace(row, ttl=now_epoch + 60)]
    store.refresh_connection(connection_id="never-saved", ttl=now_epoch + 60)
    assert store.purge_expired(now=NOW + timedelta(seconds=30)) == 0
    assert [c.connection_id for c in store.connections_on_instance(instance_id="i1", now=NOW)] == ["a1"]


def test_save_replaces_and_delete_removes_a_connection(store: ChatStore) -> None:
    """Saving a connection id again replaces its row; deleting removes exactly that row."""
    ttl = int(NOW.timestamp()) + 3600
    first = connection("a1", user_id="u-alice", instance_id="i1", ttl=ttl)
    other = connection("a2", user_id="u-alice", instance_id="i1", ttl=ttl, minute=1)
    store.save_connection(first)
    store.save_connection(other)
    moved = replace(first, instance_id="i2", ttl=ttl + 60)
    store.save_connection(moved)
    assert store.connections_for_user(user_id="u-alice", now=NOW) == [moved, other]
    store.delete_connection("a1")
    store.delete_connection("a1")  # deleting twice is harmless
    assert store.connections_for_user(user_id="u-alice", now=NOW) == [other]
    assert store.connections_on_instance(instance_id="i2", now=NOW) == []


def test_delete_connections_removes_exactly_the_rows_named(store: ChatStore) -> None:
    """Many rows in one call (past one DynamoDB batch of 25), an id named twice and one never
    saved are fine; every other row stays."""
    ttl = int(NOW.timestamp()) + 3600
    rows = [connection(f"c{n}", user_id=f"u-{n % 3}", instance_id="i1", ttl=ttl, minute=n % 60) for n in range(40)]
    for row in rows:
        store.save_connection(row)
    gone = [row.connection_id for row in rows[:31]]
    store.delete_connections([*gone, "c0", "never-saved"])
    store.delete_connections([])
    assert {c.connection_id for c in store.connections_on_instance(instance_id="i1", now=NOW)} == {
        row.connection_id for row in rows[31:]
    }


def test_a_delete_with_a_ttl_keeps_a_row_written_again_since(store: ChatStore) -> None:
    """A sweep deletes a row only as it read it: a row its process wrote again (a new ttl) stays."""
    ttl = int(NOW.timestamp()) + 3600
    row = connection("a1", user_id="u-alice", instance_id="i1", ttl=ttl)
    store.save_connection(row)
    store.save_connection(replace(row, ttl=ttl + 60))
    store.delete_connection("a1", ttl=ttl)
    assert store.connections_for_user(user_id="u-alice", now=NOW) == [replace(row, ttl=ttl + 60)]
    store.delete_connection("a1", ttl=ttl + 60)
    assert store.connections_for_user(user_id="u-alice", now=NOW) == []


def test_a_process_beat_says_whether_its_entry_was_live_and_which_others_are_dead(store: ChatStore) -> None:
    """beat_instance: kept is False on a first beat and after the entry expired; dead lists
    the other entries past their ttl, with the ttl each was seen with; no process is listed live."""
    now = int(NOW.timestamp())
    first = store.beat_instance(instance_id="i1", ttl=now + 180, now=NOW)
    assert (first.kept, first.dead) == (False, {})
    store.beat_instance(instance_id="i2", ttl=now + 30, now=NOW)
    again = store.beat_instance(instance_id="i1", ttl=now + 240, now=NOW + timedelta(seconds=60))
    assert (again.kept, again.dead) == (True, {"i2": now + 30})
    late = store.beat_instance(instance_id="i1", ttl=now + 900, now=NOW + timedelta(seconds=600))
    assert (late.kept, late.dead) == (False, {"i2": now + 30})  # i1's own entry had expired


def test_a_dead_process_is_forgotten_only_at_the_ttl_it_was_seen_with(store: ChatStore) -> None:
    """forget_instance removes an entry only if it has not beaten since: a process back from a
    stall stays listed."""
    now = int(NOW.timestamp())
    store.beat_instance(instance_id="i2", ttl=now + 30, now=NOW)
    store.beat_instance(instance_id="i2", ttl=now + 400, now=NOW + timedelta(seconds=200))  # back
    store.forget_instance(instance_id="i2", ttl=now + 30)
    later = NOW + timedelta(seconds=500)
    assert store.beat_instance(instance_id="i1", ttl=now + 700, now=later).dead == {"i2": now + 400}
    store.forget_instance(instance_id="i2", ttl=now + 400)
    assert store.beat_instance(instance_id="i1", ttl=now + 700, now=later).dead == {}


def test_process_entries_are_no_connections(store: ChatStore) -> None:
    """Beats add nothing a read of connections sees, and purge leaves them alone."""
    now = int(NOW.timestamp())
    store.beat_instance(instance_id="i1", ttl=now + 180, now=NOW)
    store.beat_instance(instance_id="i2", ttl=now - 10, now=NOW)
    assert store.connections_live_summary(now=NOW) == (0, 0)
    assert store.connections_on_instance(instance_id="i1", now=NOW) == []
    assert store.purge_expired(now=NOW) == 0
    assert store.beat_instance(instance_id="i1", ttl=now + 180, now=NOW).dead == {"i2": now - 10}


# Moderation: room settings, members, tombstones, search, purge ---------------------------


def test_update_room_changes_only_the_given_settings(lobby: ChatStore) -> None:
    """update_room sets name, archived, private, read-only and slow mode, leaving the rest (and lastSeq) alone."""
    lobby.append_message(new_message("first"))
    fresh = lobby.get_room("lobby")
    assert fresh is not None
    assert (fresh.archived, fresh.private, fresh.read_only, fresh.slow_mode_seconds) == (False, False, False, 0)
    updated = lobby.update_room(room_id="lobby", name="Main hall", private=True, slow_mode_seconds=30, **STAMP).room
    # Each change is a room event with the room's next seq: lastSeq moves with it.
    assert (updated.name, updated.private, updated.slow_mode_seconds, updated.last_seq) == ("Main hall", True, 30, 2)
    assert (updated.archived, updated.read_only) == (False, False)
    again = lobby.update_room(
        room_id="lobby", archived=True, read_only=True, private=False, slow_mode_seconds=0, **STAMP
    ).room
    assert (again.name, again.archived, again.read_only, again.private, again.slow_mode_seconds) == (
        "Main hall",
        True,
        True,
        False,
        0,
    )
    assert lobby.get_room("lobby") == again
    assert lobby.update_room(room_id="lobby", **STAMP).room == again
    assert lobby.update_room(room_id="lobby", name="Main hall", archived=True, **STAMP).event is None  # no change
    assert lobby.append_message(new_message("still counting")).message.seq == 4
    assert [r.archived for r in lobby.list_rooms()] == [True]


def test_update_of_an_unknown_room_raises(store: ChatStore) -> None:
    """update_room and add_member of a room that does not exist raise RoomNotFound and create nothing."""
    with pytest.raises(RoomNotFound):
        store.update_room(room_id="nowhere", name="X", **STAMP)
    with pytest.raises(RoomNotFound):
        store.add_member(room_id="nowhere", user_id="u-alice")
    assert store.get_room("nowhere") is None


def test_members_are_added_once_listed_and_removed(lobby: ChatStore) -> None:
    """Members are added (twice is once), listed sorted, checked, and removed (True only if they were members)."""
    assert lobby.room_members("lobby") == []
    for user_id in ("u-carol", "u-alice", "u-carol"):
        lobby.add_member(room_id="lobby", user_id=user_id)
    assert lobby.room_members("lobby") == ["u-alice", "u-carol"]
    assert lobby.is_member(room_id="lobby", user_id="u-alice")
    assert not lobby.is_member(room_id="lobby", user_id="u-bob")
    assert lobby.remove_member(room_id="lobby", user_id="u-alice") is True
    assert lobby.remove_member(room_id="lobby", user_id="u-alice") is False
    assert lobby.remove_member(room_id="lobby", user_id="u-bob") is False
    assert lobby.room_members("lobby") == ["u-carol"]
    assert lobby.remove_member(room_id="lobby", user_id="u-carol") is True
    assert lobby.room_members("lobby") == []
    assert lobby.room_members("nowhere") == []


def test_member_rooms_lists_the_rooms_of_one_user(lobby: ChatStore) -> None:
    """A user's rooms are listed sorted, and a removal takes the room off the list."""
    lobby.ensure_room(room_id="attic", name="Attic", created_by=None, now=NOW)
    assert lobby.member_rooms(user_id="u-alice") == []
    for room_id in ("lobby", "attic"):
        lobby.add_member(room_id=room_id, user_id="u-alice")
    lobby.add_member(room_id="lobby", user_id="u-bob")
    assert lobby.member_rooms(user_id="u-alice") == ["attic", "lobby"]
    assert lobby.member_rooms(user_id="u-bob") == ["lobby"]
    lobby.remove_member(room_id="lobby", user_id="u-alice")
    assert lobby.member_rooms(user_id="u-alice") == ["attic"]


def test_a_removed_message_is_a_tombstone_in_every_read(lobby: ChatStore) -> None:
    """Hiding keeps the text for moderators; deleting erases it; both stay in replays and history as removed."""
    sent = [lobby.append_message(new_message(f"m{i}")).message for i in range(1, 6)]
    hidden = remove(lobby, sent[1].message_id, "hidden")
    assert hidden is not None and (hidden.seq, hidden.removed, hidden.text) == (2, "hidden", "m2")
    deleted = remove(lobby, sent[3].message_id, "deleted")
    assert deleted is not None and (deleted.seq, deleted.removed, deleted.text) == (4, "deleted", "")
    # Hiding a deleted message leaves it deleted; deleting a hidden one erases its text.
    again = remove(lobby, sent[3].message_id, "hidden")
    assert again is not None and (again.removed, again.text) == ("deleted", "")
    after = lobby.messages_after(room_id="lobby", after_seq=0, limit=10, now=NOW)
    assert [(m.seq, m.removed, m.text) for m in after] == [
        (1, None, "m1"),
        (2, "hidden", "m2"),
        (3, None, "m3"),
        (4, "deleted", ""),
        (5, None, "m5"),
    ]
    assert lobby.messages_before(room_id="lobby", before_seq=None, limit=10, now=NOW) == after
    assert lobby.get_message(room_id="lobby", message_id=sent[1].message_id, now=NOW) == after[1]
    assert [m.seq for m in lobby.removed_between(room_id="lobby", after_seq=0, up_to_seq=5, now=NOW)] == [2, 4]
    assert [m.seq for m in lobby.removed_between(room_id="lobby", after_seq=2, up_to_seq=3, now=NOW)] == []
    # Two removals of live messages, two events (seqs 6 and 7); the third changed no tombstone.
    assert lobby.get_room("lobby") is not None and lobby.append_message(new_message("m6")).message.seq == 8


def test_removing_or_reading_a_message_of_another_room_finds_nothing(lobby: ChatStore) -> None:
    """A message id is only found in its own room, and an unknown id is None."""
    lobby.ensure_room(room_id="annex", name="Annex", created_by=None, now=NOW)
    message = lobby.append_message(new_message("here")).message
    assert lobby.get_message(room_id="annex", message_id=message.message_id, now=NOW) is None
    assert lobby.remove_message(room_id="annex", message_id=message.message_id, removal="deleted", **REMOVAL) is None
    assert lobby.remove_message(room_id="lobby", message_id="no-such-id", removal="hidden", **REMOVAL) is None
    assert lobby.get_message(room_id="lobby", message_id=message.message_id, now=NOW) == message
    assert lobby.get_message(room_id="lobby", message_id=message.message_id, now=NOW + timedelta(days=31)) is None


def test_search_finds_recent_messages_by_text_and_author_newest_first(lobby: ChatStore) -> None:
    """search_messages matches text case-insensitively and/or the author, newest first, within the newest `scan`."""
    texts = ["Buy cheap pills", "hello all", "CHEAP pills again", "lunch?", "cheap talk"]
    authors = ["u-spam", "u-alice", "u-spam", "u-bob", "u-alice"]
    for text, author in zip(texts, authors, strict=True):
        lobby.append_message(new_message(text, user_id=author))

    def seqs(**query: object) -> list[int]:
        return [m.seq for m in lobby.search_messages(room_id="lobby", now=NOW, **query)]  # type: ignore[arg-type]

    assert seqs(text="cheap") == [5, 3, 1]
    assert seqs(user_id="u-spam") == [3, 1]
    assert seqs(text="cheap", user_id="u-alice") == [5]
    assert seqs() == [5, 4, 3, 2, 1]
    assert seqs(limit=2) == [5, 4]
    assert seqs(text="cheap", scan=3) == [5, 3]  # only the newest three are looked at
    assert seqs(text="nothing like this") == []


def test_purging_a_user_removes_their_messages_in_one_room_or_everywhere(lobby: ChatStore) -> None:
    """remove_user_messages tombstones exactly one user's live messages (one room or all) and returns them."""
    lobby.ensure_room(room_id="annex", name="Annex", created_by=None, now=NOW)
    for room_id, user_id in [("lobby", "u-spam"), ("lobby", "u-alice"), ("annex", "u-spam"), ("lobby", "u-spam")]:
        lobby.append_message(new_message(f"{user_id} in {room_id}", room_id=room_id, user_id=user_id))
    in_lobby = [
        r.message for r in lobby.remove_user_messages(user_id="u-spam", room_id="lobby", removal="hidden", **STAMP)
    ]
    assert [(m.room_id, m.seq, m.removed) for m in in_lobby] == [("lobby", 1, "hidden"), ("lobby", 3, "hidden")]
    results = lobby.remove_user_messages(user_id="u-spam", room_id=None, removal="deleted", **STAMP)
    everywhere = [r.message for r in results]
    assert [(m.room_id, m.seq, m.removed, m.text) for m in everywhere] == [
        ("annex", 1, "deleted", ""),
        ("lobby", 1, "deleted", ""),
        ("lobby", 3, "deleted", ""),
    ]
    # Only the annex message was live: one event there; the lobby's hidden ones took none.
    assert [(r.message.room_id, r.event.seq if r.event else None) for r in results] == [
        ("annex", 2),
        ("lobby", None),
        ("lobby", None),
    ]
    assert lobby.remove_user_messages(user_id="u-spam", room_id=None, removal="deleted", **STAMP) == []
    lobby_now = lobby.messages_after(room_id="lobby", after_seq=0, limit=10, now=NOW)
    assert [(m.seq, m.removed) for m in lobby_now] == [(1, "deleted"), (2, None), (3, "deleted")]


# The room's log: messages and other events share one seq ----------------------------------


def new_event(kind: str = events.MEMBER_ADDED, *, room_id: str = "lobby", timestamp: datetime = NOW) -> NewEvent:
    return NewEvent(
        room_id=room_id,
        type=kind,
        data={"userId": "u-carol", "username": "carol"},
        timestamp=timestamp,
        ttl_seconds=MESSAGE_TTL,
    )


def log(store: ChatStore, after_seq: int = 0, limit: int = 100) -> list[tuple[int, str]]:
    """The room's log as (seq, "message" text or event type)."""
    return [
        (e.seq, e.text if isinstance(e, MessageRecord) else e.type)
        for e in store.events_after(room_id="lobby", after_seq=after_seq, limit=limit, now=NOW)
    ]


def test_events_take_the_rooms_next_seq_between_messages(lobby: ChatStore) -> None:
    """append_event takes the next seq of the one sequence messages use; events_after reads both in order."""
    lobby.append_message(new_message("m1"))
    event = lobby.append_event(new_event())
    assert event == EventRecord(
        room_id="lobby",
        seq=2,
        type=events.MEMBER_ADDED,
        data={"userId": "u-carol", "username": "carol"},
        timestamp=NOW,
        ttl=int(NOW.timestamp()) + MESSAGE_TTL,
    )
    lobby.append_message(new_message("m3"))
    lobby.append_event(new_event(events.MEMBER_REMOVED))
    lobby.append_message(new_message("m5"))
    room = lobby.get_room("lobby")
    assert room is not None and room.last_seq == 5
    assert log(lobby) == [(1, "m1"), (2, "memberAdded"), (3, "m3"), (4, "memberRemoved"), (5, "m5")]
    assert log(lobby, after_seq=1, limit=2) == [(2, "memberAdded"), (3, "m3")]
    assert log(lobby, after_seq=5) == []
    assert lobby.events_after(room_id="lobby", after_seq=0, limit=0, now=NOW) == []
    assert lobby.events_after(room_id="nowhere", after_seq=0, limit=10, now=NOW) == []
    # Message reads see messages only, still `limit` of them.
    assert [m.seq for m in lobby.messages_after(room_id="lobby", after_seq=0, limit=2, now=NOW)] == [1, 3]
    assert [m.seq for m in lobby.messages_before(room_id="lobby", before_seq=None, limit=2, now=NOW)] == [3, 5]
    assert [m.seq for m in lobby.search_messages(room_id="lobby", now=NOW)] == [5, 3, 1]


def test_an_event_is_never_read_as_a_message(lobby: ChatStore) -> None:
    """No message read finds an event, even by the id a message at its seq would have had."""
    from chat.storage.dynamodb import message_id_for

    event = lobby.append_event(new_event())
    guessed = message_id_for(room_id="lobby", seq=event.seq)
    assert lobby.get_message(room_id="lobby", message_id=guessed, now=NOW) is None
    assert lobby.remove_message(room_id="lobby", message_id=guessed, removal="deleted", **REMOVAL) is None
    assert log(lobby) == [(1, "memberAdded")]


def test_an_event_for_an_unknown_room_raises_and_stores_nothing(store: ChatStore) -> None:
    """append_event to a room that does not exist raises RoomNotFound and creates nothing."""
    with pytest.raises(RoomNotFound):
        store.append_event(new_event(room_id="nowhere"))
    assert store.get_room("nowhere") is None


def test_a_removal_is_an_event_of_its_own_stored_with_the_tombstone(lobby: ChatStore) -> None:
    """Removing a live message stores a messageRemoved event with the next seq; removing a tombstone takes none."""
    sent = [lobby.append_message(new_message(f"m{i}")).message for i in (1, 2)]
    result = lobby.remove_message(
        room_id="lobby", message_id=sent[0].message_id, removal="hidden", removed_by="author", now=NOW, ttl_seconds=60
    )
    assert result is not None and result.event is not None
    assert (result.message.seq, result.message.removed, result.message.text) == (1, "hidden", "m1")
    assert result.event == EventRecord(
        room_id="lobby",
        seq=3,
        type=events.MESSAGE_REMOVED,
        data={"messageId": sent[0].message_id, "messageSeq": 1, "removedBy": "author"},
        timestamp=NOW,
        ttl=int(NOW.timestamp()) + 60,
    )
    again = lobby.remove_message(room_id="lobby", message_id=sent[0].message_id, removal="deleted", **REMOVAL)
    assert again is not None and again.event is None and (again.message.removed, again.message.text) == ("deleted", "")
    entries = lobby.events_after(room_id="lobby", after_seq=0, limit=10, now=NOW)
    # The log holds each message in its current state, and the removal at its own seq.
    assert entries == [again.message, sent[1], result.event]
    room = lobby.get_room("lobby")
    assert room is not None and room.last_seq == 3


def test_new_room_settings_are_an_event_with_the_settings(lobby: ChatStore) -> None:
    """update_room stores a roomUpdated event carrying the room's settings after the change."""
    lobby.append_message(new_message("m1"))
    update = lobby.update_room(room_id="lobby", read_only=True, slow_mode_seconds=5, **STAMP)
    assert update.room.last_seq == 2 and update.event is not None
    assert (update.event.seq, update.event.type) == (2, events.ROOM_UPDATED)
    assert update.event.data == {
        "room": {"name": "Lobby", "private": False, "readOnly": True, "archived": False, "slowModeSeconds": 5}
    }
    assert lobby.events_after(room_id="lobby", after_seq=1, limit=10, now=NOW) == [update.event]


def test_expired_events_are_never_read_and_purged(lobby: ChatStore) -> None:
    """An event past its ttl is gone from every read before a purge, and the purge deletes it."""
    old = NOW - timedelta(seconds=MESSAGE_TTL + 1)
    lobby.append_event(new_event(timestamp=old))
    lobby.append_event(new_event(events.MEMBER_REMOVED))
    assert log(lobby) == [(2, "memberRemoved")]
    assert lobby.purge_expired(now=NOW) == 1
    assert log(lobby) == [(2, "memberRemoved")]


def test_concurrent_messages_and_events_get_distinct_contiguous_seqs(threaded_store: ChatStore) -> None:
    """Messages, events and removals written at once by many threads take seqs 1..N, each once."""
    threaded_store.ensure_room(room_id="lobby", name="Lobby", created_by=None, now=NOW)
    first = threaded_store.append_message(new_message("target")).message

    def work(index: int) -> list[int]:
        if index in (0, 2):
            # Removing one message from two threads at once stores one event.
            result = threaded_store.remove_message(
                room_id="lobby", message_id=first.message_id, removal="hidden", **REMOVAL
            )
            return [result.event.seq] if result is not None and result.event is not None else []
        if index == 1:
            update = threaded_store.update_room(room_id="lobby", slow_mode_seconds=9, **STAMP)
            return [update.event.seq] if update.event is not None else []
        if index % 2:
            return [threaded_store.append_event(new_event()).seq for _ in range(3)]
        return [threaded_store.append_message(new_message(f"{index}-{n}")).message.seq for n in range(3)]

    seqs = [s for mine in in_threads(7, work) for s in mine]
    total = 1 + len(seqs)
    assert sorted(seqs) == list(range(2, total + 1))
    entries = threaded_store.events_after(room_id="lobby", after_seq=0, limit=100, now=NOW)
    assert [e.seq for e in entries] == list(range(1, total + 1))
    assert sum(isinstance(e, EventRecord) and e.type == events.MESSAGE_REMOVED for e in entries) == 1
    room = threaded_store.get_room("lobby")
    assert room is not None and room.last_seq == total


# People and rooms: rooms users make, memberships (chat.people) --------------------------------


def test_create_room_stores_a_new_room_once_and_never_changes_a_taken_one(store: ChatStore) -> None:
    """create_room is True for a new id and False (the room there, unchanged) for a taken one."""
    room, created = store.create_room(
        room_id="plans", name="Plans", created_by="u-alice", now=NOW, private=True, topic="Q4"
    )
    assert created and (room.room_id, room.name, room.private, room.direct, room.topic, room.kind) == (
        "plans",
        "Plans",
        True,
        False,
        "Q4",
        "private",
    )
    again, created = store.create_room(room_id="plans", name="Other", created_by="u-bob", now=NOW)
    assert not created and (again.name, again.created_by, again.private) == ("Plans", "u-alice", True)
    direct, created = store.create_room(room_id="dm-x", name="alice, bob", created_by="u-alice", now=NOW, direct=True)
    assert created and direct.kind == "direct" and direct.private
    stored = store.get_room("dm-x")
    assert stored is not None and stored.kind == "direct"


def test_concurrent_creations_of_one_room_id_create_it_once(threaded_store: ChatStore) -> None:
    """Of five concurrent create_room calls for one id (a DM opened on two processes), exactly one creates it."""
    results = in_threads(
        5,
        lambda i: threaded_store.create_room(
            room_id="dm-race", name=f"n{i}", created_by=f"u-{i}", now=NOW, direct=True
        ),
    )
    assert sum(created for _, created in results) == 1
    assert len({room.name for room, _ in results}) == 1


def test_get_rooms_reads_rooms_by_id(store: ChatStore) -> None:
    """get_rooms returns the rooms among the ids that exist (and no membership record)."""
    for room_id in ("a", "b", "c"):
        store.create_room(room_id=room_id, name=room_id.upper(), created_by=None, now=NOW)
    store.add_member(room_id="a", user_id="u-alice")
    assert sorted(r.room_id for r in store.get_rooms(["c", "a", "zzz", "a"])) == ["a", "c"]
    assert store.get_rooms([]) == []
    assert [r.room_id for r in store.list_rooms()] == ["a", "b", "c"]


def test_get_rooms_reads_every_setting_as_get_room_does(store: ChatStore) -> None:
    """Each room get_rooms returns is the record get_room returns: settings, flags, times,
    the last seq and the last activity a message set."""
    store.create_room(room_id="a", name="A", created_by="u-alice", now=NOW, topic="plans")
    store.create_room(room_id="dm", name="DM", created_by="u-bob", now=NOW, direct=True)
    store.create_room(room_id="plain", name="Plain", created_by=None, now=NOW)
    store.update_room(
        room_id="a",
        archived=True,
        private=True,
        read_only=True,
        slow_mode_seconds=30,
        now=NOW,
        ttl_seconds=MESSAGE_TTL,
    )
    store.append_message(new_message("hello", room_id="plain", timestamp=NOW + timedelta(minutes=5)))
    found = {room.room_id: room for room in store.get_rooms(["plain", "dm", "a"])}
    assert found == {room_id: store.get_room(room_id) for room_id in ("a", "dm", "plain")}
    assert found["a"].archived and found["a"].private and found["a"].read_only and found["dm"].direct
    assert found["plain"].last_seq == 1 and not found["plain"].private


def test_public_room_ids_are_the_rooms_that_are_not_private(store: ChatStore) -> None:
    """Search reads the public rooms' ids without every room's record; a room made private leaves the list."""
    store.create_room(room_id="b", name="B", created_by=None, now=NOW)
    store.create_room(room_id="a", name="A", created_by=None, now=NOW)
    store.create_room(room_id="p", name="P", created_by=None, now=NOW, private=True)
    store.create_room(room_id="d", name="D", created_by=None, now=NOW, direct=True)
    store.add_member(room_id="a", user_id="u-alice")
    assert store.public_room_ids() == ["a", "b"]
    store.update_room(room_id="b", private=True, now=NOW, ttl_seconds=MESSAGE_TTL)
    assert store.public_room_ids() == ["a"]


def test_get_messages_reads_a_page_by_key_and_keeps_the_rules_of_get_message(lobby: ChatStore) -> None:
    """One read for a page of (room, message) keys: a message of another room, an expired one
    or an unknown id is not returned; a tombstone is, as get_message returns it."""
    lobby.ensure_room(room_id="attic", name="Attic", created_by=None, now=NOW)
    sent = [lobby.append_message(new_message(f"m{i}")).message for i in range(3)]
    other = lobby.append_message(new_message("elsewhere", room_id="attic")).message
    remove(lobby, sent[1].message_id, "deleted")
    keys = [("lobby", m.message_id) for m in sent] + [("lobby", other.message_id), ("lobby", "nope")]
    found = {m.message_id: m for m in lobby.get_messages(keys=keys, now=NOW)}
    assert sorted(found) == sorted(m.message_id for m in sent)
    assert found[sent[1].message_id].removed == "deleted" and found[sent[0].message_id].text == "m0"
    for m in sent:
        assert found[m.message_id] == lobby.get_message(room_id="lobby", message_id=m.message_id, now=NOW)
    assert lobby.get_messages(keys=[("attic", other.message_id)], now=NOW)[0].text == "elsewhere"
    assert lobby.get_messages(keys=keys, now=NOW + timedelta(seconds=MESSAGE_TTL + 1)) == []
    assert lobby.get_messages(keys=[], now=NOW) == []


def test_memberships_hold_a_role_and_a_mute_and_are_found_both_ways(store: ChatStore) -> None:
    """A membership keeps its first role and join time; role and mute change; both ways of listing find it."""
    for room_id in ("r1", "r2"):
        store.create_room(room_id=room_id, name=room_id, created_by="u-alice", now=NOW)
    assert store.add_member(room_id="r1", user_id="u-alice", role="owner", now=NOW) is True
    assert store.add_member(room_id="r1", user_id="u-alice", role="member", now=NOW + timedelta(days=1)) is False
    store.add_member(room_id="r2", user_id="u-alice", now=NOW)
    store.add_member(room_id="r1", user_id="u-bob", now=NOW)
    first = store.get_membership(room_id="r1", user_id="u-alice")
    assert first is not None and (first.role, first.muted, first.joined_at) == ("owner", False, NOW)
    assert store.get_membership(room_id="r1", user_id="u-carol") is None
    changed = store.set_membership(room_id="r1", user_id="u-bob", role="owner", muted=True)
    assert changed is not None and (changed.role, changed.muted) == ("owner", True)
    assert store.set_membership(room_id="r1", user_id="u-carol", muted=True) is None
    assert store.get_membership(room_id="r1", user_id="u-carol") is None
    assert sorted(m.room_id for m in store.rooms_of_user("u-alice")) == ["r1", "r2"]
    assert [m.user_id for m in store.members_page(room_id="r1")] == ["u-alice", "u-bob"]
    assert store.room_members("r1") == ["u-alice", "u-bob"]
    assert store.rooms_of_user("u-nobody") == []


def test_members_are_paged_by_user_id(store: ChatStore) -> None:
    """members_page returns members after a user id, in user-id order, at most `limit` at a time."""
    store.create_room(room_id="big", name="Big", created_by=None, now=NOW)
    users = [f"u-{i:02d}" for i in range(7)]
    for user_id in reversed(users):
        store.add_member(room_id="big", user_id=user_id)
    seen: list[str] = []
    after = None
    while True:
        page = store.members_page(room_id="big", after_user_id=after, limit=3)
        seen += [m.user_id for m in page]
        if len(page) < 3:
            break
        after = page[-1].user_id
    assert seen == users


def test_a_message_sets_the_rooms_last_activity(lobby: ChatStore) -> None:
    """A room's last activity is its latest message's time (None before any)."""
    room = lobby.get_room("lobby")
    assert room is not None and room.last_activity is None
    later = NOW + timedelta(minutes=5)
    lobby.append_message(new_message("hi", timestamp=later))
    room = lobby.get_room("lobby")
    assert room is not None and room.last_activity == later


def test_a_new_topic_is_a_room_updated_event(lobby: ChatStore) -> None:
    """update_room(topic=...) stores the topic and a roomUpdated event that carries it."""
    update = lobby.update_room(room_id="lobby", topic="Say hi", **STAMP)
    assert update.room.topic == "Say hi" and update.event is not None
    assert update.event.data["room"]["topic"] == "Say hi"
    assert lobby.update_room(room_id="lobby", topic="Say hi", **STAMP).event is None


# Read state (unread/) ----------------------------------------------------------------------


def mark_read(store: ChatStore, *, room_id: str, user_id: str, seq: int) -> int:
    """One mark through mark_reads: the last-read seq as stored after it."""
    return store.mark_reads({(room_id, user_id): seq})[(room_id, user_id)].last_read_seq


def test_mark_read_moves_forward_only_and_reads_back_per_room_and_user(lobby: ChatStore) -> None:
    """A last-read seq only moves forward; read_seqs and room_readers return what is stored."""
    assert lobby.read_seqs(user_id="u-bob", room_ids=["lobby"]) == {}
    assert mark_read(lobby, room_id="lobby", user_id="u-bob", seq=5) == 5
    assert mark_read(lobby, room_id="lobby", user_id="u-bob", seq=3) == 5  # never back
    assert mark_read(lobby, room_id="lobby", user_id="u-bob", seq=5) == 5
    assert mark_read(lobby, room_id="lobby", user_id="u-bob", seq=9) == 9
    mark_read(lobby, room_id="other", user_id="u-bob", seq=2)
    mark_read(lobby, room_id="lobby", user_id="u-carol", seq=4)
    assert lobby.read_seqs(user_id="u-bob", room_ids=["lobby", "other", "none"]) == {"lobby": 9, "other": 2}
    assert lobby.read_seqs(user_id="u-carol", room_ids=["other"]) == {}
    assert lobby.room_readers(room_id="lobby", user_ids=["u-bob", "u-carol", "u-dave"]) == {"u-bob": 9, "u-carol": 4}


def test_mark_reads_moves_many_marks_forward_and_says_which_moved(lobby: ChatStore) -> None:
    """Many marks in one call: each forward only, first writes included; the call says where
    each mark is now and whether it moved it (the answer's readState goes out only then)."""
    mark_read(lobby, room_id="lobby", user_id="u-bob", seq=5)
    mark_read(lobby, room_id="lobby", user_id="u-carol", seq=9)
    found = lobby.mark_reads({("lobby", "u-bob"): 7, ("lobby", "u-carol"): 4, ("other", "u-bob"): 0})
    assert found == {
        ("lobby", "u-bob"): ReadMarkResult(last_read_seq=7, moved=True),
        ("lobby", "u-carol"): ReadMarkResult(last_read_seq=9, moved=False),  # never back
        ("other", "u-bob"): ReadMarkResult(last_read_seq=0, moved=True),  # a first mark is written
    }
    again = lobby.mark_reads({("lobby", "u-bob"): 7, ("other", "u-bob"): 0, ("lobby", "u-dave"): 2})
    assert again == {
        ("lobby", "u-bob"): ReadMarkResult(last_read_seq=7, moved=False),
        ("other", "u-bob"): ReadMarkResult(last_read_seq=0, moved=False),
        ("lobby", "u-dave"): ReadMarkResult(last_read_seq=2, moved=True),
    }
    assert lobby.mark_reads({}) == {}
    assert lobby.read_seqs(user_id="u-bob", room_ids=["lobby", "other"]) == {"lobby": 7, "other": 0}
    assert lobby.room_readers(room_id="lobby", user_ids=["u-bob", "u-carol", "u-dave"]) == {
        "u-bob": 7,
        "u-carol": 9,
        "u-dave": 2,
    }


def test_concurrent_mark_reads_batches_keep_the_highest(threaded_store: ChatStore) -> None:
    """Batches from several processes at once, over the same marks: the highest seq wins and
    exactly one batch moved each mark to it."""
    keys = [("lobby", f"u-{name}") for name in ("bob", "carol", "dave")]
    found = in_threads(4, lambda i: threaded_store.mark_reads({key: 10 + i for key in keys}))
    assert threaded_store.room_readers(room_id="lobby", user_ids=[u for _, u in keys]) == {u: 13 for _, u in keys}
    for key in keys:
        assert found[3][key] == ReadMarkResult(last_read_seq=13, moved=True)
        assert all(batch[key].last_read_seq >= 10 + i for i, batch in enumerate(found))


def test_messages_after_many_reads_each_window_as_messages_after_does(lobby: ChatStore) -> None:
    """Several windows in one call, two of one room among them: each is what messages_after
    reads for it (live messages only, oldest first, at most its limit)."""
    lobby.ensure_room(room_id="other", name="Other", created_by="u-alice", now=NOW)
    for n in range(6):
        lobby.append_message(new_message(f"lobby {n}"))
    for n in range(3):
        lobby.append_message(new_message(f"other {n}", room_id="other"))
    lobby.append_message(new_message("gone", timestamp=NOW - timedelta(seconds=MESSAGE_TTL + 60)))
    windows = [("lobby", 1, 3), ("other", 0, 10), ("lobby", 4, 10), ("none", 0, 5), ("lobby", 0, 0)]
    found = lobby.messages_after_many(windows, now=NOW)
    expected = [lobby.messages_after(room_id=r, after_seq=a, limit=n, now=NOW) for r, a, n in windows]
    assert found == expected
    assert [[m.text for m in w] for w in found[:3]] == [
        ["lobby 1", "lobby 2", "lobby 3"],
        ["other 0", "other 1", "other 2"],
        ["lobby 4", "lobby 5"],
    ]
    assert lobby.messages_after_many([], now=NOW) == []


def test_read_state_is_invisible_to_message_reads_and_purges(lobby: ChatStore) -> None:
    """Read marks are no messages: reads of the room and the purge never see them."""
    lobby.append_message(new_message("hello"))
    mark_read(lobby, room_id="lobby", user_id="u-bob", seq=1)
    assert [m.text for m in lobby.messages_after(room_id="lobby", after_seq=0, limit=10, now=NOW)] == ["hello"]
    assert len(lobby.events_after(room_id="lobby", after_seq=0, limit=10, now=NOW)) == 1
    lobby.purge_expired(now=NOW + timedelta(seconds=MESSAGE_TTL + 1))
    assert lobby.read_seqs(user_id="u-bob", room_ids=["lobby"]) == {"lobby": 1}


def test_concurrent_mark_reads_keep_the_highest(threaded_store: ChatStore) -> None:
    """Tabs marking at once: the stored seq is the highest any of them sent."""
    seqs = in_threads(6, lambda i: mark_read(threaded_store, room_id="lobby", user_id="u-bob", seq=10 + i))
    assert max(seqs) == 15
    assert threaded_store.read_seqs(user_id="u-bob", room_ids=["lobby"]) == {"lobby": 15}


def test_messages_keep_the_mentions_the_server_resolved(lobby: ChatStore) -> None:
    """A message's mentions (user ids) are stored with it and read back by every read."""
    new = replace(new_message("hi @bob"), mentions=("u-bob", "u-carol"))
    stored = lobby.append_message(new).message
    assert stored.mentions == ("u-bob", "u-carol")
    (read,) = lobby.messages_after(room_id="lobby", after_seq=0, limit=10, now=NOW)
    assert read.mentions == ("u-bob", "u-carol")
    assert lobby.append_message(new_message("plain")).message.mentions == ()


# Membership changes with their events (chat.people), and the public rooms browsing reads ------


def member_event(kind: str, user_id: str = "u-carol", *, room_id: str = "lobby") -> NewEvent:
    return NewEvent(
        room_id=room_id,
        type=kind,
        data={"userId": user_id, "username": user_id.removeprefix("u-")},
        timestamp=NOW,
        ttl_seconds=MESSAGE_TTL,
    )


def test_a_membership_change_and_its_event_are_written_together_or_not_at_all(lobby: ChatStore) -> None:
    """change_membership adds, re-roles or removes a member and stores its event with the next
    seq; when nothing changes it writes nothing and takes no seq."""
    added = lobby.change_membership(user_id="u-carol", event=member_event(events.MEMBER_ADDED), now=NOW)
    assert added is not None and (added.seq, added.type) == (1, events.MEMBER_ADDED)
    member = lobby.get_membership(room_id="lobby", user_id="u-carol")
    assert member is not None and (member.role, member.joined_at) == ("member", NOW)
    assert lobby.change_membership(user_id="u-carol", event=member_event(events.MEMBER_ADDED), role="owner") is None
    owner = lobby.change_membership(user_id="u-carol", event=member_event(events.MEMBER_UPDATED), role="owner")
    assert owner is not None and owner.seq == 2
    assert lobby.change_membership(user_id="u-carol", event=member_event(events.MEMBER_UPDATED), role="owner") is None
    assert lobby.change_membership(user_id="u-dan", event=member_event(events.MEMBER_UPDATED, "u-dan")) is None
    removed = lobby.change_membership(user_id="u-carol", event=member_event(events.MEMBER_REMOVED))
    assert removed is not None and removed.seq == 3
    assert lobby.get_membership(room_id="lobby", user_id="u-carol") is None
    assert lobby.change_membership(user_id="u-carol", event=member_event(events.MEMBER_REMOVED)) is None
    assert log(lobby) == [(1, "memberAdded"), (2, "memberUpdated"), (3, "memberRemoved")]
    room = lobby.get_room("lobby")
    assert room is not None and room.last_seq == 3
    with pytest.raises(RoomNotFound):
        lobby.change_membership(user_id="u-carol", event=member_event(events.MEMBER_ADDED, room_id="nowhere"))
    assert lobby.get_membership(room_id="nowhere", user_id="u-carol") is None


def _occupy_next_seq(store: ChatStore, room_id: str) -> None:
    """Put a stray log entry where the room's next event would go, so that write fails."""
    room = store.get_room(room_id)
    assert room is not None
    if isinstance(store, DynamoDBStore):
        from chat.storage.dynamodb import message_id_for

        item = {"messageId": {"S": message_id_for(room_id=room_id, seq=room.last_seq + 1)}}
        store.client.put_item(TableName=store.tables.messages, Item=item)
    else:
        from chat import models

        models.RoomEvent.objects.create(
            room_id=room_id, seq=room.last_seq + 1, type="stray", data={}, timestamp=NOW, ttl=2**31
        )


def test_a_membership_whose_event_cannot_be_written_is_not_written_either(lobby: ChatStore) -> None:
    """One atomic write (an ORM transaction; one TransactWriteItems on DynamoDB): when the
    event fails, the membership change fails with it."""
    if isinstance(lobby, DynamoDBStore):
        lobby.max_append_attempts = 2
    lobby.add_member(room_id="lobby", user_id="u-bob")
    _occupy_next_seq(lobby, "lobby")
    with pytest.raises(Exception):  # noqa: B017 - the backend's own error (IntegrityError, AppendContention)
        lobby.change_membership(user_id="u-carol", event=member_event(events.MEMBER_ADDED), now=NOW)
    assert lobby.get_membership(room_id="lobby", user_id="u-carol") is None
    with pytest.raises(Exception):  # noqa: B017
        lobby.change_membership(user_id="u-bob", event=member_event(events.MEMBER_REMOVED, "u-bob"))
    assert lobby.get_membership(room_id="lobby", user_id="u-bob") is not None


def test_public_and_private_rooms_are_listed_apart_as_settings_change(store: ChatStore) -> None:
    """public_rooms lists public rooms by id (archived ones too), private_rooms the private
    ones; neither lists DMs or memberships, and both follow a room made private or public."""
    store.ensure_room(room_id="b-open", name="Open", created_by=None, now=NOW)
    store.create_room(room_id="a-made", name="Made", created_by="u-alice", now=NOW)
    store.create_room(room_id="c-closed", name="Closed", created_by="u-alice", now=NOW, private=True)
    store.create_room(room_id="dm-1", name="DM", created_by="u-alice", now=NOW, direct=True)
    store.add_member(room_id="a-made", user_id="u-alice")
    store.update_room(room_id="b-open", archived=True, **STAMP)
    assert [r.room_id for r in store.public_rooms()] == ["a-made", "b-open"]
    assert [r.room_id for r in store.private_rooms()] == ["c-closed"]
    store.update_room(room_id="a-made", private=True, **STAMP)
    store.update_room(room_id="c-closed", private=False, **STAMP)
    assert [r.room_id for r in store.public_rooms()] == ["b-open", "c-closed"]
    assert [r.room_id for r in store.private_rooms()] == ["a-made"]


def test_room_creation_times_are_one_creators_rooms_after_a_time(store: ChatStore) -> None:
    """room_creation_times gives when each room the user created after `since` was made:
    public, private and DMs alike; not other users' rooms, nor memberships, nor older rooms."""
    for n, (by, minutes) in enumerate([("u-alice", 0), ("u-alice", 30), ("u-bob", 40), ("u-alice", 50)]):
        store.create_room(
            room_id=f"r{n}", name="R", created_by=by, now=NOW + timedelta(minutes=minutes), private=n == 1
        )
    store.create_room(room_id="dm", name="DM", created_by="u-alice", now=NOW + timedelta(minutes=55), direct=True)
    store.ensure_room(room_id="first-message", name="F", created_by=None, now=NOW + timedelta(minutes=56))
    store.add_member(room_id="r2", user_id="u-alice")
    since = NOW + timedelta(minutes=10)
    assert sorted(store.room_creation_times(created_by="u-alice", since=since)) == [
        NOW + timedelta(minutes=m) for m in (30, 50, 55)
    ]
    assert store.room_creation_times(created_by="u-carol", since=NOW - timedelta(days=1)) == []
