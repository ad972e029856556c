"""The written-out statements of the hot paths (chatsite.db.rows, the ban and mute checks) read
and write exactly as the ORM does, on SQLite and on PostgreSQL: a message stored through them
comes back as the ORM would give it (aware datetimes, booleans, JSON, NULLs, text unchanged),
and a ban or mute counts exactly when the ORM's rule says it does."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from analytics.models import DayCounter, RoomActivity
from chat import models
from chat.moderation_models import Ban, Mute
from chat.services import ban_longest
from chat.storage.base import RoomNotFound
from chat.storage.local import LocalStore
from chat.tests.test_storage_contract import new_message
from chatsite.db import rows
from tests.fixtures.postgres import module_postgres

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 4, 23, 59, 59, 654321, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "sqlite":
        yield "sqlite"
        return
    with module_postgres(request, ("chat_", "analytics_")):
        yield "postgresql"


def _room(room_id: str = "lobby") -> models.Room:
    return models.Room.objects.create(
        room_id=room_id, name="Lobby ✓", created_at=NOW, created_by=None, last_seq=7, read_only=True, last_activity=None
    )


def test_a_selected_row_has_the_values_the_orm_reads(database: str) -> None:
    """Datetimes come back aware and exact, booleans as booleans, NULL as None, text as stored."""
    _room()
    names = ("room_id", "name", "created_at", "created_by", "last_seq", "read_only", "archived", "last_activity")
    where = f"{rows.column(models.Room, 'room_id')} = %s"
    (found,) = rows.select(models.Room, names, where=where, params=["lobby"])
    orm = models.Room.objects.values(*names).get(room_id="lobby")
    assert found == orm
    assert found["created_at"] == NOW and found["read_only"] is True and found["last_activity"] is None
    assert rows.select(models.Room, names, where=where, params=["nowhere"]) == []


def test_a_lock_is_asked_for_where_the_database_has_row_locks(database: str) -> None:
    """FOR UPDATE on PostgreSQL; SQLite's transaction holds its write lock already."""
    _room()
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        rows.select(
            models.Room, ("room_id",), where=f"{rows.column(models.Room, 'room_id')} = %s", params=["lobby"], lock=True
        )
    assert queries[-1]["sql"].endswith("FOR UPDATE") is (database == "postgresql")


def test_an_inserted_message_reads_back_as_the_orm_stores_it(database: str) -> None:
    """Every field as given, the model's defaults filled in; a second message with the same
    clientMessageId is refused by the constraint and leaves the first as it was."""
    _room()
    message = models.Message(
        message_id="m-1",
        room_id="lobby",
        seq=1,
        user_id="7",
        username="ana",
        text='héllo\n<b>"quoted"</b> 🎉',
        timestamp=NOW,
        connection_id="c-1",
        client_message_id="cm-1",
        ttl=2_000_000_000,
        mentions=["8", "9"],
        attachments=[{"id": "u-1", "name": "a b.png", "size": 3}],
    )
    rows.insert(message)
    stored = models.Message.objects.get(message_id="m-1")
    assert (stored.text, stored.timestamp, stored.mentions, stored.attachments) == (
        message.text,
        NOW,
        ["8", "9"],
        [{"id": "u-1", "name": "a b.png", "size": 3}],
    )
    assert (stored.client_message_id, stored.removed, stored.edits, stored.reactions, stored.reply_count) == (
        "cm-1",
        None,
        [],
        {},
        0,
    )
    again = models.Message(
        message_id="m-2", room_id="lobby", seq=2, user_id="7", username="ana", text="again", timestamp=NOW,
        connection_id="c-1", client_message_id="cm-1", ttl=2_000_000_000,
    )  # fmt: skip
    with pytest.raises(IntegrityError), transaction.atomic():
        rows.insert(again)
    assert list(models.Message.objects.values_list("message_id", flat=True)) == ["m-1"]


