"""Every wait on the store is bounded, and the heartbeat never waits for the store (issue 24).

A writer that holds the store's lock and never lets go (a process frozen mid-transaction) is
played by the test itself: a second SQLite connection holding the write lock, or a
PostgreSQL session holding the room's row lock. The daphne process under test must answer
its senders with a retryable `storage_unavailable` (with `retryAfter`) within the bound,
keep answering pings at once, and store the retried message exactly once afterwards.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from tests.e2e.client import ChatClient, create_room, new_client_message_id, page_csrf_token, timeout
from tests.fixtures.postgres import postgres_url
from tests.fixtures.servers import ROOT, DaphneServer, base_env

__all__ = ["postgres_url"]

pytestmark = pytest.mark.timeout(120)

# The production default (chatsite.settings.DATABASE_LOCK_TIMEOUT), well inside a client's
# patience: its pong timeout is 10 s and its ack timeout 15 s (static/chat/chat.js).
LOCK_BOUND = 3.0
PONG_TIMEOUT = 10.0
# Slack for a busy machine: thread hand-offs, a commit, the frames' round trip.
SLACK = 3.0


@pytest.fixture
def sqlite_lock(tmp_path: Path) -> Iterator[Callable[[], sqlite3.Connection]]:
    """Take the server's SQLite write lock, as a writer frozen mid-transaction holds it."""
    held: list[sqlite3.Connection] = []

    def hold() -> sqlite3.Connection:
        conn = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None, timeout=10)
        conn.execute("BEGIN IMMEDIATE")
        held.append(conn)
        return conn

    yield hold
    for conn in held:
        conn.close()


async def _room_with(server: DaphneServer, *names: str) -> tuple[str, list[ChatClient]]:
    cookies = [server.signup(name) for name in names]
    room = f"waits-{names[0]}"
    room = create_room(server.base_url, cookies[0], room)
    clients = [await ChatClient.connect(server.ws_url, cookie=c, origin=server.origin) for c in cookies]
    for client in clients:
        await client.join(room)
    return room, clients


async def _refused_within_bound(client: ChatClient, room: str, cmid: str) -> float:
    started = time.monotonic()
    answer = await client.send_message(room, "while locked", client_message_id=cmid, wait=timeout(40))
    took = time.monotonic() - started
    assert answer["type"] == "error", answer
    assert answer["code"] == "storage_unavailable" and answer["retryAfter"] > 0, answer
    assert answer["clientMessageId"] == cmid
    assert took < LOCK_BOUND + SLACK, f"the store wait was not bounded: {took:.1f} s"
    return took


async def test_a_held_sqlite_write_lock_is_answered_with_storage_unavailable_within_the_bound(
    daphne_factory: Callable[..., DaphneServer], tmp_path: Path, sqlite_lock: Callable[[], sqlite3.Connection]
) -> None:
    """SQLite: a send behind a held write lock gets storage_unavailable within the bound; its retry stores once."""
    server = daphne_factory(shared_dir=tmp_path)
    room, (alice, bob) = await _room_with(server, "alice", "bob")
    try:
        lock = sqlite_lock()
        cmid = new_client_message_id()
        took = await _refused_within_bound(alice, room, cmid)
        lock.rollback()
        again = await alice.send_message(room, "while locked", client_message_id=cmid)
        assert again["type"] == "ack" and again["seq"] == 1, again
        log = await bob.wait_for_seq(room, 1)
        assert log.texts == ["while locked"]
        print(f"\nobserved SQLite write lock held: storage_unavailable after {took:.2f} s; retry acked seq 1")
    finally:
        for client in (alice, bob):
            await client.close()


async def test_pong_arrives_at_once_while_the_store_is_stalled(
    daphne_factory: Callable[..., DaphneServer], tmp_path: Path, sqlite_lock: Callable[[], sqlite3.Connection]
) -> None:
    """While a send waits on a held store lock, another socket's ping is answered at once."""
    server = daphne_factory(shared_dir=tmp_path)
    room, (alice, bob) = await _room_with(server, "alice", "bob")
    try:
        await asyncio.sleep(1.2)  # past the process's cached room seq: the tail check reads the store
        sqlite_lock()
        stuck = asyncio.create_task(alice.send_message(room, "stuck", wait=timeout(40)))
        await asyncio.sleep(0.3)  # the send holds the process's database thread, waiting for the lock
        started = time.monotonic()
        await bob.ping()
        took = time.monotonic() - started
        assert not stuck.done(), "the send did not wait for the lock: nothing was stalled"
        assert took < 1.0, f"pong waited for the store: {took:.2f} s"
        answer = await stuck
        assert answer["code"] == "storage_unavailable", answer
        print(f"\nobserved pong during a store stall: {took * 1000:.0f} ms")
    finally:
        for client in (alice, bob):
            await client.close()


