"""An old retry in a big room (issue 24.3): no process reads the room's history for it.

An outside tester's client retried a `clientMessageId` stored long ago in a room of 50,000
messages. The retry's ack was re-broadcast with its old seq, a freshly subscribed fan-out
took that seq as its baseline, and the next message looked like a gap from seq 1: each
join-retry-send-leave cycle cost 2.4-3.2 s of CPU, and another user's acks on that process
went from 13 ms to 1.5 s.

Here a client on process 0 (connected to it directly, so each of its joins subscribes that
process afresh: no one else there is in the room) runs the same cycle against a room of
BIG messages, while a bystander on process 1 follows the room and another user on process 0
keeps talking in a room of their own. Counted on both processes' /metrics: the store's
event range reads (every gap read, every resume and the search index's catch-up go through
`events_after`) and the `gap` drops; neither may move. Then the suite's invariant check.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from tests.e2e.client import timeout
from tests.faults.cluster import HAPROXY, Cluster, close_all, next_address
from tests.faults.conftest import BOTS
from tests.faults.harness import FaultClient, check_invariants
from tests.fixtures.servers import base_env, manage_shell

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(HAPROXY is None, reason="HAProxy is not installed (Debian: apt-get install -y haproxy)"),
]

BIG = 2_000  # messages stored in the room after the old one (the room had 50,000)
CYCLES = 5
TALKS = 3  # the other user's sends per cycle

FILL = """
from datetime import UTC, datetime
from django.conf import settings
from django.db import transaction
from chat.storage import get_store
from chat.storage.base import NewMessage
store = get_store()
with transaction.atomic():  # one commit: the fill takes seconds, not minutes, on a busy machine
    for n in range(COUNT):
        store.append_message(new=NewMessage(
            room_id=ROOM, user_id="0", username="filler", text=f"filler {n}", connection_id="fill",
            client_message_id=f"fill-{n}", timestamp=datetime.now(UTC), ttl_seconds=settings.CHAT_MESSAGE_TTL_SECONDS,
        ))
# Indexed for search too, as a room that grew through the services is: the index's catch-up
# reads the store through the same store call a gap read does.
from search.indexer import catch_up
catch_up(ROOM)
print("FILLED", flush=True)
"""


def fill(cluster: Cluster, room_id: str, count: int) -> None:
    """Store `count` messages in the room straight through the store (no broadcast: nobody is in it yet)."""
    code = FILL.replace("ROOM", repr(room_id)).replace("COUNT", str(count))
    done = manage_shell(base_env(cluster.data_dir), code, timeout=240)
    assert done.returncode == 0 and "FILLED" in done.stdout, done.stderr[-3000:]


def range_reads(cluster: Cluster) -> tuple[float, float]:
    """(store range reads, `gap` drops) summed over the cluster's processes."""
    reads = cluster.metric("chatsite_store_latency_seconds_count", operation="events_after")
    return reads, cluster.metric("chatsite_channel_layer_drops_total", reason="gap")


async def direct(cluster: Cluster, index: int, user: str) -> FaultClient:
    server = cluster.servers[index]
    return await FaultClient.open(
        server.ws_url,
        cookie=cluster.cookies[user],
        origin=server.origin,
        name=f"{user}@{index}",
        local_host=next_address(),
    )


async def test_retrying_an_old_message_in_a_big_room_reads_no_history_and_slows_no_one(
    up: Cluster, fresh_room: Callable[[], str]
) -> None:
    """join-retry-send-leave in a big room: no range read, no gap drop, the other user acked, invariants hold."""
    room, elsewhere = fresh_room(), fresh_room()
    retrier = await direct(up, 0, BOTS[0])
    clients = [retrier]
    try:
        await retrier.join(room)
        old = await retrier.send_reliably(room, "the old one")
        await retrier.leave(room)  # process 0 leaves the room: the next join subscribes it afresh
        # Long ago: the socket is closed while the room grows (the fill's CPU would not make
        # a busy machine late with a pong the suite's 2 s ping timeout waits for).
        await retrier.close()
        await asyncio.to_thread(fill, up, room, BIG)
        await retrier.recover(resume=False)  # the same client, on process 0 again
        talker = await direct(up, 0, BOTS[1])
        bystander = await direct(up, 1, BOTS[2])
        clients += [talker, bystander]
        await bystander.join(room)  # process 1 follows the room from here
        await talker.join(elsewhere)
        reads_before, gaps_before = await asyncio.to_thread(range_reads, up)  # off the loop: clients answer pings

        talk_acks: list[float] = []
        for cycle in range(CYCLES):
            await retrier.join(room)
            retry = await retrier.send_message(room, "the old one", client_message_id=old["clientMessageId"])
            assert (retry["type"], retry["seq"], retry["messageId"]) == ("ack", old["seq"], old["messageId"]), retry
            await retrier.send_reliably(room, f"new {cycle}")
            for n in range(TALKS):  # the other user, on the same process, meanwhile
                started = time.monotonic()
                reply = await talker.send_message(elsewhere, f"talk {cycle}.{n}", wait=timeout(20))
                assert reply["type"] == "ack", reply
                talk_acks.append(time.monotonic() - started)
            await retrier.leave(room)

        await bystander.wait_for_seq(room, old["seq"] + BIG + CYCLES, wait=timeout(30))
        reads_after, gaps_after = await asyncio.to_thread(range_reads, up)
        assert reads_after == reads_before, f"{reads_after - reads_before:.0f} range reads of the store"
        assert gaps_after == gaps_before, f"{gaps_after - gaps_before:.0f} seqs counted as lost"
        # The retrier has left the room: its acks are checked, its view is not (it joined five times).
        report = await check_invariants(room, [bystander, retrier], up.read_store, recover=False)
        await check_invariants(elsewhere, [talker], up.read_store, recover=False)
        assert [code for c in clients for code in c.close_codes] == [], "a socket was closed"
        assert (talker.reconnects, retrier.reconnects, bystander.reconnects) == (0, 1, 0)  # the retrier's own
        talk_acks.sort()
        print(
            f"\nobserved old retry ({BIG + 1} messages, {CYCLES} cycles): {reads_after - reads_before:.0f} range "
            f"reads, {gaps_after - gaps_before:.0f} gap drops; the other user's acks p50 "
            f"{talk_acks[len(talk_acks) // 2] * 1000:.0f} ms, max {talk_acks[-1] * 1000:.0f} ms; {report}"
        )
    finally:
        await close_all(clients)
