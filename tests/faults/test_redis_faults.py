"""Redis faults under traffic: restarted, frozen, flushed, its connections reset, cut off.

The two daphne processes reach Redis through the fault proxy (tests/fixtures/faultproxy.py),
so a reset or a partition hits exactly their connections while Redis itself stays up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.faults.cluster import HAPROXY, Cluster, close_all, start_cluster
from tests.faults.conftest import BOTS
from tests.faults.harness import check_invariants, talk

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(HAPROXY is None, reason="HAProxy is not installed (Debian: apt-get install -y haproxy)"),
]

MESSAGES = 8


async def break_redis(cluster: Cluster, fault: str) -> None:
    if fault == "restart":  # kill -9 and start again: every key and subscription is gone
        await asyncio.to_thread(cluster.redis.restart)
    elif fault == "pause":  # SIGSTOP: connections stay open, nothing is answered
        cluster.redis.pause()
        await asyncio.sleep(1.5)
        cluster.redis.resume()
    elif fault == "flush":
        with redis.Redis(port=cluster.redis.port, socket_timeout=5) as admin:
            admin.flushall()
    elif fault == "reset":  # every open connection to Redis is reset (RST)
        cluster.redis_proxy.reset_once()
    else:  # a partition: nothing passes, nothing is closed, for 1.5 s
        cluster.redis_proxy.blackhole()
        await asyncio.sleep(1.5)
        cluster.redis_proxy.heal()


@pytest.mark.parametrize("fault", ["restart", "pause", "flush", "reset", "blackhole"])
async def test_redis_faults_mid_traffic_leave_no_socket_deaf_and_lose_nothing(
    up: Cluster, fresh_room: Callable[[], str], fault: str
) -> None:
    """Redis restarted, frozen, flushed, reset or cut off mid-traffic: every socket hears again, no ack is lost."""
    room = fresh_room()
    clients = await up.clients(BOTS, room, 4)
    senders = [asyncio.create_task(talk(c, room, f"{c.name}:", MESSAGES, pause=0.03)) for c in clients]
    try:
        await clients[0].wait_for(lambda f: f["type"] == "ack")
        await break_redis(up, fault)
        acks = [ack for acks in await asyncio.gather(*senders) for ack in acks]
        assert len(acks) == 4 * MESSAGES
        report = await check_invariants(room, clients, up.read_store)
        print(f"\nobserved Redis {fault}: {report}")
    finally:
        for sender in senders:
            sender.cancel()
        await close_all(clients)


async def test_a_flushed_redis_under_the_core_layer_leaves_no_socket_deaf(
    tmp_path_factory: pytest.TempPathFactory, migrated_db: Path
) -> None:
    """With the core layer (group memberships are Redis keys), FLUSHALL mid-traffic: the watchdog
    notices the lost data (same run_id) and every socket rejoins; nothing acked is lost."""
    core = await asyncio.to_thread(
        start_cluster,
        tmp_path_factory.mktemp("faults-core"),
        migrated_db,
        count=1,
        users={name: ["bots"] for name in BOTS[:2]},
        rooms=["core"],
        CHANNEL_LAYER="core",
    )
    clients = await core.clients(BOTS[:2], "core", 3)
    senders = [asyncio.create_task(talk(c, "core", f"{c.name}:", MESSAGES, pause=0.03)) for c in clients]
    try:
        await clients[0].wait_for(lambda f: f["type"] == "ack")
        await break_redis(core, "flush")
        assert len([ack for acks in await asyncio.gather(*senders) for ack in acks]) == 3 * MESSAGES
        report = await check_invariants("core", clients, core.read_store, recover=False)
        assert [c.close_codes for c in clients] == [[]] * 3
        print(f"\nobserved Redis flush under the core layer: {report}")
    finally:
        for sender in senders:
            sender.cancel()
        await close_all(clients)
        await asyncio.to_thread(core.stop)
