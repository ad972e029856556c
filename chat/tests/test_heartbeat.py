"""The connection keeper's heartbeat never holds the store for every row at once (chat.services)."""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from pytest_django.fixtures import Settings

from accounts.identity import Identity
from chat import services
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
    reached, never = asyncio.Event(), asyncio.Event()
    real = services._store_call

    async def store_call(fn: object, **kwargs: object) -> object:
        result = await real(fn, **kwargs)  # type: ignore[arg-type]
        if fn is services._connection_admit:  # the open's one trip: ban check, row, quota, counts
            reached.set()
            await never.wait()
        return result

    monkeypatch.setattr(services, "_store_call", store_call)

    def live() -> list[str]:
        return [
            c.connection_id for c in get_store().connections_for_user(user_id=identity.user_id, now=services.utcnow())
        ]

    opening = asyncio.create_task(services.connection_open(identity=identity))
    await asyncio.wait_for(reached.wait(), 10)
    assert len(await sync_to_async(live)()) == 1  # the row is written: the cancel comes after it
    opening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await opening
    assert await sync_to_async(live)() == []
