"""Acks never wait for Redis (issue 24).

A message is acked once it is durably stored; its publish to the other processes runs
after, in its room's publisher. While Redis is down the sender's acks come at once (they
used to wait out redis-py's retries, about 0.7 s a message, under a lock every other room's
publish and every join of the process also needed), and when Redis is back the receivers
repair what the outage cost them by seq: nothing is lost, nothing shown twice.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.client import ChatClient, create_room, timeout
from tests.fixtures.redis import RedisServer
from tests.fixtures.servers import DaphneServer

pytestmark = pytest.mark.timeout(120)

DOWN_MESSAGES = 4
# What a stored message's ack may take here, store commit included, on a busy machine; the
# publish's retries alone took 0.7 s before.
PROMPT_ACK = 0.4


async def test_acks_come_at_once_while_redis_is_down_and_nothing_is_lost_when_it_is_back(
    daphne_factory: Callable[..., DaphneServer], redis_factory: Callable[[], RedisServer], tmp_path: Path
) -> None:
    """With Redis down, each send is acked at once; once it is back, every receiver has every message in order."""
    redis = redis_factory()
    server = daphne_factory(shared_dir=tmp_path, REDIS_URL=redis.url, CHAT_LAYER_WATCHDOG_SECONDS="0.5")
    cookies = [server.signup(name) for name in ("alice", "bob", "carol")]
    outage = create_room(server.base_url, cookies[0], "outage")
    elsewhere = create_room(server.base_url, cookies[0], "elsewhere")
    alice, bob, carol = [await ChatClient.connect(server.ws_url, cookie=c, origin=server.origin) for c in cookies]
    try:
        for client in (alice, bob):
            await client.join(outage)
        await carol.join(elsewhere)
        assert (await alice.send_message(outage, "before"))["seq"] == 1
        await bob.wait_for_seq(outage, 1)

        redis.stop(signal.SIGKILL)
        took = []
        for n in range(DOWN_MESSAGES):
            started = time.monotonic()
            ack = await alice.send_message(outage, f"down {n}")
            took.append(time.monotonic() - started)
            assert ack["type"] == "ack" and ack["seq"] == n + 2, ack
        started = time.monotonic()
        other = await carol.send_message(elsewhere, "another room")
        took_other = time.monotonic() - started
        assert other["type"] == "ack", other
        assert max(took) < PROMPT_ACK, f"acks waited for Redis: {[round(t, 2) for t in took]}"
        assert took_other < PROMPT_ACK, f"another room's ack waited: {took_other:.2f} s"

        await asyncio.sleep(0.5)
        redis.start()
        after = await alice.send_message(outage, "after", wait=timeout(20))
        assert after["type"] == "ack", after
        last = DOWN_MESSAGES + 2
        for client in (alice, bob):
            log = await client.wait_for_seq(outage, last, wait=timeout(30))
            assert log.seqs == list(range(1, last + 1)), log.seqs
            assert log.texts == ["before", *(f"down {n}" for n in range(DOWN_MESSAGES)), "after"]
        print(
            f"\nobserved Redis down: acks in {', '.join(f'{t * 1000:.0f}' for t in took)} ms "
            f"(another room {took_other * 1000:.0f} ms); after it came back every receiver had seqs 1..{last}"
        )
    finally:
        for client in (alice, bob, carol):
            await client.close()
