"""The connection keeper's heartbeat (chat.connections, chat.services): it never holds the
store for every row at once, it sweeps the rows of a process that stopped beating, and a
process swept while it stalled writes its rows again (issue 22.4). On both backends where
the test takes `storage_backend`; the keeper runs on a clock the test drives (`tick(now=)`)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from pytest_django.fixtures import Settings

from accounts.identity import Identity
from chat import services
from chat.connections import LocalSockets
from chat.records import ConnectionRecord
from chat.storage import get_store

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


async def test_a_message_sent_during_a_large_heartbeat_is_stored_between_its_slices(settings: Settings) -> None:
    """600 connection rows refresh in slices: a message sent meanwhile is stored and acked
    while the heartbeat is still going, and every row gets the new ttl."""
    settings.CHAT_MAX_SOCKETS_PER_USER = 0  # one user's 600 rows stand for a process's many users
    user = await sync_to_async(get_user_model().objects.create_user)(username="alice")
    identity = Identity(user_id=str(user.pk), username="alice")
    await sync_to_async(services.room_create)(room_id="lounge", name="Lounge")
    records = [await services.connection_open(identity=identity) for _ in range(600)]
    ids = [record.connection_id for record in records]

    def age_rows() -> None:  # rows close to expiry, so the refresh shows
        for connection_id in ids:
            get_store().refresh_connection(connection_id=connection_id, ttl=int(time.time()) + 5)

    await sync_to_async(age_rows)()
    renewed = int(time.time()) + settings.CHAT_CONNECTION_TTL_SECONDS
    heartbeat = asyncio.create_task(services.connections_heartbeat(connection_ids=ids))
    await asyncio.sleep(0)  # its first slice is on the store's thread now
    message = await services.message_send(
        identity=identity, connection_id=ids[0], room_id="lounge", text="hello", client_message_id="c-1"
    )
    assert message.seq == 1
    assert not heartbeat.done(), "the message waited for the whole heartbeat"
    await heartbeat

    def ttls() -> list[int]:
        return [c.ttl for c in get_store().connections_for_user(user_id=identity.user_id, now=services.utcnow())]

    after = await sync_to_async(ttls)()
    assert len(after) == 600 and min(after) >= renewed


async def test_a_socket_cancelled_while_its_row_is_written_leaves_no_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """daphne cancels every application on SIGTERM: a connection_open cancelled after its row is saved (before
    the caller has the row's id) deletes the row again, so no socket of a stopped process counts as open."""
    user = await sync_to_async(get_user_model().objects.create_user)(username="alice")
    identity = Identity(user_id=str(user.pk), username="alice")
    reached, answer = asyncio.Event(), asyncio.Event()
    real = services._opening_store_call

    async def store_call(fn: object, **kwargs: object) -> object:
        result = await real(fn, **kwargs)  # type: ignore[arg-type]
        if fn is services._connection_admit:  # the open's one trip: ban check, row, quota, counts
            reached.set()
            await answer.wait()  # the trip's answer on its way back when the cancel comes
        return result

    monkeypatch.setattr(services, "_opening_store_call", store_call)

    def live() -> list[str]:
        return [
            c.connection_id for c in get_store().connections_for_user(user_id=identity.user_id, now=services.utcnow())
        ]

    opening = asyncio.create_task(services.connection_open(identity=identity))
    await asyncio.wait_for(reached.wait(), 10)
    assert len(await sync_to_async(live)()) == 1  # the row is written: the cancel comes after it
    opening.cancel()
    await asyncio.sleep(0)
    answer.set()
    with pytest.raises(asyncio.CancelledError):
        await opening
    assert await sync_to_async(live)() == []


class QuietSocket:
    """An open socket that says nothing: all the keeper needs of one (chat.connections.LiveSocket)."""

    def __init__(self, connection_id: str) -> None:
        self.connection_id: str | None = connection_id

    def joined_rooms(self) -> list[str]:
        return []

    async def go_away(self) -> None: ...

    async def release(self) -> None: ...

    async def catch_up(self, *, fresh: bool) -> None: ...

    def session_key(self) -> str | None:
        return None

    async def end_access(self, close_code: int) -> None: ...


async def keeper_with(records: list[ConnectionRecord]) -> LocalSockets:
    """A registry holding these sockets, whose own timer is stopped: the test ticks it."""
    registry = LocalSockets()
    for record in records:
        await registry.add(QuietSocket(record.connection_id), record)
    assert registry._task is not None
    registry._task.cancel()  # not started yet: add() does not yield
    with pytest.raises(asyncio.CancelledError):
        await registry._task
    return registry


def live_ids(*, user_id: str, at: float) -> list[str]:
    now = datetime.fromtimestamp(at, tz=UTC)
    return [c.connection_id for c in get_store().connections_for_user(user_id=user_id, now=now)]


async def test_the_rows_of_a_process_that_stopped_beating_are_swept_by_a_live_one(storage_backend: str) -> None:
    """A process that died without cleaning up leaves rows with a long ttl; once its entry
    has expired, the next heartbeat of a live process deletes them, and only them."""
    mine = await services.connection_open(identity=Identity(user_id="u-alice", username="alice"))
    registry = await keeper_with([mine])
    t0 = time.time()
    store = get_store()
    ghost = ConnectionRecord(
        connection_id="ghost-1",
        user_id="u-bob",
        username="bob",
        connected_at=services.utcnow(),
        ttl=int(t0) + 7200,
        instance_id="died-1",
    )
    await sync_to_async(store.save_connection)(ghost)
    await sync_to_async(store.beat_instance)(
        instance_id="died-1", ttl=int(t0) + 180, now=datetime.fromtimestamp(t0, tz=UTC)
    )
    await registry.tick(now=t0 + 60)
    assert await sync_to_async(live_ids)(user_id="u-bob", at=t0 + 60) == ["ghost-1"]  # not dead yet
    await registry.tick(now=t0 + 181)
    assert await sync_to_async(live_ids)(user_id="u-bob", at=t0 + 181) == []
    assert await sync_to_async(live_ids)(user_id="u-alice", at=t0 + 181) == [mine.connection_id]
    beat = await services.instance_beat(now=t0 + 240)
    assert beat.dead == {}, "the dead process's entry is forgotten with its rows"


async def test_a_process_swept_while_it_stalled_writes_its_rows_again(storage_backend: str) -> None:
    """A process that stalled past its instance ttl may have had its rows swept by another;
    its next heartbeat finds its entry gone and writes its open sockets' rows again."""
    mine = await services.connection_open(identity=Identity(user_id="u-alice", username="alice"))
    registry = await keeper_with([mine])
    t0 = time.time()
    await registry.tick(now=t0)
    entry_ttl = int(t0) + settings.CHAT_INSTANCE_TTL_SECONDS
    # Another process, t0 + 300: this one looks dead, and its rows are swept.
    swept = await services.instance_sweep(instance_id=services.instance_id(), ttl=entry_ttl, now=t0 + 300)
    assert swept == 1
    assert await sync_to_async(live_ids)(user_id="u-alice", at=t0 + 300) == []
    await registry.tick(now=t0 + 301)
    assert await sync_to_async(live_ids)(user_id="u-alice", at=t0 + 301) == [mine.connection_id]


async def test_a_row_is_refreshed_once_less_than_half_its_ttl_is_left(storage_backend: str) -> None:
    """Rows are not rewritten every heartbeat: a row's ttl moves only once less than half of
    CHAT_CONNECTION_TTL_SECONDS is left, and then by a whole ttl, so it never expires while open."""
    mine = await services.connection_open(identity=Identity(user_id="u-alice", username="alice"))
    registry = await keeper_with([mine])
    t0 = time.time()
    ttl = settings.CHAT_CONNECTION_TTL_SECONDS
    heartbeat = settings.CHAT_CONNECTION_HEARTBEAT_SECONDS

    def row_ttl() -> int:
        (row,) = get_store().connections_for_user(user_id="u-alice", now=services.utcnow())
        return row.ttl

    await registry.tick(now=t0)  # the first heartbeat writes the process's rows again (see add)
    first = await sync_to_async(row_ttl)()
    ticks = int(ttl / heartbeat) + 2  # past the first refresh
    refreshed_at = refreshed_to = None
    for i in range(1, ticks + 1):
        await registry.tick(now=t0 + i * heartbeat)
        if refreshed_at is None and (now_ttl := await sync_to_async(row_ttl)()) != first:
            refreshed_at, refreshed_to = t0 + i * heartbeat, now_ttl
    assert refreshed_at is not None
    assert first - (refreshed_at - heartbeat) >= ttl / 2  # not a heartbeat sooner than due
    assert first - refreshed_at < ttl / 2
    assert refreshed_to == int(refreshed_at) + ttl


async def test_a_row_put_back_for_a_socket_that_closed_meanwhile_is_deleted_again(
    storage_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first beat writes the process's rows again; a socket that closes while that runs may
    have its row put back after its close deleted it. The next heartbeat deletes it again."""
    mine = await services.connection_open(identity=Identity(user_id="u-alice", username="alice"))
    registry = await keeper_with([mine])
    (socket,) = registry.sockets.values()
    rewrite = services.connections_rewrite

    async def closing_meanwhile(*, records: list[ConnectionRecord]) -> None:
        await services.connection_close(connection_id=mine.connection_id)
        registry.discard(socket)
        await rewrite(records=records)

    monkeypatch.setattr(services, "connections_rewrite", closing_meanwhile)
    t0 = time.time()
    await registry.tick(now=t0)  # the first heartbeat after the first socket: rows written again
    assert await sync_to_async(live_ids)(user_id="u-alice", at=t0) == [mine.connection_id]  # put back
    await registry.tick(now=t0 + 60)
    assert await sync_to_async(live_ids)(user_id="u-alice", at=t0 + 60) == []
