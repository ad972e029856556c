"""Process faults under traffic: kill -9, a crash between the store and the ack, SIGSTOP /
SIGCONT, SIGTERM, and a reconnect storm, on two daphne processes behind HAProxy.

Each scenario has its own room, breaks a process in the middle of a conversation, puts it
back, and ends with the suite's invariant check (tests/faults/harness.py).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest

from tests.e2e.client import Frame, new_client_message_id, timeout
from tests.faults.cluster import CRASH_TEXT, HAPROXY, Cluster, close_all
from tests.faults.conftest import BOTS
from tests.faults.harness import RESUME_CODES, FaultClient, check_invariants, sqlite_connection_rows, talk

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(HAPROXY is None, reason="HAProxy is not installed (Debian: apt-get install -y haproxy)"),
]

MESSAGES = 8  # per client and scenario
STORM_CLIENTS = 200


async def conversation_with_fault(
    clients: list[FaultClient], room: str, fault: Callable[[], Awaitable[None]]
) -> list[Frame]:
    """Every client sends MESSAGES messages (each until acked); the fault strikes after the first ack."""
    senders = [asyncio.create_task(talk(c, room, f"{c.name}:", MESSAGES, pause=0.03)) for c in clients]
    try:
        await clients[0].wait_for(lambda f: f["type"] == "ack", wait=timeout(10))
        await fault()
        return [ack for acks in await asyncio.gather(*senders) for ack in acks]
    finally:
        for sender in senders:
            sender.cancel()


async def test_kill_9_mid_traffic_loses_nothing_acknowledged(up: Cluster, fresh_room: Callable[[], str]) -> None:
    """kill -9 of one process mid-conversation: its clients reconnect to the other, retry, and lose nothing acked."""
    room = fresh_room()
    clients = await up.clients(BOTS, room, 4)
    try:

        async def kill_and_restart() -> None:
            up.signal(0, signal.SIGKILL)
            await asyncio.sleep(0.5)
            await asyncio.to_thread(up.ensure_running)

        acks = await conversation_with_fault(clients, room, kill_and_restart)
        report = await check_invariants(room, clients, up.read_store)
        assert len(acks) == 4 * MESSAGES
        codes = {code for c in clients for code in c.close_codes}
        assert codes and codes <= RESUME_CODES, codes
        print(f"\nobserved kill -9: {report}")
    finally:
        await close_all(clients)


async def test_a_crash_between_the_store_and_the_ack_is_answered_with_the_original_ack(
    up: Cluster, fresh_room: Callable[[], str]
) -> None:
    """A process dies after storing a message, before acking it; the retry (same id) gets that message's ack."""
    room = fresh_room()
    clients = await up.clients(BOTS, room, 4)
    alice = clients[0]
    try:
        await alice.send_reliably(room, "before")
        cmid = new_client_message_id()
        mark = len(alice.frames)
        await alice.send_json({"action": "sendMessage", "roomId": room, "message": CRASH_TEXT, "clientMessageId": cmid})
        with pytest.raises(ConnectionError):  # no ack, no error: the socket just goes
            await alice.wait_for(lambda f: f.get("clientMessageId") == cmid, after=mark, wait=timeout(10))
        assert alice.close_code == 1006
        assert await asyncio.to_thread(up.exit_codes, timeout(5)) == [70], "one process took the test hook's exit"
        stored = [m for m in up.read_store(room) if m.client_message_id == cmid]
        assert len(stored) == 1, "the message was stored before the crash"

        ack = await alice.send_reliably(room, CRASH_TEXT, client_message_id=cmid)
        assert (ack["seq"], ack["messageId"]) == (stored[0].seq, stored[0].message_id)
        assert [m.client_message_id for m in up.read_store(room)].count(cmid) == 1
        await asyncio.to_thread(up.ensure_running)
        report = await check_invariants(room, clients, up.read_store)
        print(f"\nobserved crash after store: {report}")
    finally:
        await close_all(clients)


