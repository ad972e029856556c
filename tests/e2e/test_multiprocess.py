"""Several daphne processes sharing one Redis and one database, as behind a balancer.

Every test uses its own room, so tests sharing one Redis never hear each other. Tests that
restart Redis start their own throwaway server (`redis_factory`).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from websockets.exceptions import ConnectionClosed

from tests.e2e.client import ChatClient, create_room, timeout
from tests.fixtures.redis import RedisServer, SentinelServer
from tests.fixtures.servers import DaphneServer, base_env

LAYERS = ["pubsub", "core"]
RESUME_CODES = {1001, 1011, 1012}


def new_room() -> str:
    return f"mp-{uuid.uuid4().hex[:10]}"


@dataclass
class Cluster:
    servers: list[DaphneServer]
    shared_dir: Path

    def live_rows(self, *usernames: str) -> list[tuple[str, str, int, str]]:
        """(connection_id, username, ttl, instance_id) of live rows (ttl ahead), of `usernames` if given."""
        with contextlib.closing(sqlite3.connect(self.shared_dir / "db.sqlite3", timeout=20)) as db:
            rows: list[tuple[str, str, int, str]] = db.execute(
                "SELECT connection_id, username, ttl, instance_id FROM chat_connection WHERE ttl > ? ORDER BY ttl",
                (int(time.time()),),
            ).fetchall()
        return [r for r in rows if not usernames or r[1] in usernames]


def start_cluster(
    daphne_factory: Callable[..., DaphneServer],
    tmp_path: Path,
    count: int = 2,
    **env: str,
) -> Cluster:
    shared_dir = tmp_path / "shared"
    shared_dir.mkdir()
    servers = [daphne_factory(shared_dir=shared_dir, CHAT_INSTANCE_ID=f"daphne-{i}", **env) for i in range(count)]
    return Cluster(servers=servers, shared_dir=shared_dir)


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory, migrated_db: Path, redis_url: str) -> Iterator[Cluster]:
    """Two daphne processes on the shared Redis (pub/sub layer) and one database, for tests
    that need nothing special; short connection ttl with a fast heartbeat, to watch it work."""
    shared_dir = tmp_path_factory.mktemp("cluster")
    shutil.copy(migrated_db, shared_dir / "db.sqlite3")
    servers: list[DaphneServer] = []
    try:
        for i in range(2):
            env = base_env(
                shared_dir,
                REDIS_URL=redis_url,
                CHAT_INSTANCE_ID=f"shared-{i}",
                CHAT_CONNECTION_TTL_SECONDS="3",
                CHAT_CONNECTION_HEARTBEAT_SECONDS="0.5",
            )
            servers.append(DaphneServer(shared_dir, env).start())
        yield Cluster(servers=servers, shared_dir=shared_dir)
    finally:
        for server in servers:
            server.stop()


def new_user(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def connect(server: DaphneServer, cookie: str) -> ChatClient:
    return await ChatClient.connect(server.ws_url, cookie=cookie, origin=server.origin)


async def send_all(client: ChatClient, room: str, texts: list[str]) -> list[int]:
    seqs = []
    for text in texts:
        ack = await client.send_message(room, text)
        assert ack["type"] == "ack", ack
        seqs.append(ack["seq"])
    return seqs


@pytest.mark.parametrize("layer", LAYERS)
async def test_users_on_two_processes_chat_in_order_with_no_loss(
    request: pytest.FixtureRequest,
    daphne_factory: Callable[..., DaphneServer],
    redis_url: str,
    tmp_path: Path,
    layer: str,
) -> None:
    """Users on different daphne processes see every message of a room once, in seq order."""
    if layer == "pubsub":  # the default layer: the shared cluster runs it
        cluster: Cluster = request.getfixturevalue("shared_cluster")
    else:
        cluster = start_cluster(daphne_factory, tmp_path, REDIS_URL=redis_url, CHANNEL_LAYER=layer)
    one, two = cluster.servers
    alice, bob = one.signup(new_user("alice")), two.signup(new_user("bob"))
    room = new_room()
    room = create_room(one.base_url, alice, room)
    a, b = await connect(one, alice), await connect(two, bob)
    try:
        await a.join(room)
        await b.join(room)
        sent_a = [f"a{i}" for i in range(15)]
        sent_b = [f"b{i}" for i in range(15)]
        seqs = await asyncio.gather(send_all(a, room, sent_a), send_all(b, room, sent_b))
        last = max(max(s) for s in seqs)
        assert last == 30
        for client in (a, b):
            log = await client.wait_for_seq(room, last)
            assert log.seqs == list(range(1, 31))
            assert (log.gaps, log.duplicates, log.out_of_order) == ([], [], [])
            # Each sender's own messages keep the order they were sent in.
            assert [t for t in log.texts if t.startswith("a")] == sent_a
            assert [t for t in log.texts if t.startswith("b")] == sent_b
    finally:
        await a.close()
        await b.close()


async def chat_until_stopped(client: ChatClient, room: str, prefix: str, stop: asyncio.Event) -> list[int]:
    """Send until told to stop; reconnect and resume whenever the server closes the socket."""
    acked: list[int] = []
    n = 0
    while not stop.is_set():
        try:
            ack = await client.send_message(room, f"{prefix}{n}", wait=timeout(10))
        except (ConnectionError, ConnectionClosed):
            await client.close()
            assert client.close_code in RESUME_CODES, client.close_code
            await client.reconnect()
            continue
        if ack["type"] == "ack":
            acked.append(ack["seq"])
        n += 1
        await asyncio.sleep(0.02)
    return acked


async def resume_if_closed(client: ChatClient) -> None:
    """A closed socket resumes like a browser tab would; it must have been closed with a resume code."""
    if client.closed:
        assert client.close_code in RESUME_CODES, client.close_code
        await client.reconnect()


@pytest.mark.parametrize(("layer", "fault"), [("pubsub", "restart"), ("core", "restart"), ("pubsub", "pause")])
async def test_a_redis_restart_during_traffic_loses_nothing_acknowledged(
    daphne_factory: Callable[..., DaphneServer],
    redis_factory: Callable[[], RedisServer],
    tmp_path: Path,
    layer: str,
    fault: str,
) -> None:
    """After Redis restarts (or freezes) mid-conversation every socket receives again and has every acked message."""
    redis_server = redis_factory()
    cluster = start_cluster(daphne_factory, tmp_path, REDIS_URL=redis_server.url, CHANNEL_LAYER=layer)
    one, two = cluster.servers
    room = new_room()
    cookies = {name: server.signup(name) for name, server in (("alice", one), ("bob", two), ("carol", one))}
    room = create_room(one.base_url, cookies["alice"], room)
    alice = await connect(one, cookies["alice"])
    bob = await connect(two, cookies["bob"])
    carol = await connect(one, cookies["carol"])  # only listens
    clients = [alice, bob, carol]
    try:
        for client in clients:
            await client.join(room)
        stop = asyncio.Event()
        senders = [
            asyncio.create_task(chat_until_stopped(alice, room, "a", stop)),
            asyncio.create_task(chat_until_stopped(bob, room, "b", stop)),
        ]
        await asyncio.sleep(0.5)
        if fault == "restart":
            before = redis_server.run_id()
            redis_server.restart()  # every key and group membership is gone
            assert redis_server.run_id() != before
        else:
            redis_server.pause()  # SIGSTOP: connections stay open, nothing answers
            await asyncio.sleep(1.5)
            redis_server.resume()
        await asyncio.sleep(1.0)
        stop.set()
        acked = sorted(seq for sent in await asyncio.gather(*senders) for seq in sent)
        assert len(acked) > 10, "too little traffic to say anything"

        # Every socket receives again: a message sent now reaches each one, live or after a
        # resume, and every acknowledged message is there, once, in order.
        for client in clients:
            await resume_if_closed(client)
        final = await alice.send_message(room, "after the restart")
        assert final["type"] == "ack", final
        for client in clients:
            log = await client.wait_for_seq(room, final["seq"], wait=timeout(15))
            assert set(acked) <= set(log.seqs)
            assert log.seqs == list(range(1, final["seq"] + 1))
            assert log.duplicates == []
        # A socket still open is a socket that hears: one more message reaches every open one live.
        live = [c for c in clients if not c.closed]
        assert live, "every socket was closed; nothing shows that open sockets hear again"
        marks = [len(c.frames) for c in live]
        extra = await bob.send_message(room, "and once more")
        for client, mark in zip(live, marks, strict=True):
            await client.wait_for(lambda f: f.get("seq") == extra["seq"], after=mark, wait=timeout(10))
    finally:
        for client in clients:
            await client.close()


async def test_a_lost_last_message_reaches_the_socket_at_its_next_ping(
    daphne_factory: Callable[..., DaphneServer], redis_factory: Callable[[], RedisServer], tmp_path: Path
) -> None:
    """A broadcast lost with no later message to reveal the gap is delivered when the client pings."""
    redis_server = redis_factory()
    cluster = start_cluster(daphne_factory, tmp_path, REDIS_URL=redis_server.url, CHANNEL_LAYER="pubsub")
    one, two = cluster.servers
    alice, bob = one.signup("alice"), two.signup("bob")
    room = new_room()
    room = create_room(one.base_url, alice, room)
    a, b = await connect(one, alice), await connect(two, bob)
    try:
        await a.join(room)
        await b.join(room)
        first = await a.send_message(room, "first")
        await b.wait_for_seq(room, first["seq"])
        # The broadcast of the next message fails after the store has it (Redis refuses
        # PUBLISH): stored and acknowledged, but no later message will reveal the gap.
        # Redis itself stays up with the same run_id, so the watchdog sees nothing wrong.
        with redis.Redis.from_url(redis_server.url, socket_timeout=5) as admin:
            admin.acl_setuser("default", enabled=True, nopass=True, commands=["-publish"], reset=False)
            try:
                lost = await a.send_message(room, "the last word")
                # The ack does not wait for the publish (issue 24): keep PUBLISH refused
                # until the publisher has tried and failed.
                deadline = time.monotonic() + timeout(10)
                while "broadcast failed" not in one.log() and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
            finally:
                admin.acl_setuser("default", enabled=True, nopass=True, commands=["+publish"], reset=False)
        assert lost["type"] == "ack"
        await asyncio.sleep(1.0)
        assert b.room(room).last_seq == first["seq"], "the broadcast was not lost: the test proves nothing"
        # pong comes first, from memory; the tail check against the store follows it.
        await b.ping()
        log = await b.wait_for_seq(room, lost["seq"], wait=timeout(5))
        assert log.seqs == [first["seq"], lost["seq"]]
    finally:
        await a.close()
        await b.close()


async def test_connection_rows_name_their_process_and_are_kept_alive_by_heartbeats(
    shared_cluster: Cluster,
) -> None:
    """Each open socket's row names its daphne instance, and its ttl (3 s here) moves forward while it is open."""
    one, two = shared_cluster.servers
    alice, bob = new_user("alice"), new_user("bob")
    a = await connect(one, one.signup(alice))
    b = await connect(two, two.signup(bob))
    try:
        await a.ping()  # answered once connect() has written the row
        await b.ping()
        rows = shared_cluster.live_rows(alice, bob)
        assert sorted((r[1], r[3]) for r in rows) == [(alice, "shared-0"), (bob, "shared-1")]
        first_ttl = {r[0]: r[2] for r in rows}
        deadline = time.monotonic() + timeout(10)
        while time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            rows = shared_cluster.live_rows(alice, bob)
            if len(rows) == 2 and all(r[2] >= first_ttl[r[0]] + 2 for r in rows):
                break
        else:
            pytest.fail(f"ttl did not move forward: first {first_ttl}, now {rows}")
        await a.ping()
        await b.ping()
    finally:
        await a.close()
        await b.close()


