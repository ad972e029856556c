"""Network faults: a client that stops reading, one that never answers a ping, a half-open
connection. In each, the server frees what the dead or stuck client held, and every other
member of the room goes on as if nothing happened.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from tests.e2e.client import timeout
from tests.faults.cluster import HAPROXY, Cluster, close_all
from tests.faults.conftest import BOTS, DEAD_PEER_SECONDS
from tests.faults.harness import FaultClient, check_invariants, sqlite_connection_rows
from tests.faults.rawws import TEXT, RawSocket
from tests.fixtures.faultproxy import FaultProxy

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(HAPROXY is None, reason="HAProxy is not installed (Debian: apt-get install -y haproxy)"),
]

# A near-maximal message (CHAT_MAX_MESSAGE_LENGTH is 4000) of three UTF-8 bytes a character:
# 11.7 KB a frame, so 128 KiB wait unsent after a dozen messages, well before daphne's pings
# (every second, 2 s to answer) drop a socket that reads nothing for missing its pongs.
HEAVY = "€" * 3900


async def rows_gone(cluster: Cluster, user: str, *, within: float) -> float:
    """Wait until `user` has no connection row; return how long that took."""
    started = time.monotonic()
    while sqlite_connection_rows(cluster.db_path, [user]):
        assert time.monotonic() - started < within, f"{user}'s connection row is still there after {within:.0f} s"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def test_a_client_that_stops_reading_is_dropped_and_the_room_goes_on(
    up: Cluster, person: Callable[[], str], fresh_room: Callable[[], str]
) -> None:
    """A socket that stops reading is dropped once 128 KiB wait unsent; the sender and other members never stall."""
    room, reader_name = fresh_room(), person()
    server = up.servers[0]
    # The room's other members first: from the stuck socket's join on, the clock of its
    # pings runs, and the messages must outrun it.
    sender, listener = await up.clients(BOTS, room, 2)
    stuck: RawSocket | None = None
    try:
        stuck = await RawSocket.open(
            server.port, headers={"Origin": server.origin, "Cookie": up.cookies[reader_name]}, receive_buffer=4096
        )
        await stuck.send_json({"action": "joinRoom", "roomId": room})
        joined = await stuck.next_data()
        assert joined is not None and joined.opcode == TEXT and joined.json()["type"] == "joined"
        # From here on `stuck` reads nothing. Send heavy messages until the server lets it go
        # (bounded: 100 messages are 1.2 MB, far past any buffer on the way).
        sent = 0
        for sent in range(1, 101):
            ack = await sender.send_reliably(room, f"{sent} {HEAVY}", wait=timeout(5))
            assert ack["type"] == "ack"
            if sent % 5 == 0 and not sqlite_connection_rows(up.db_path, [reader_name]):
                break
        else:
            pytest.fail("the stuck socket was never dropped")
        assert "slow reader dropped" in server.log()
        report = await check_invariants(room, [sender, listener], up.read_store, recover=False)
        assert [c.close_codes for c in (sender, listener)] == [[], []]

        # The client, back and reading again, resumes and has every message.
        back = await FaultClient.open(up.balancer.ws_url, cookie=up.cookies[reader_name], origin=up.balancer.origin)
        await back.join(room, last_seq=max(0, len(up.read_store(room)) - 5))
        await check_invariants(room, [sender, listener, back], up.read_store, recover=False)
        await back.close()
        print(f"\nobserved slow reader: dropped after {sent} messages of 11.7 KB; others: {report}")
    finally:
        if stuck is not None:
            stuck.abort()
        await close_all([sender, listener])


async def test_a_client_that_never_answers_pings_is_closed_and_its_row_removed(
    up: Cluster, person: Callable[[], str], fresh_room: Callable[[], str]
) -> None:
    """A socket that never answers daphne's pings is dropped within ping interval + check + timeout; others stay."""
    room, silent_name = fresh_room(), person()
    server = up.servers[1]
    silent = await RawSocket.open(server.port, headers={"Origin": server.origin, "Cookie": up.cookies[silent_name]})
    sender, idle = await up.clients(BOTS, room, 2)  # `idle` answers pings (websockets does) and says nothing
    try:
        await silent.send_json({"action": "ping"})  # the socket is open and signed in: a row exists
        assert (await silent.next_data(pong=False)).json() == {"type": "pong"}  # type: ignore[union-attr]
        assert sqlite_connection_rows(up.db_path, [silent_name])
        took = await rows_gone(up, silent_name, within=DEAD_PEER_SECONDS + 3)
        # Dropped, not closed: there is no close handshake with a peer that does not answer.
        assert await silent.close_code(timeout(5)) is None
        report = await check_invariants(room, [sender, idle], up.read_store, recover=False)
        assert [c.close_codes for c in (sender, idle)] == [[], []]
        print(f"\nobserved silent peer: dropped after {took:.1f} s; {report}")
    finally:
        silent.abort()
        await close_all([sender, idle])


async def test_a_half_open_connection_is_dropped_by_the_server_and_resumed_by_the_client(
    up: Cluster,
    person: Callable[[], str],
    fresh_room: Callable[[], str],
    fault_proxy_factory: Callable[[str, int], FaultProxy],
) -> None:
    """A partition (no FIN, no RST) between a client and its process: the server drops the socket,
    the client's own heartbeat notices, and after the partition it resumes with nothing missing."""
    room, name = fresh_room(), person()
    server = up.servers[0]
    path = fault_proxy_factory("127.0.0.1", server.port)
    # The page's origin is the address the browser used: the proxy's (origins are exact).
    cut = FaultClient(f"ws://{path.address}/ws/", cookie=up.cookies[name], origin=f"http://{path.address}", name=name)
    sender = (await up.clients(BOTS, room, 1))[0]
    try:
        await cut.recover(resume=False)
        await cut.join(room)
        await sender.send_reliably(room, "before the partition")
        await cut.wait_for_seq(room, 1)

        path.blackhole()
        for n in range(3):
            await sender.send_reliably(room, f"during the partition {n}")
        took = await rows_gone(up, name, within=DEAD_PEER_SECONDS + 3)
        with pytest.raises(TimeoutError):  # the client's heartbeat goes unanswered
            await cut.request({"action": "ping"}, expect="pong", wait=1.0)
        assert not cut.closed, "nothing told the client: it is half-open"

        path.heal()
        await cut.recover()
        report = await check_invariants(room, [sender, cut], up.read_store, recover=False)
        assert cut.room(room).texts[:4] == ["before the partition", *(f"during the partition {n}" for n in range(3))]
        print(f"\nobserved half-open: server dropped it after {took:.1f} s; {report}")
    finally:
        path.heal()
        await close_all([cut, sender])
