"""A message's send off the event loop (issue 22, goal 2: many small rooms).

With an ORM store a plain message is one trip to Django's thread: the room, the sender's
checks (archived, read-only, mutes, slow mode), the append and the dashboard's count in one
transaction (`chat.services._post_stored`). These tests hold that shape and what it must
keep: a refused or failed send leaves no trace (no slow-mode wait taken, no count), a
retry is no new post, and a count that fails never costs the message. They count trips and
rows, not time, so they hold on a busy machine.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from analytics import services as analytics_services
from analytics.models import UserDay
from chat import services
from chat.moderation_models import Mute, SlowModeStamp
from chat.storage import get_store
from chat.tests.conftest import OpenSocket, session_cookie

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

WAIT = 5.0
# What runs off the loop on its own schedule, not the send's: the search index's batch.
NOT_THE_SEND = {"_apply_safely"}


async def _joined(session_sockets: OpenSocket, username: str, room_id: str = "general") -> WebsocketCommunicator:
    comm = await session_sockets(await sync_to_async(session_cookie)(username))
    await comm.send_json_to({"action": "joinRoom", "roomId": room_id})
    frame = await comm.receive_json_from(timeout=WAIT)
    assert frame["type"] == "joined", frame
    return comm


async def _send(comm: WebsocketCommunicator, text: str, cmid: str, room_id: str = "general") -> dict[str, Any]:
    """The ack or error answering this send (the room's message frames skipped)."""
    await comm.send_json_to({"action": "sendMessage", "roomId": room_id, "message": text, "clientMessageId": cmid})
    for _ in range(10):
        frame: dict[str, Any] = await comm.receive_json_from(timeout=WAIT)
        if frame["type"] in ("ack", "error"):
            return frame
    raise AssertionError("no answer to the send")


async def _slow_room(room_id: str) -> None:
    await sync_to_async(services.room_create)(room_id=room_id, name=room_id)
    await sync_to_async(get_store().update_room)(
        room_id=room_id, slow_mode_seconds=60, now=services.utcnow(), ttl_seconds=3600
    )


async def test_a_plain_message_is_one_trip_off_the_loop(trips: list[str], session_sockets: OpenSocket) -> None:
    """On the local store a message without mentions or files is stored in one trip: the room read, the
    mute and slow-mode checks, the append and its count together (four trips and two commits before)."""
    alice = await _joined(session_sockets, "alice")
    assert (await _send(alice, "warm-up", "c0"))["type"] == "ack"
    trips.clear()
    assert (await _send(alice, "hello", "c1"))["type"] == "ack"
    assert [t for t in trips if t not in NOT_THE_SEND] == ["_guarded"], trips


async def test_a_message_is_counted_for_the_dashboard_when_acked(session_sockets: OpenSocket) -> None:
    """Written through (the development default), the count commits with the message: acked means counted,
    and a retry of the same clientMessageId counts nothing."""
    alice = await _joined(session_sockets, "alice")
    user = await get_user_model().objects.aget(username="alice")
    assert (await _send(alice, "hello", "c1"))["type"] == "ack"
    assert (await _send(alice, "hello", "c1"))["type"] == "ack"
    assert [d.messages async for d in UserDay.objects.filter(user_id=str(user.pk))] == [1]


async def test_a_count_that_fails_costs_only_the_count(
    session_sockets: OpenSocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed statement in the count (an aborted transaction, on PostgreSQL) is rolled back alone: the
    message is still stored, acked and delivered, and the room's next message too."""

    def broken(*args: Any, **kwargs: Any) -> None:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE no_such_table SET n = 1")

    monkeypatch.setattr(analytics_services, "_bump", broken)
    alice, bob = await _joined(session_sockets, "alice"), await _joined(session_sockets, "bob")
    first = await _send(alice, "still here", "c1")
    assert first["type"] == "ack", first
    frame = await bob.receive_json_from(timeout=WAIT)
    assert (frame["type"], frame["message"], frame["seq"]) == ("message", "still here", first["seq"])
    assert (await _send(alice, "and again", "c2"))["seq"] == first["seq"] + 1


@pytest.mark.usefixtures("storage_backend")
async def test_a_send_the_store_fails_takes_no_slow_mode_wait(
    session_sockets: OpenSocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In slow mode, a send refused with storage_unavailable does not count as the user's post: the retry goes
    through at once, on either store."""
    await _slow_room("slow")
    alice = await _joined(session_sockets, "alice", "slow")
    store = get_store()
    real = store.append_message

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk gone")

    monkeypatch.setattr(store, "append_message", failing)
    refused = await _send(alice, "first", "c1", "slow")
    assert (refused["type"], refused["code"]) == ("error", "storage_unavailable"), refused
    monkeypatch.setattr(store, "append_message", real)
    assert (await _send(alice, "first", "c1", "slow"))["type"] == "ack"
    assert (await _send(alice, "second", "c2", "slow"))["code"] == "slow_mode"


@pytest.mark.usefixtures("storage_backend")
async def test_a_retry_in_slow_mode_is_answered_and_takes_no_new_wait(session_sockets: OpenSocket) -> None:
    """A retry of a stored message is acked with the original, on either store, and is no new post: once the
    first post's wait has passed, the next message goes through."""
    await _slow_room("slow")
    alice = await _joined(session_sockets, "alice", "slow")
    first = await _send(alice, "first", "c1", "slow")
    assert first["type"] == "ack"
    retry = await _send(alice, "first", "c1", "slow")
    assert retry["type"] == "error" and retry["code"] == "slow_mode", retry  # the wait is checked first
    user = await get_user_model().objects.aget(username="alice")
    # The first post's stamp, moved back past the wait, as if 60 s had passed.
    await SlowModeStamp.objects.filter(room_id="slow", user_id=str(user.pk)).aupdate(
        posted_at=timezone.now() - timedelta(seconds=61)
    )
    again = await _send(alice, "first", "c1", "slow")
    assert (again["type"], again["seq"]) == ("ack", first["seq"])
    assert (await _send(alice, "second", "c2", "slow"))["type"] == "ack"


@pytest.mark.usefixtures("storage_backend")
async def test_a_mute_refuses_the_next_send_at_once(session_sockets: OpenSocket) -> None:
    """A mute written to the database refuses the muted user's very next send (no copy of the mutes is kept
    that could let one through), on either store."""
    alice = await _joined(session_sockets, "alice")
    assert (await _send(alice, "before", "c1"))["type"] == "ack"
    user = await get_user_model().objects.aget(username="alice")
    await Mute.objects.acreate(
        user=user,
        room_id="general",
        reason="heated",
        created_at=timezone.now(),
        expires_at=timezone.now() + timedelta(minutes=5),
    )
    muted = await _send(alice, "after", "c2")
    assert (muted["type"], muted["code"]) == ("error", "muted"), muted
