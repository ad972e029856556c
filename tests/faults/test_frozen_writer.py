"""A frozen writer (issue 24): a process stopped (SIGSTOP) while it holds the store's write lock.

The cluster's two daphne processes share one SQLite file. A third process takes the write
lock (BEGIN IMMEDIATE) and is frozen for FREEZE seconds, as a daphne caught mid-commit
would be (catching a daphne in the few milliseconds it holds the lock is luck; a writer
that holds it on purpose is not). Every sender on both processes must be answered with a
retryable `storage_unavailable` and `retryAfter` within the bound, heartbeats must go on
(no socket closed, no reconnect), and once the writer is gone every retry is stored once,
with no gap. PostgreSQL's frozen writer is tests/e2e/test_store_waits.py's.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from tests.e2e.client import timeout
from tests.faults.cluster import HAPROXY, Cluster, close_all
from tests.faults.conftest import BOTS
from tests.faults.harness import check_invariants, talk

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(HAPROXY is None, reason="HAProxy is not installed (Debian: apt-get install -y haproxy)"),
]

FREEZE = 8.0
LOCK_BOUND = 3.0  # chatsite.settings.DATABASE_LOCK_TIMEOUT's default, which the cluster keeps
# A call may wait one bound for the process's database thread and one for the lock
# (chat.services._queue_bounded), plus a busy machine's slack.
ANSWER_BOUND = 2 * LOCK_BOUND + 2.0
CLIENTS = 4
MESSAGES = 4

HOLD = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(600)
"""


async def test_a_frozen_writer_holding_the_write_lock_stalls_no_one_past_the_bound(
    up: Cluster, fresh_room: Callable[[], str]
) -> None:
    """SIGSTOP a writer holding the lock: senders get storage_unavailable in the bound, pings go on, nothing is lost."""
    room = fresh_room()
    clients = await up.clients(BOTS, room, CLIENTS)
    await clients[0].send_reliably(room, "before")
    writer = subprocess.Popen([sys.executable, "-c", HOLD, str(up.db_path)], stdout=subprocess.PIPE)
    try:
        assert writer.stdout is not None
        assert (await asyncio.to_thread(writer.stdout.readline)).strip() == b"locked"
        os.kill(writer.pid, signal.SIGSTOP)
        frozen_at = time.monotonic()

        async def answer(client_index: int) -> tuple[dict[str, object], float]:
            started = time.monotonic()
            reply = await clients[client_index].send_message(room, f"during {client_index}", wait=timeout(30))
            return reply, time.monotonic() - started

        answers = await asyncio.gather(*(answer(i) for i in range(CLIENTS)))
        started = time.monotonic()
        await asyncio.gather(*(client.ping() for client in clients))
        pong = time.monotonic() - started
        # The rest of the conversation goes on through the freeze, each send until acked.
        senders = [asyncio.create_task(talk(c, room, f"{c.name}:", MESSAGES, pause=0.05)) for c in clients]
        await asyncio.sleep(max(0.0, FREEZE - (time.monotonic() - frozen_at)))
        os.kill(writer.pid, signal.SIGCONT)
        writer.kill()
        writer.wait(timeout=10)
        thawed_at = time.monotonic()
        acks = [ack for batch in await asyncio.gather(*senders) for ack in batch]
        caught_up = time.monotonic() - thawed_at

        for reply, took in answers:
            assert reply["type"] == "error" and reply["code"] == "storage_unavailable", reply
            assert float(str(reply["retryAfter"])) > 0 and reply["retryable"] is True, reply
            assert took < ANSWER_BOUND, f"a sender waited {took:.1f} s for its answer"
        assert pong < 1.0, f"heartbeats waited for the store: {pong:.2f} s"
        assert len(acks) == CLIENTS * MESSAGES
        report = await check_invariants(room, clients, up.read_store)
        assert [code for c in clients for code in c.close_codes] == [], "a socket was closed during the freeze"
        slowest = max(took for _, took in answers)
        print(
            f"\nobserved frozen writer ({FREEZE:g} s): {CLIENTS} senders answered storage_unavailable "
            f"in {min(t for _, t in answers):.1f}-{slowest:.1f} s, pong {pong * 1000:.0f} ms, "
            f"all acked {caught_up:.1f} s after the thaw; {report}"
        )
    finally:
        if writer.poll() is None:
            os.kill(writer.pid, signal.SIGCONT)
            writer.kill()
            writer.wait(timeout=10)
        await close_all(clients)
