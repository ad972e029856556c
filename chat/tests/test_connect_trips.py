"""How many trips off the event loop opening a socket takes (issue 22: connect rate).

Every store or ORM call a socket makes runs on another thread (`database_sync_to_async`,
`sync_to_async`): a thread switch and a wake-up of the event loop each, which cost more than
most of the queries they carry (docs/performance.md, "Connecting"). These tests count the
trips, not the time, so they hold on a busy machine: a change that splits the open into more
trips again fails here.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.utils import timezone
from pytest_django.fixtures import Settings

from analytics.models import SocketSpan, UserDay
from chat import connection_closes, services
from chat.moderation_models import Ban
from chat.storage import get_store
from chat.tests.conftest import OpenSocket, session_cookie

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

WAIT = 5.0


async def _open_and_join(session_sockets: OpenSocket, cookie: bytes) -> WebsocketCommunicator:
    comm = await session_sockets(cookie)
    # Frames are handled after connect() returns, so the answer comes after the whole open.
    await comm.send_json_to({"action": "joinRoom", "roomId": "general"})
    frame = await comm.receive_json_from(timeout=WAIT)
    assert frame["type"] == "joined", frame
    return comm


async def test_a_session_socket_opens_and_joins_in_three_trips_off_the_loop(
    trips: list[str], session_sockets: OpenSocket
) -> None:
    """Opening a signed-in socket and joining a room the process carries, on the local store: the identity
    (session, user, roles) in one trip, the admission (ban check, connection row, quota, counts, the presence
    audience) in one, the join's room read with its history page in one; ten trips before issue 22. The first
    socket of a process also records the process as alive (chat.connections), and the first in a room has its
    access checked once more, before the process subscribes to the room."""
    first, second = await sync_to_async(session_cookie)("alice"), await sync_to_async(session_cookie)("bob")
    trips.clear()
    await _open_and_join(session_sockets, first)
    assert trips == [
        "_session_identity",
        "_guarded",  # services._store_call: connection_open's one trip (_connection_admit)
        "_guarded",  # the process's first socket: services.instance_beat
        "_guarded",  # the join: may alice read the room, before the process subscribes to it?
        "_guarded",  # the join, subscribed: the room again and its latest page
    ], trips
    trips.clear()
    await _open_and_join(session_sockets, second)
    assert trips == ["_session_identity", "_guarded", "_guarded"], trips


@pytest.mark.usefixtures("storage_backend")
async def test_a_socket_on_either_store_opens_and_joins_in_at_most_five_trips(
    trips: list[str], session_sockets: OpenSocket, storage_backend: str
) -> None:
    """DynamoDB is not called from Django's sync thread, so there the ban (a database row) and the counts take
    a trip each beside the store's: five for a socket joining a room the process carries (three locally)."""
    await _open_and_join(session_sockets, await sync_to_async(session_cookie)("alice"))
    cookie = await sync_to_async(session_cookie)("bob")
    trips.clear()
    await _open_and_join(session_sockets, cookie)
    assert len(trips) <= (3 if storage_backend == "local" else 5), trips


@pytest.mark.usefixtures("storage_backend")
async def test_a_banned_user_is_still_refused_and_leaves_no_connection_row(session_sockets: OpenSocket) -> None:
    """The ban check moved into the admission: a banned user still gets `banned`, then 4403, and no
    connection row is written for them, on either store."""
    cookie = await sync_to_async(session_cookie)("mallory")
    user = await get_user_model().objects.aget(username="mallory")
    await Ban.objects.acreate(user=user, reason="spam", created_at=timezone.now())
    comm = await session_sockets(cookie)
    notice = await comm.receive_json_from(timeout=WAIT)
    assert (notice["type"], notice["reason"]) == ("banned", "spam"), notice
    assert await comm.receive_output(timeout=WAIT) == {"type": "websocket.close", "code": 4403}
    rows = await sync_to_async(get_store().connections_for_user)(user_id=str(user.pk), now=timezone.now())
    assert rows == []


async def test_the_admission_counts_a_socket_once_and_not_one_the_quota_refused(
    session_sockets: OpenSocket, settings: Settings
) -> None:
    """The day's counts are written with the connection row, before the quota counts the row: a socket the
    quota refuses (4429) is taken off them again, so the counts say one socket for one admitted."""
    settings.CHAT_MAX_SOCKETS_PER_USER = 1
    cookie = await sync_to_async(session_cookie)("alice")
    user = await get_user_model().objects.aget(username="alice")
    await session_sockets(cookie)
    refused = await session_sockets(cookie)
    error = await refused.receive_json_from(timeout=WAIT)
    assert (error["type"], error["code"]) == ("error", "quota_exceeded")
    assert await refused.receive_output(timeout=WAIT) == {"type": "websocket.close", "code": 4429}
    assert [d.sockets async for d in UserDay.objects.filter(user_id=str(user.pk))] == [1]
    assert await SocketSpan.objects.filter(user_id=str(user.pk)).acount() == 1


@pytest.mark.usefixtures("storage_backend")
async def test_sockets_closing_together_share_their_trips_and_leave_no_row_or_open_span(
    trips: list[str], session_sockets: OpenSocket, storage_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stopping process closes its sockets all at once: the closes that come while one trip
    deletes rows share the next (chat.connection_closes), where each close took three trips of
    its own before (the row, the span, Channels' close_old_connections); on either store, no row
    or open span is left behind. The first trip is held until the others have queued, so the
    batches do not depend on the machine's speed."""
    users = [f"user{n}" for n in range(12)]
    comms = [await _open_and_join(session_sockets, await sync_to_async(session_cookie)(name)) for name in users]
    user_ids = [str(u.pk) async for u in get_user_model().objects.filter(username__in=users)]
    assert await SocketSpan.objects.filter(user_id__in=user_ids, closed_at__isnull=True).acount() == len(users)
    store = get_store()
    gate = threading.Event()
    carried: list[int] = []  # rows per trip
    real_delete = store.delete_connections

    def held_delete(connection_ids: list[str]) -> None:
        carried.append(len(connection_ids))
        gate.wait(WAIT)
        real_delete(connection_ids)

    monkeypatch.setattr(store, "delete_connections", held_delete)
    trips.clear()
    closing = asyncio.gather(*(comm.disconnect(timeout=WAIT) for comm in comms))
    queue = connection_closes.close_queue(services._close_rows)
    async with asyncio.timeout(WAIT):
        while sum(carried) + queue.waiting < len(users):
            await asyncio.sleep(0.01)
    gate.set()
    await closing
    assert sum(carried) == len(users) and len(carried) <= 2, carried
    # Local: one trip for each batch's rows and spans; DynamoDB: one for the rows, one for the spans.
    per_batch = ["_guarded"] if storage_backend == "local" else ["_guarded", "sockets_closed_here"]
    assert trips == per_batch * len(carried), trips
    for user_id in user_ids:
        assert await sync_to_async(store.connections_for_user)(user_id=user_id, now=timezone.now()) == []
    assert await SocketSpan.objects.filter(user_id__in=user_ids, closed_at__isnull=True).acount() == 0
