"""A burst of Redis commands (a stopping process's sockets each reporting presence and
publishing it) goes over a few connections, each command waiting its turn, and every command
is answered: chat.redis_pools, on a real Redis."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from chat import presence as presence_module
from chat.layers import PubSubChannelLayer
from chat.presence import RedisPresence
from chat.presence_rules import ACTIVE
from chat.redis_pools import BURST_CONNECTIONS

pytestmark = pytest.mark.timeout(60)

BURST = 400


async def _connections_named(redis_url: str, name: str) -> int:
    admin = Redis.from_url(redis_url)
    try:
        clients = await admin.client_list()
        return sum(1 for client in clients if client.get("name") == name)
    finally:
        await admin.aclose()


async def test_a_burst_of_presence_updates_takes_a_few_connections(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Presence fails fast (0.5 s to connect, 0.5 s for a free connection); on a machine busy
    # enough, 32 connects and 400 scripts on one event loop take longer than that. What is
    # tested here is how many connections carry the burst, so the clock is widened.
    monkeypatch.setattr(presence_module, "REDIS_TIMEOUT_SECONDS", 30.0)
    name = f"burst-{uuid.uuid4().hex[:8]}"
    presence = RedisPresence({"address": redis_url, "client_name": name}, ttl_ms=45_000)
    changes = await asyncio.gather(
        *(
            presence.update(
                user_id=f"u{i}-{name}", connection_id=f"c{i}", instance=name, state=ACTIVE, rooms=frozenset({"r"})
            )
            for i in range(BURST)
        )
    )
    assert all(change is not None and change.changed for change in changes)
    assert 1 <= await _connections_named(redis_url, name) <= BURST_CONNECTIONS


async def test_a_burst_of_publishes_takes_a_few_connections_and_every_message_arrives(redis_url: str) -> None:
    name = f"burst-{uuid.uuid4().hex[:8]}"
    layer = PubSubChannelLayer(hosts=[{"address": redis_url, "client_name": name}])
    try:
        channel = await layer.new_channel()
        await layer.group_add("room", channel)
        await asyncio.gather(*(layer.group_send("room", {"type": "chat.event", "n": i}) for i in range(BURST)))
        got = [(await asyncio.wait_for(layer.receive(channel), 10))["n"] for _ in range(BURST)]
        assert sorted(got) == list(range(BURST))
        # The publishing connections and the one subscriber connection.
        assert 2 <= await _connections_named(redis_url, name) <= BURST_CONNECTIONS
    finally:
        await layer.flush()
