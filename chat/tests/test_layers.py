"""chat.layers: a publish never waits for the shard's subscriber lock (issue 24); chat.memory_layer
sweeps for expired entries at most once a second (issue 22)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chat import memory_layer
from chat.layers import PubSubChannelLayer
from chat.memory_layer import InMemoryLayer

pytestmark = pytest.mark.timeout(30)


async def test_a_publish_goes_out_while_the_shard_lock_is_held(redis_url: str) -> None:
    """While the shard's lock is held (a slow subscribe, a publish in retries), a publish still goes out."""
    layer = PubSubChannelLayer(hosts=[redis_url])
    channel = await layer.new_channel()
    await layer.group_add("chat.room.other", channel)
    shard = layer._get_layer()._get_shard(layer._get_layer()._get_group_channel_name("chat.room.other"))
    try:
        async with shard._lock:  # what a failing publish held through redis-py's retries
            await asyncio.wait_for(layer.group_send("chat.room.other", {"type": "chat.message", "seq": 1}), 2)
            received = await asyncio.wait_for(layer.receive(channel), 5)
        assert received == {"type": "chat.message", "seq": 1}
    finally:
        await layer.flush()


async def test_the_in_memory_layer_sweeps_once_a_second_and_still_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    """A thousand group sends walk the groups once, not a thousand times; a message past its expiry is still
    dropped at the next sweep."""
    now = [1000.0]
    monkeypatch.setattr(memory_layer.time, "monotonic", lambda: now[0])
    layer = InMemoryLayer(expiry=60)
    sweeps = 0
    real = memory_layer.InMemoryChannelLayer._clean_expired

    def counted(self: InMemoryLayer) -> None:
        nonlocal sweeps
        sweeps += 1
        real(self)

    monkeypatch.setattr(memory_layer.InMemoryChannelLayer, "_clean_expired", counted)
    for i in range(1000):
        await layer.group_add(f"chat.user.{i}", "specific.x!a")
    for i in range(1000):
        await layer.group_send(f"chat.user.{i}", {"type": "chat.user", "n": i})
    assert sweeps == 1
    layer.channels["specific.x!a"]._queue[0] = (0.0, {"type": "stale"})  # expired long ago
    now[0] += memory_layer.SWEEP_SECONDS
    await layer.group_send("chat.user.0", {"type": "chat.user", "n": 0})
    assert sweeps == 2
    assert await layer.receive("specific.x!a") == {"type": "chat.user", "n": 1}


async def test_the_in_memory_group_send_reaches_members_in_turn_without_a_task_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every member gets its copy, in order, a full one misses it, and no task is started per
    member: a control event to the fan-out's one channel costs one put (docs/performance.md)."""
    layer = InMemoryLayer(expiry=60, capacity=1)
    for channel in ("a!1", "b!1", "c!1"):
        await layer.group_add("g", channel)
    await layer.send("b!1", {"type": "first"})  # b is full now
    started: list[object] = []
    real = asyncio.create_task

    def counted(coro: Any, **kwargs: Any) -> Any:
        started.append(coro)
        return real(coro, **kwargs)

    monkeypatch.setattr(asyncio, "create_task", counted)
    event = {"type": "ev", "data": [1]}
    await layer.group_send("g", event)
    assert started == []
    assert await layer.receive("a!1") == event
    assert await layer.receive("b!1") == {"type": "first"}
    got = await layer.receive("c!1")
    assert got == event and got is not event  # a copy, as channels gives