async def test_a_closed_socket_removes_its_own_row_and_no_other(shared_cluster: Cluster) -> None:
    """When one user's socket goes away, exactly that connection's row goes; the others stay live."""
    one, two = shared_cluster.servers
    names = new_user("alice"), new_user("bob")
    alice, bob = one.signup(names[0]), two.signup(names[1])
    room = new_room()
    room = create_room(one.base_url, alice, room)
    a, b = await connect(one, alice), await connect(two, bob)
    try:
        await a.join(room)
        await b.join(room)
        before = shared_cluster.live_rows(*names)
        assert len(before) == 2
        await b.send_message(room, "bye")
        b.ws.transport.abort()  # the peer vanishes: no close frame
        deadline = time.monotonic() + timeout(10)
        while len(shared_cluster.live_rows(*names)) != 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        after = shared_cluster.live_rows(*names)
        assert [r[0] for r in after] == [r[0] for r in before if r[1] == names[0]]
        await a.ping()  # the sender's socket is untouched
    finally:
        await a.close()
        await b.close()


async def test_a_restarted_process_sweeps_the_rows_of_its_previous_life(
    daphne_factory: Callable[..., DaphneServer], redis_url: str, tmp_path: Path
) -> None:
    """A daphne killed without cleanup leaves live rows; back with the same instance id, it deletes them."""
    cluster = start_cluster(daphne_factory, tmp_path, count=1, REDIS_URL=redis_url)
    (server,) = cluster.servers
    cookie = server.signup("alice")
    clients = [await connect(server, cookie) for _ in range(2)]
    for client in clients:
        await client.ping()  # answered only once its connection row is written
    old = {r[0] for r in cluster.live_rows()}
    assert len(old) == 2
    server.kill()
    for client in clients:
        await client.wait_closed()
    assert {r[0] for r in cluster.live_rows()} == old, "rows of a killed process stay until swept or expired"
    server.start()
    fresh = await connect(server, cookie)
    try:
        await fresh.ping()
        rows = cluster.live_rows()
        assert len(rows) == 1
        assert rows[0][0] not in old and rows[0][3] == "daphne-0"
    finally:
        await fresh.close()