def test_an_upsert_inserts_new_rows_and_updates_only_the_named_fields_of_existing_ones(database: str) -> None:
    """ON CONFLICT: the existing room's state takes the update fields; a new room is inserted."""
    RoomActivity.objects.create(room_id="a", last_at=NOW, opened_at=NOW, opener_id="1", answered=False)
    later = NOW + timedelta(minutes=5)
    rows.upsert(
        RoomActivity,
        [
            {"room_id": "a", "last_at": later, "opened_at": later, "opener_id": "2", "answered": True},
            {"room_id": "b", "last_at": later, "opened_at": later, "opener_id": "3", "answered": False},
        ],
        conflict=["room_id"],
        update=["last_at", "answered"],
    )
    assert sorted(RoomActivity.objects.values_list("room_id", "last_at", "opened_at", "opener_id", "answered")) == [
        ("a", later, NOW, "1", True),
        ("b", later, later, "3", False),
    ]


def test_a_counter_row_is_created_then_added_to(database: str) -> None:
    """add: the first bump inserts the row, the next ones add to it (and a negative one takes away)."""
    keys = {"day": date(2026, 12, 4), "name": "messages", "key": "lobby"}
    rows.add(DayCounter, keys, {"value": 1})
    rows.add(DayCounter, keys, {"value": 5})
    rows.add(DayCounter, {**keys, "key": "other"}, {"value": 2})
    rows.add(DayCounter, keys, {"value": -2})
    assert dict(DayCounter.objects.values_list("key", "value")) == {"lobby": 4, "other": 2}


def test_the_written_out_ban_and_mute_checks_agree_with_the_orm(database: str) -> None:
    """Bans and mutes, lifted, expired, dated and open-ended: the one-statement checks asked on
    every connect and every post answer as the ORM's rule (`_active`) does, on both databases."""
    users = [get_user_model().objects.create_user(f"u{n}-{database}") for n in range(5)]
    hour = timedelta(hours=1)
    # u0: nothing; u1: lifted; u2: expired; u3: dated, running; u4: running, one open-ended.
    Ban.objects.create(user=users[1], reason="x", created_at=NOW - hour, expires_at=None, lifted_at=NOW - hour / 2)
    Ban.objects.create(user=users[2], reason="x", created_at=NOW - 2 * hour, expires_at=NOW - hour)
    Ban.objects.create(user=users[3], reason="dated", created_at=NOW - hour, expires_at=NOW + hour)
    Ban.objects.create(user=users[4], reason="dated", created_at=NOW - hour, expires_at=NOW + 2 * hour)
    Ban.objects.create(user=users[4], reason="forever", created_at=NOW - 2 * hour, expires_at=None)
    Mute.objects.create(user=users[1], room_id="lobby", reason="x", created_at=NOW - hour, expires_at=NOW + hour)
    Mute.objects.create(user=users[2], room_id="", reason="x", created_at=NOW - hour, expires_at=NOW - hour / 2)
    Mute.objects.create(user=users[3], room_id="", reason="x", created_at=NOW - hour, expires_at=NOW + hour)
    for user in users:
        by_orm = Ban.active(NOW).filter(user=user).exists()
        assert Ban.any_active(user_id=user.pk, now=NOW) is by_orm, user.username
        for room in ("lobby", "other"):
            muted = Mute.active(NOW).filter(user=user, room_id__in=["", room]).exists()
            assert (Mute.until(user_id=str(user.pk), room_id=room, now=NOW) is not None) is muted, (user.username, room)
    assert [Ban.any_active(user_id=u.pk, now=NOW) for u in users] == [False, False, False, True, True]
    longest = ban_longest(str(users[4].pk))
    assert longest is not None and longest.reason == "forever"  # one until lifted beats any end


