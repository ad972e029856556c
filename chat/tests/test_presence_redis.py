"""The presence script on a real Redis: the rules of chat.presence_rules, shared by processes."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from chat.presence import RedisPresence
from chat.presence_rules import ACTIVE, AWAY, CLOSED, IDLE, OFFLINE, ONLINE

pytestmark = pytest.mark.timeout(60)


def backend(redis_url: str, ttl_ms: int = 45_000) -> RedisPresence:
    return RedisPresence({"address": redis_url}, ttl_ms=ttl_ms)


async def test_tabs_on_two_processes_are_one_user_and_each_change_is_reported_once(redis_url: str) -> None:
    one, two = backend(redis_url), backend(redis_url)
    user, room = f"u{uuid.uuid4().hex[:8]}", f"r{uuid.uuid4().hex[:8]}"
    first = await one.update(user_id=user, connection_id="c1", instance="p1", state=ACTIVE, rooms=frozenset({room}))
    assert first is not None and (first.before, first.after, first.new_rooms) == (OFFLINE, ONLINE, (room,))
    second = await two.update(user_id=user, connection_id="c2", instance="p2", state=ACTIVE, rooms=frozenset({room}))
    assert second is not None and not second.changed and second.new_rooms == ()
    assert (await one.in_room(room))[user][0] == ONLINE
    await one.update(user_id=user, connection_id="c1", instance="p1", state=IDLE, rooms=frozenset({room}))
    away = await two.update(user_id=user, connection_id="c2", instance="p2", state=IDLE, rooms=frozenset({room}))
    assert away is not None and (away.before, away.after) == (ONLINE, AWAY)
    await one.update(user_id=user, connection_id="c1", instance="p1", state=CLOSED, rooms=frozenset())
    gone = await two.update(user_id=user, connection_id="c2", instance="p2", state=CLOSED, rooms=frozenset())
    assert gone is not None and (gone.after, gone.rooms) == (OFFLINE, (room,))
    status, seen = (await one.read([user]))[user]
    assert status == OFFLINE and seen is not None and abs(seen / 1000 - time.time()) < 60
    assert await one.in_room(room) == {}


async def test_a_dead_process_users_go_offline_after_the_ttl_reported_by_one_live_process(redis_url: str) -> None:
    ttl = 300
    dead, live = backend(redis_url, ttl), backend(redis_url, ttl)
    user, inst = f"u{uuid.uuid4().hex[:8]}", f"dead-{uuid.uuid4().hex[:6]}"
    await dead.update(user_id=user, connection_id="c1", instance=inst, state=ACTIVE, rooms=frozenset({"general"}))
    reported = []
    deadline = time.monotonic() + 20
    while not reported and time.monotonic() < deadline:
        reported = [c for c in await live.heartbeat(instance="live-1") if c.user_id == user]
        await asyncio.sleep(0.05)
    assert [(c.before, c.after, c.rooms) for c in reported] == [(ONLINE, OFFLINE, ("general",))]
    assert [c for c in await live.heartbeat(instance="live-2") if c.user_id == user] == []
    assert (await live.read([user]))[user][0] == OFFLINE
