"""A socket's opening database work (chatsite.db.side_by_side): on PostgreSQL, opens run
beside each other on a few threads of their own, each with its connection, and every row
and count comes out as if they had run one at a time; on SQLite they keep Django's one sync
thread. A socket cancelled while its admission is still running leaves no row."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from pytest_django.fixtures import Settings

from accounts.identity import Identity
from analytics.models import SocketSpan
from chat import services
from chat.storage import get_store
from chatsite.db.side_by_side import side_by_side
from tests.fixtures.postgres import module_postgres

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "sqlite":
        yield "sqlite"
        return
    with module_postgres(request, ("chat_", "analytics_", "auth_user", "accounts_"), everywhere=True):
        yield "postgresql"


def _sync_thread() -> int:
    return threading.get_ident()


async def test_opening_calls_run_side_by_side_on_postgresql_only(database: str) -> None:
    """Two calls in flight at once: on PostgreSQL both are inside at the same moment (each
    waits for the other at a barrier), on threads other than the sync thread; on SQLite both
    run on the sync thread, one after the other."""
    sync_thread = await database_sync_to_async(_sync_thread)()
    inside = threading.Barrier(2, timeout=10) if database == "postgresql" else None
    ran_on: list[int] = []

    def call() -> None:
        ran_on.append(threading.get_ident())
        if inside is not None:
            inside.wait()  # BrokenBarrierError unless the other call is inside too

    await asyncio.gather(side_by_side(call)(), side_by_side(call)())
    if database == "postgresql":
        assert len(set(ran_on)) == 2 and sync_thread not in ran_on
    else:
        assert ran_on == [sync_thread, sync_thread]


async def test_one_thread_asked_for_keeps_the_sync_thread(database: str, settings: Settings) -> None:
    settings.DATABASE_OPEN_THREADS = 1
    sync_thread = await database_sync_to_async(_sync_thread)()
    assert await side_by_side(_sync_thread)() == sync_thread


async def _users(count: int) -> list[Identity]:
    def make() -> list[Identity]:
        users = [get_user_model().objects.create_user(username=f"opener{i}") for i in range(count)]
        return [Identity(user_id=str(user.pk), username=user.username) for user in users]

    return await sync_to_async(make)()


def _rows_of(identities: list[Identity]) -> list[str]:
    now = services.utcnow()
    store = get_store()
    return [c.connection_id for who in identities for c in store.connections_for_user(user_id=who.user_id, now=now)]


async def test_opens_at_once_each_write_their_row_and_count(database: str) -> None:
    """Twelve users open at once: twelve rows and twelve counted sockets, each user's row
    counted by their quota, whichever thread wrote it."""
    identities = await _users(12)
    records = await asyncio.gather(*(services.connection_open(identity=who) for who in identities))
    assert sorted(await sync_to_async(_rows_of)(identities)) == sorted(r.connection_id for r in records)
    spans = await sync_to_async(lambda: sorted(SocketSpan.objects.values_list("connection_id", flat=True)))()
    assert spans == sorted(r.connection_id for r in records)


async def test_a_socket_cancelled_while_its_admission_runs_leaves_no_row(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """daphne cancels every application on SIGTERM. A socket cancelled while its admission is
    still in its thread (the row not yet written) deletes the row once it is written: on
    PostgreSQL the closes run on another thread, so a delete sent at once came first."""
    (identity,) = await _users(1)
    entered, release, admitted = threading.Event(), threading.Event(), threading.Event()
    real = services._connection_admit

    def admit(**kwargs: object) -> object:
        entered.set()
        release.wait(10)
        try:
            return real(**kwargs)  # type: ignore[arg-type]
        finally:
            admitted.set()

    monkeypatch.setattr(services, "_connection_admit", admit)
    opening = asyncio.create_task(services.connection_open(identity=identity))
    assert await asyncio.to_thread(entered.wait, 10)
    opening.cancel()
    for _ in range(20):  # the cancel is taken, and the close on its way, before the row is written
        await asyncio.sleep(0.01)
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await opening
    assert await asyncio.to_thread(admitted.wait, 10)
    assert await sync_to_async(_rows_of)([identity]) == []
