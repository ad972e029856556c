"""chat.layers: a publish never waits for the shard's subscriber lock (issue 24)."""

from __future__ import annotations

import asyncio

import pytest

from chat.layers import PubSubChannelLayer

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