def _hold_room_row(url: str, room: str) -> psycopg.Connection[tuple[object, ...]]:
    conn = psycopg.connect(url, connect_timeout=3)
    conn.execute("SELECT 1 FROM chat_room WHERE room_id = %s FOR UPDATE", [room])
    return conn


async def test_a_held_postgresql_row_lock_is_answered_with_storage_unavailable_within_the_bound(
    daphne_factory: Callable[..., DaphneServer], postgres_url: str, tmp_path: Path
) -> None:
    """PostgreSQL: a send behind a held room row lock gets storage_unavailable in the bound; its retry stores once."""
    server = daphne_factory(shared_dir=tmp_path, DATABASE_URL=postgres_url, DATABASE_IDLE_TRANSACTION_TIMEOUT="60")
    room, (alice, bob) = await _room_with(server, "pg-alice", "pg-bob")
    holder = await asyncio.to_thread(_hold_room_row, postgres_url, room)
    try:
        cmid = new_client_message_id()
        took = await _refused_within_bound(alice, room, cmid)
        await asyncio.to_thread(holder.rollback)
        again = await alice.send_message(room, "while locked", client_message_id=cmid)
        assert again["type"] == "ack" and again["seq"] == 1, again
        log = await bob.wait_for_seq(room, 1)
        assert log.texts == ["while locked"]
        print(f"\nobserved PostgreSQL row lock held: storage_unavailable after {took:.2f} s; retry acked seq 1")
    finally:
        await asyncio.to_thread(holder.close)
        for client in (alice, bob):
            await client.close()


# A Django process with the server's settings: it takes the room's row lock in a transaction
# and then stops (SIGSTOP) while holding it, as a daphne process frozen mid-send would.
FROZEN_WRITER = """
import sys, time
from django.db import transaction
from chat.models import Room
with transaction.atomic():
    Room.objects.select_for_update().get(room_id=sys.argv[-1])
    print("locked", flush=True)
    time.sleep(120)
"""


