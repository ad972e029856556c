"""PostgreSQL connections are not pinged before every trip (chatsite.db.postgresql): a
connection that finished a trip a moment ago goes straight to its query; one idle longer is
pinged first and replaced if it broke; one that broke within the moment fails that one trip,
and the next trip works on a new connection."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import DatabaseError, connections
from django.db.utils import load_backend

from chatsite.db.postgresql import base
from chatsite.dburl import database_from_url
from tests.fixtures.clock import Clock
from tests.fixtures.postgres import admin_connection

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(60)]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(base, "monotonic", clock)
    return clock


@pytest.fixture
def database(postgres_url: str) -> Iterator[Any]:
    """A persistent, health-checked connection of its own, as production's DATABASE_URL gives."""
    entry = connections.configure_settings(
        {
            "default": {"ENGINE": "django.db.backends.dummy"},
            "pings": {**database_from_url(postgres_url), "CONN_MAX_AGE": 600},
        }
    )["pings"]
    db = load_backend(entry["ENGINE"]).DatabaseWrapper(entry, "pings")
    db.pings = 0
    usable = db.is_usable

    def counted() -> bool:
        db.pings += 1
        return bool(usable())

    db.is_usable = counted
    yield db
    db.close()


def trip(db: Any) -> int:
    """One trip as database_sync_to_async makes it: stale connections closed around a query."""
    db.close_if_unusable_or_obsolete()
    try:
        with db.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid: int = cursor.fetchone()[0]
        return pid
    finally:
        db.close_if_unusable_or_obsolete()


def kill(pid: int) -> None:
    with admin_connection() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_connection_used_a_moment_ago_is_not_pinged_and_an_idle_one_is(database: Any, clock: Clock) -> None:
    first = trip(database)
    clock.now += 1
    assert trip(database) == first and database.pings == 0  # sound a second ago: straight to the query
    clock.now += base.SOUND_FOR_SECONDS + 1
    assert trip(database) == first and database.pings == 1  # idle past the window: pinged first


def test_a_connection_that_broke_while_idle_is_replaced_before_the_query(database: Any, clock: Clock) -> None:
    first = trip(database)
    kill(first)
    clock.now += base.SOUND_FOR_SECONDS + 1
    assert trip(database) != first  # the ping found it broken: a new connection, and the trip works


def test_a_connection_that_broke_within_the_window_fails_one_trip_then_is_replaced(database: Any, clock: Clock) -> None:
    first = trip(database)
    kill(first)
    clock.now += 1
    with pytest.raises(DatabaseError):
        trip(database)  # the store call answers storage_unavailable, which clients retry
    assert trip(database) != first