async def test_a_live_process_sweeps_the_rows_of_one_that_was_killed(
    daphne_factory: Callable[..., DaphneServer], redis_url: str, tmp_path: Path
) -> None:
    """Rows carry a long ttl (an hour here) and are not what makes a dead process's sockets stop
    counting: once the killed process's beat has expired (3 s here), the other process's next
    heartbeat deletes its rows, and only its rows (issue 22.4)."""
    cluster = start_cluster(
        daphne_factory,
        tmp_path,
        REDIS_URL=redis_url,
        CHAT_CONNECTION_TTL_SECONDS="3600",
        CHAT_INSTANCE_TTL_SECONDS="3",
        CHAT_CONNECTION_HEARTBEAT_SECONDS="0.5",
    )
    one, two = cluster.servers
    alice, bob = new_user("alice"), new_user("bob")
    cookie = one.signup(alice)
    doomed = [await connect(one, cookie) for _ in range(2)]
    survivor = await connect(two, two.signup(bob))
    try:
        for client in [*doomed, survivor]:
            await client.ping()  # answered once its connection row is written
        assert len(cluster.live_rows(alice)) == 2
        one.kill()
        for client in doomed:
            await client.wait_closed()
        deadline = time.monotonic() + timeout(30)
        while cluster.live_rows(alice) and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
        assert cluster.live_rows(alice) == [], "the killed process's rows were not swept"
        assert [r[3] for r in cluster.live_rows(bob)] == ["daphne-1"]
        await survivor.ping()
    finally:
        await survivor.close()


async def test_processes_find_redis_through_sentinel(
    daphne_factory: Callable[..., DaphneServer], redis_sentinel: SentinelServer, tmp_path: Path
) -> None:
    """With REDIS_SENTINELS and REDIS_SENTINEL_MASTER instead of REDIS_URL, two processes still chat live."""
    cluster = start_cluster(
        daphne_factory,
        tmp_path,
        REDIS_SENTINELS=redis_sentinel.address,
        REDIS_SENTINEL_MASTER=redis_sentinel.master_name,
    )
    one, two = cluster.servers
    alice, bob = one.signup("alice"), two.signup("bob")
    room = new_room()
    room = create_room(one.base_url, alice, room)
    a, b = await connect(one, alice), await connect(two, bob)
    try:
        await a.join(room)
        await b.join(room)
        ack = await a.send_message(room, "via sentinel")
        # Live, not repaired: nothing else is sent, and bob never pings.
        await b.wait_for_seq(room, ack["seq"])
        assert b.room(room).texts == ["via sentinel"]
    finally:
        await a.close()
        await b.close()