def test_on_sqlite_a_statement_skips_djangos_cursor_unless_queries_are_logged_or_wrapped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On SQLite the statements run on the sqlite3 connection itself; a test capturing queries
    (or DEBUG) and an execute wrapper still see every one, through Django's cursor."""
    _room()
    where = f"{rows.column(models.Room, 'room_id')} = %s"
    db = rows.default()
    real_cursor = db.cursor

    def refused() -> None:
        raise AssertionError("Django's cursor")

    monkeypatch.setattr(db, "cursor", refused)
    assert rows.select(models.Room, ("last_seq",), where=where, params=["lobby"]) == [{"last_seq": 7}]
    monkeypatch.setattr(db, "cursor", real_cursor)
    with CaptureQueriesContext(connection) as queries:
        rows.select(models.Room, ("last_seq",), where=where, params=["lobby"])
    assert len(queries) == 1 and "last_seq" in queries[0]["sql"]
    seen: list[str] = []

    def wrapper(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        assert Mute.until(user_id="1", room_id="lobby", now=NOW) is None
    assert len(seen) == 1 and "LIMIT 1" in seen[0]


def test_a_statement_is_refused_in_a_broken_transaction_and_its_errors_are_djangos(database: str) -> None:
    """As through Django's cursor: nothing runs in a transaction marked for rollback, and a
    database error arrives as Django's (the append's retry path catches IntegrityError)."""
    _room()
    where = f"{rows.column(models.Room, 'room_id')} = %s"
    with transaction.atomic():
        transaction.set_rollback(True)
        with pytest.raises(transaction.TransactionManagementError):
            rows.select(models.Room, ("last_seq",), where=where, params=["lobby"])
    with pytest.raises(IntegrityError), transaction.atomic():
        rows.upsert(models.Room, [{"room_id": "lobby", "name": "again", "created_at": NOW, "last_seq": 0}])
    assert models.Room.objects.get(room_id="lobby").name == "Lobby ✓"


def test_a_retry_inside_a_callers_transaction_stores_nothing_and_the_transaction_goes_on(database: str) -> None:
    """As chat.services._post_stored sends: the retry returns the original, burns no seq, and
    the caller's own writes before and after it commit (SQLite: the seq's UPDATE finds the
    retry; PostgreSQL: the insert's constraint, in a savepoint)."""
    _room()
    store = LocalStore()
    with transaction.atomic():
        models.Room.objects.filter(room_id="lobby").update(topic="before")
        original = store.append_message(new_message("hello", client_message_id="c1"))
        retry = store.append_message(new_message("hello again", client_message_id="c1"))
        models.Room.objects.filter(room_id="lobby").update(name="after")
    assert (original.created, retry.created) == (True, False)
    assert retry.message == original.message and original.message.seq == 8
    room = models.Room.objects.get(room_id="lobby")
    assert (room.last_seq, room.topic, room.name) == (8, "before", "after")
    assert list(models.Message.objects.values_list("text", flat=True)) == ["hello"]
    unnamed = [store.append_message(new_message("no id")) for _ in range(2)]
    assert [r.message.seq for r in unnamed] == [9, 10]  # no clientMessageId: never a retry
    with pytest.raises(RoomNotFound):
        store.append_message(new_message("hello", room_id="nowhere", client_message_id="c1"))


def test_on_sqlite_a_message_takes_no_savepoint_in_a_callers_transaction() -> None:
    """A message is the seq's UPDATE and the INSERT, a retry the UPDATE alone: no SAVEPOINT
    and RELEASE around them (two statements and Django's bookkeeping less a send)."""
    _room()
    store = LocalStore()
    seen: list[str] = []
    with transaction.atomic():
        connection.connection.set_trace_callback(seen.append)
        try:
            store.append_message(new_message("hello", client_message_id="c1"))
            store.append_message(new_message("hello again", client_message_id="c1"))
        finally:
            connection.connection.set_trace_callback(None)
    writes = [statement.split()[0] for statement in seen if not statement.startswith("SELECT")]
    assert writes == ["UPDATE", "INSERT", "UPDATE"]
