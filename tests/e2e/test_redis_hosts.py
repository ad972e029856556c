"""Past one Redis: REDIS_URLS spreads the rooms' channels over two Redis processes.

Two daphne processes share two Redis hosts. Each room's group lives on exactly one host
(channels-redis's consistent hashing), both hosts carry rooms, every message reaches the
room's sockets on both processes, and a restart of either host loses nothing: the watchdog
of every host (not only the first) makes the sockets rejoin and catch up.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.e2e.client import ChatClient
from tests.fixtures import warm
from tests.fixtures.redis import RedisServer
from tests.fixtures.servers import ROOT, DaphneServer, base_env

pytestmark = pytest.mark.timeout(180)

# Fixed names, so where each room's group lands is the same on every run: with two hosts,
# channels-redis's CRC hash puts the first three on one and the other five on the other.
ROOMS = ["lobby", "dev", "music", "random", "support", "ops", "games", "news"]


def room_hosts(servers: list[RedisServer]) -> dict[str, set[int]]:
    """For each room, the indexes of the Redis hosts with a subscription to its group."""
    found: dict[str, set[int]] = {room: set() for room in ROOMS}
    for index, server in enumerate(servers):
        for channel in redis.Redis.from_url(server.url).pubsub_channels():
            name = channel.decode()
            for room in ROOMS:
                if name.endswith(f"chat.room.{room}"):
                    found[room].add(index)
    return found


async def test_rooms_spread_over_two_redis_hosts_and_survive_a_restart_of_either(
    daphne_factory: Callable[..., DaphneServer], redis_factory: Callable[[], RedisServer], tmp_path: Path
) -> None:
    """Each room on one host, both hosts used; messages reach both processes before and after each host restarts."""
    hosts = [redis_factory(), redis_factory()]
    urls = ",".join(h.url for h in hosts)
    shared = tmp_path / "shared"
    shared.mkdir()
    env = {"REDIS_URLS": urls, "CHAT_LAYER_WATCHDOG_SECONDS": "0.5", "shared_dir": shared}
    one = daphne_factory(CHAT_INSTANCE_ID="p-0", **env)
    two = daphne_factory(CHAT_INSTANCE_ID="p-1", **env)
    cookie = one.signup("alice")
    # Rooms of these fixed ids (users' rooms get a random tail): made as a command would make them.
    made = "; ".join(f"services.room_create(room_id={room!r})" for room in ROOMS)
    warm.run(
        [sys.executable, "manage.py", "shell", "-c", f"from chat import services; {made}"],
        cwd=ROOT,
        env=base_env(shared),
        check=True,
        capture_output=True,
        timeout=120,
    )
    senders = await ChatClient.connect(one.ws_url, cookie=cookie, origin=one.origin)
    readers = await ChatClient.connect(two.ws_url, cookie=cookie, origin=two.origin)
    try:
        for room in ROOMS:
            await senders.join(room)
            await readers.join(room)
        spread = room_hosts(hosts)
        assert all(len(where) == 1 for where in spread.values()), spread
        assert {i for where in spread.values() for i in where} == {0, 1}, spread

        last: dict[str, int] = {}

        async def send_round(label: str) -> None:
            for room in ROOMS:
                ack = await senders.send_message(room, f"{label} {room}")
                assert ack["type"] == "ack", ack
                last[room] = ack["seq"]

        await send_round("before")
        for host in hosts:
            await asyncio.to_thread(host.restart, down_for=0.5)
            await send_round(f"after restart of {host.port}")
        for client in (senders, readers):
            # A message published while its host was coming back can be lost on the way (the
            # ack does not wait for the publish); with no later message to reveal the gap, the
            # client's heartbeat finds it (docs/protocol.md): ping as every client does.
            await client.ping()
            for room in ROOMS:
                log = await client.wait_for_seq(room, last[room])
                assert log.seqs == list(range(1, last[room] + 1)), (room, log.seqs)
                assert log.duplicates == []
            assert not [f for f in client.frames if f.get("type") == "error"]
    finally:
        await senders.close()
        await readers.close()