async def test_a_frozen_process_sigstop_sigcont_is_slow_but_closes_nothing_and_loses_nothing(
    up: Cluster, fresh_room: Callable[[], str]
) -> None:
    """SIGSTOP for 1.5 s, then SIGCONT: no socket is closed; every message is acked once and seen by all in order."""
    room = fresh_room()
    clients = await up.clients(BOTS, room, 4)
    try:

        async def freeze() -> None:
            up.signal(0, signal.SIGSTOP)
            await asyncio.sleep(1.5)  # below daphne's 2 s ping timeout here
            up.signal(0, signal.SIGCONT)

        acks = await conversation_with_fault(clients, room, freeze)
        assert len(acks) == 4 * MESSAGES
        report = await check_invariants(room, clients, up.read_store, recover=False)
        assert [c.close_codes for c in clients] == [[]] * 4, "a frozen process is slow, not gone"
        print(f"\nobserved SIGSTOP/SIGCONT: {report}")
    finally:
        await close_all(clients)


async def test_sigterm_closes_with_1001_and_clients_resume_on_the_other_process(
    up: Cluster, fresh_room: Callable[[], str]
) -> None:
    """A deploy (SIGTERM) closes that process's sockets with 1001; they resume on the other with nothing lost."""
    room = fresh_room()
    clients = await up.clients(BOTS, room, 4)
    try:

        async def deploy() -> None:
            await asyncio.to_thread(up.servers[1].stop)  # SIGTERM, and wait for the exit
            await asyncio.to_thread(up.ensure_running)

        await conversation_with_fault(clients, room, deploy)
        report = await check_invariants(room, clients, up.read_store)
        codes = [code for c in clients for code in c.close_codes]
        assert codes and set(codes) == {1001}, codes
        print(f"\nobserved SIGTERM: {report}")
    finally:
        await close_all(clients)


async def test_a_reconnect_storm_after_both_processes_die_resumes_everyone_in_bounded_time(
    up: Cluster, fresh_room: Callable[[], str]
) -> None:
    """200 sockets lose both processes (kill -9) and reconnect at once: within 60 s all resume, with no gap."""
    room = fresh_room()
    clients = [
        # From 20 loopback addresses, as a storm comes from many clients (and within the
        # per-address connection limit).
        FaultClient(
            up.balancer.ws_url,
            cookie=up.cookies[BOTS[n % len(BOTS)]],
            origin=up.balancer.origin,
            name=f"storm{n}",
            local_host=f"127.0.1.{n % 20 + 1}",
        )
        for n in range(STORM_CLIENTS)
    ]
    try:
        started = time.monotonic()
        await asyncio.gather(*(c.open_and_join(room, wait=timeout(40)) for c in clients))
        first_open = time.monotonic() - started
        for n in range(5):
            await clients[n].send_reliably(room, f"before {n}")

        killed_at = datetime.now(UTC)
        up.signal(0, signal.SIGKILL)
        up.signal(1, signal.SIGKILL)
        await asyncio.gather(*(c.wait_closed(timeout(10)) for c in clients))
        restart = asyncio.create_task(asyncio.to_thread(up.ensure_running))
        started = time.monotonic()
        await asyncio.gather(*(c.recover(wait=timeout(60)) for c in clients))
        took = time.monotonic() - started
        await restart
        assert took < timeout(60)

        report = await check_invariants(room, clients, up.read_store, recover=False)
        rows = sqlite_connection_rows(up.db_path, BOTS, since=killed_at)
        assert len(rows) == STORM_CLIENTS, "one connection row per socket, however often it tried"
        print(
            f"\nobserved storm: {STORM_CLIENTS} opened and joined in {first_open:.1f} s, "
            f"all reconnected and resumed in {took:.1f} s; {report}"
        )
    finally:
        await close_all(clients)
