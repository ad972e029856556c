"""Per-user quotas: open sockets, rooms created per day, read frames; on both storage backends."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client
from pytest_django.fixtures import Settings

from accounts.identity import Identity
from chat import quota, ratelimit, services
from chat.tests.conftest import OpenSocket, session_cookie

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

WAIT = 5.0


async def test_the_21st_socket_of_a_user_is_refused_with_4429(
    storage_backend: str, session_sockets: OpenSocket
) -> None:
    """20 sockets per user by default; the 21st gets quota_exceeded then 4429; others are unaffected."""
    assert django_settings.CHAT_MAX_SOCKETS_PER_USER == 20
    alice, bob = await sync_to_async(session_cookie)("alice"), await sync_to_async(session_cookie)("bob")
    opened = [await session_sockets(alice) for _ in range(20)]
    for comm in opened[::5]:
        await comm.send_json_to({"action": "ping"})
        assert await comm.receive_json_from(timeout=WAIT) == {"type": "pong"}
    extra = await session_sockets(alice)
    error = await extra.receive_json_from(timeout=WAIT)
    assert (error["type"], error["code"]) == ("error", "quota_exceeded")
    assert (await extra.receive_output(timeout=WAIT)) == {"type": "websocket.close", "code": 4429}
    other = await session_sockets(bob)  # another user is not counted against alice
    await other.send_json_to({"action": "ping"})
    assert await other.receive_json_from(timeout=WAIT) == {"type": "pong"}
    # Closing one of alice's sockets frees a place.
    await opened[0].disconnect(timeout=WAIT)
    again = await session_sockets(alice)
    await again.send_json_to({"action": "ping"})
    assert await again.receive_json_from(timeout=WAIT) == {"type": "pong"}


async def test_rooms_created_per_day_are_capped(storage_backend: str, settings: Settings) -> None:
    """A user creates CHAT_ROOMS_PER_USER_PER_DAY rooms; the next is 429 quota_exceeded with Retry-After."""
    settings.CHAT_ROOMS_PER_USER_PER_DAY = 3
    client = Client()
    await sync_to_async(client.force_login)(await get_user_model().objects.acreate(username="maker"))

    def create(name: str) -> Any:
        body = json.dumps({"name": name})
        return client.post("/api/rooms", body, content_type="application/json")

    assert (await sync_to_async(create)("made-0")).status_code == 201
    # A taken name is refused as taken (creating never opens a room) and is no creation.
    taken = await sync_to_async(create)("made-0")
    assert (taken.status_code, taken.json()["error"]) == (409, "room_name_taken")
    codes = [(await sync_to_async(create)(f"made-{n}")).status_code for n in (1, 2)]
    assert codes == [201, 201]
    refused = await sync_to_async(create)("made-3")
    assert refused.status_code == 429
    assert refused.json()["error"] == "quota_exceeded"
    assert 86_000 < int(refused["Retry-After"]) <= 86_400
    rooms = await sync_to_async(services.room_list)(identity=None)
    assert sorted(r.name for r in rooms) == ["General", "made-0", "made-1", "made-2"]


def test_the_room_quota_frees_up_after_a_day() -> None:
    """Rooms older than 24 hours do not count; Retry-After is when the oldest counted one ages out."""
    now = services.utcnow()
    me = Identity(user_id="7", username="maker")

    rooms = [now - timedelta(hours=hours_ago) for hours_ago in (25, 23, 1)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(django_settings, "CHAT_ROOMS_PER_USER_PER_DAY", 2, raising=False)
        with pytest.raises(quota.QuotaExceeded) as refused:
            quota.rooms_created_today(identity=me, now=now, created=rooms)
        assert refused.value.retry_after == 3600
        patch.setattr(django_settings, "CHAT_ROOMS_PER_USER_PER_DAY", 3, raising=False)
        quota.rooms_created_today(identity=me, now=now, created=rooms)


async def test_read_frames_share_one_budget_per_user(
    storage_backend: str, session_sockets: OpenSocket, settings: Settings
) -> None:
    """joinRoom, history and ping over all of a user's sockets draw on CHAT_RATE_LIMIT_READS_PER_USER."""
    settings.CHAT_RATE_LIMIT_READS_PER_USER = "4/600"
    ratelimit.reset()
    alice = await sync_to_async(session_cookie)("alice")
    one, two = await session_sockets(alice), await session_sockets(alice)
    answers = []
    for comm, frame in [
        (one, {"action": "ping"}),
        (two, {"action": "joinRoom", "roomId": "general"}),
        (one, {"action": "history", "roomId": "general"}),
        (two, {"action": "ping"}),
        (one, {"action": "ping"}),
    ]:
        await comm.send_json_to(frame)
        answers.append(await comm.receive_json_from(timeout=WAIT))
    assert [a["type"] for a in answers] == ["pong", "joined", "history", "pong", "error"]
    assert answers[-1]["code"] == "rate_limited" and answers[-1]["retryAfter"] > 0
    ratelimit.reset()