async def test_a_frozen_postgresql_writer_is_ended_by_the_server_and_writers_go_on(
    daphne_factory: Callable[..., DaphneServer], postgres_url: str, tmp_path: Path
) -> None:
    """PostgreSQL: a writer frozen holding a room's row lock is ended after the idle bound; sends go on."""
    env = {"DATABASE_URL": postgres_url, "DATABASE_IDLE_TRANSACTION_TIMEOUT": "2"}
    server = daphne_factory(shared_dir=tmp_path, **env)
    room, (alice, bob) = await _room_with(server, "pg-carol", "pg-dave")
    frozen = subprocess.Popen(
        [sys.executable, "-c", "import sys, django; django.setup(); exec(sys.stdin.read())", room],
        cwd=ROOT,
        env=base_env(tmp_path, **env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert frozen.stdin is not None and frozen.stdout is not None
        frozen.stdin.write(("import sys\n" + FROZEN_WRITER).encode())
        frozen.stdin.close()
        line = await asyncio.to_thread(frozen.stdout.readline)
        assert line.strip() == b"locked", line
        frozen.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        acked: dict[str, object] = {}
        refused = 0
        while time.monotonic() - started < timeout(20) and not acked:
            answer = await alice.send_message(room, "after the freeze", wait=timeout(20))
            if answer["type"] == "ack":
                acked = answer
            else:
                assert answer["code"] == "storage_unavailable", answer
                refused += 1
                await asyncio.sleep(float(answer["retryAfter"]))
        took = time.monotonic() - started
        assert acked, "writers stayed stalled behind the frozen transaction"
        assert took < 2.0 + LOCK_BOUND + SLACK, took
        log = await bob.wait_for_seq(room, int(str(acked["seq"])))
        assert log.texts == ["after the freeze"] * len(log.texts) and log.seqs == list(range(1, len(log.seqs) + 1))
        print(f"\nobserved frozen PostgreSQL writer: {refused} storage_unavailable, first ack after {took:.2f} s")
    finally:
        frozen.send_signal(signal.SIGCONT)
        frozen.kill()
        frozen.wait(timeout=10)
        for client in (alice, bob):
            await client.close()


def _post_and_hang_up(server: DaphneServer, cookie: str, path: str, body: bytes) -> None:
    """POST `body` as the signed-in page would (its CSRF token), then close the connection
    without reading the answer: a browser tab closed while its request waits."""
    token = page_csrf_token(server.base_url, cookie)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nCookie: {cookie}\r\n"
        f"Content-Type: application/json\r\nX-CSRFToken: {token}\r\nReferer: {server.base_url}/\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout(10)) as conn:
        conn.sendall(head.encode() + body)
        time.sleep(1.0)  # the page and the POST take milliseconds; the POST now waits on the lock


async def _logged(server: DaphneServer, text: str) -> None:
    """Wait, a bounded time, until the server's log says `text`."""
    deadline = time.monotonic() + timeout(30)
    while text not in server.log():
        assert time.monotonic() < deadline, f"the log never said {text!r}:\n" + server.log()[-3000:]
        await asyncio.sleep(0.1)


async def test_a_request_left_waiting_on_the_store_at_sigterm_does_not_keep_the_process_alive(
    daphne_factory: Callable[..., DaphneServer], tmp_path: Path, sqlite_lock: Callable[[], sqlite3.Connection]
) -> None:
    """A release stops a process while an HTTP request, whose client has gone, waits on the
    store. Once the wait is over the process must end and run its exit handlers (the
    analytics batch flushes there), not sit until the supervisor's SIGKILL (ECS: 30 s). It
    sat: daphne cancelled the request again once its client had been gone for the
    application close timeout, Twisted stopped the event loop, and the request's thread,
    in the middleware chain, then waited for that loop forever (chatsite/ops/inflight.py)."""
    server = daphne_factory(
        shared_dir=tmp_path,
        daphne_args=("--application-close-timeout", "1"),
        DATABASE_LOCK_TIMEOUT="30",
        CHAT_STOP_DRAIN_SECONDS="0.5",
    )
    cookie = server.signup("alice")
    assert server.proc is not None
    lock = sqlite_lock()
    await asyncio.to_thread(_post_and_hang_up, server, cookie, "/api/rooms", b'{"name": "made-at-the-stop"}')
    server.proc.send_signal(signal.SIGTERM)
    # daphne cancels the request at once, and again once its client has been gone for the
    # application close timeout (1 s here), while the request still waits: that second
    # cancel ended the request's task without its thread.
    await _logged(server, "took too long to shut down and was killed")
    # Without the stop's wait the loop stops within moments of that cancel; with it, it runs
    # on (up to CHAT_STOP_REQUEST_SECONDS, 10 s) until the request's thread is done.
    await asyncio.sleep(2.0)
    lock.rollback()  # the wait ends: the request's thread finishes
    try:
        code = await asyncio.to_thread(server.proc.wait, timeout(10))
    except subprocess.TimeoutExpired:
        pytest.fail("the process did not exit once its last request's store wait was over:\n" + server.log()[-3000:])
    assert code == 0, server.log()[-3000:]


async def test_past_the_bound_a_stop_abandons_the_request_and_still_runs_its_exit_handlers(
    daphne_factory: Callable[..., DaphneServer], tmp_path: Path, sqlite_lock: Callable[[], sqlite3.Connection]
) -> None:
    """The same stop, with the request still waiting past CHAT_STOP_REQUEST_SECONDS: the process
    gives it up, runs its exit handlers (here the analytics batch writes the one message it
    counted) and exits, instead of joining a thread that can never end."""
    server = daphne_factory(
        shared_dir=tmp_path,
        daphne_args=("--application-close-timeout", "1"),
        DATABASE_LOCK_TIMEOUT="30",
        CHAT_STOP_DRAIN_SECONDS="0.5",
        CHAT_STOP_REQUEST_SECONDS="1",
        ANALYTICS_FLUSH_SECONDS="300",  # the message is counted at exit or not at all
    )
    room, (alice,) = await _room_with(server, "alice")
    sent = await alice.send_message(room, "counted at exit", client_message_id=new_client_message_id())
    assert sent["type"] == "ack", sent
    cookie = server.signup("bob")
    assert server.proc is not None
    lock = sqlite_lock()
    await asyncio.to_thread(_post_and_hang_up, server, cookie, "/api/rooms", b'{"name": "never-made"}')
    server.proc.send_signal(signal.SIGTERM)
    await _logged(server, "exiting with 1 HTTP requests abandoned")  # the loop has stopped
    lock.rollback()  # the exit handlers' write can go through now; the abandoned thread stays stuck
    try:
        code = await asyncio.to_thread(server.proc.wait, timeout(15))
    except subprocess.TimeoutExpired:
        pytest.fail("the process did not exit past the bound:\n" + server.log()[-3000:])
    finally:
        await alice.close()
    assert code == 0, server.log()[-3000:]
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        (counted,) = db.execute("SELECT COALESCE(SUM(messages), 0) FROM analytics_minutecounter").fetchone()
    assert counted == 1, "the analytics batch was not written at exit"
