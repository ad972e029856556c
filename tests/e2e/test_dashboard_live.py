"""The dashboard's "now" tiles (open sockets, users online) against real daphne processes.

- Two processes sharing Redis and one database: the figure is every process's sockets, not
  the serving process's, and it drops as sockets close on either (seen in Chromium).
- A process stopped with SIGTERM and started again: the sockets of its previous life no
  longer count, even those whose client never answered the close frame.
- A process killed and started again with its CHAT_INSTANCE_ID: its previous life's rows go
  when it starts, before any socket connects.

On SQLite and on PostgreSQL (the local storage backend keeps connection rows in Django's database).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.browser.conftest import NewUser, browser, cookies_for, new_user, skip_reason  # noqa: F401 - fixtures
from tests.e2e.client import ChatClient, timeout
from tests.fixtures import warm
from tests.fixtures.servers import DEMO_PASSWORD, ROOT, DaphneServer, base_env

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(240)]
_reason = skip_reason()
if _reason is None:
    from playwright.async_api import expect


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path, migrated_db: Path) -> dict[str, str]:
    """The environment naming the test's database: a migrated SQLite file in tmp_path (the processes'
    shared_dir), or the module's PostgreSQL database."""
    if request.param == "sqlite":
        shutil.copy(migrated_db, tmp_path / "db.sqlite3")
        return {}
    return {"DATABASE_URL": request.getfixturevalue("postgres_url")}


def make_root(data_dir: Path, env: dict[str, str], username: str) -> None:
    warm.run(
        [sys.executable, "manage.py", "createsuperuser", "--noinput", "--username", username, "--email", "r@x.test"],
        cwd=ROOT,
        env=base_env(data_dir, DJANGO_SUPERUSER_PASSWORD=DEMO_PASSWORD, **env),
        check=True,
        capture_output=True,
    )


def live(server: DaphneServer, cookie: str) -> tuple[int, int]:
    """(open sockets, users online) as the dashboard's live tiles poll them."""
    request = urllib.request.Request(f"{server.base_url}/admin/analytics/live/", headers={"Cookie": cookie})
    with urllib.request.urlopen(request, timeout=10) as response:
        figures = json.loads(response.read())
    return figures["sockets"], figures["usersOnline"]


async def live_becomes(server: DaphneServer, cookie: str, expected: tuple[int, int]) -> None:
    """Wait (bounded) until the live figures are `expected`; fail with the last reading."""
    seen: tuple[int, int] | None = None
    async with asyncio.timeout(timeout(20)):
        while (seen := await asyncio.to_thread(live, server, cookie)) != expected:
            await asyncio.sleep(0.1)
    assert seen == expected


class SilentClient:
    """A WebSocket client that completes the handshake and then never reads or answers again
    (a phone gone into a tunnel): the server's close frame waits in its receive buffer."""

    def __init__(self, server: DaphneServer, cookie: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        request = (
            "GET /ws/ HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: {server.origin}\r\nCookie: {cookie}\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            assert chunk, "the server closed the handshake"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head[:200]

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("instance_id", ["", "stable-id"], ids=["random-instance-id", "stable-instance-id"])
async def test_sockets_of_a_previous_life_do_not_count_after_a_sigterm_restart(
    daphne_factory: Callable[..., DaphneServer],
    database: dict[str, str],
    tmp_path: Path,
    instance_id: str,
) -> None:
    """Two sockets that answer the 1001 and two that never do: after SIGTERM and a start, the live figure is 0 before
    any socket connects (whatever CHAT_INSTANCE_ID), then exactly the one new socket."""
    root = f"root-{tmp_path.name[-12:]}"
    make_root(tmp_path, database, root)
    env = {**database, **({"CHAT_INSTANCE_ID": f"{instance_id}-{tmp_path.name[-12:]}"} if instance_id else {})}
    server = daphne_factory(shared_dir=tmp_path, **env)
    admin = await asyncio.to_thread(server.login, root)
    before = await asyncio.to_thread(live, server, admin)  # the module's PostgreSQL database is shared
    names = [f"u{n}-{tmp_path.name[-12:]}" for n in range(4)]
    cookies = [await asyncio.to_thread(server.signup, name) for name in names]
    answering = [await ChatClient.connect(server.ws_url, cookie=c, origin=server.origin) for c in cookies[:2]]
    silent = [await asyncio.to_thread(SilentClient, server, c) for c in cookies[2:]]
    try:
        await live_becomes(server, admin, (before[0] + 4, before[1] + 4))
        await asyncio.to_thread(server.stop)  # SIGTERM; the answering clients' loop keeps running meanwhile
        for client in answering:
            assert await client.wait_closed(timeout(10)) == 1001
        await asyncio.to_thread(server.start)
        assert await asyncio.to_thread(live, server, admin) == before  # no socket of the old life counts
        again = await ChatClient.connect(server.ws_url, cookie=cookies[0], origin=server.origin)
        try:
            await live_becomes(server, admin, (before[0] + 1, before[1] + 1))
        finally:
            await again.close()
    finally:
        for client in answering:
            await client.close()
        for quiet in silent:
            quiet.close()


async def test_a_killed_process_started_again_sweeps_its_previous_life_before_any_socket(
    daphne_factory: Callable[..., DaphneServer],
    database: dict[str, str],
    tmp_path: Path,
) -> None:
    """SIGKILL leaves two sockets' rows behind; the process started again with the same
    CHAT_INSTANCE_ID takes them off at start, with no socket connecting (their ttl is 3 minutes)."""
    tag = tmp_path.name[-12:]
    root = f"root-{tag}"
    make_root(tmp_path, database, root)
    server = daphne_factory(shared_dir=tmp_path, CHAT_INSTANCE_ID=f"killed-{tag}", **database)
    admin = await asyncio.to_thread(server.login, root)
    before = await asyncio.to_thread(live, server, admin)  # the module's PostgreSQL database is shared
    cookies = [await asyncio.to_thread(server.signup, f"k{n}-{tag}") for n in range(2)]
    clients = [await ChatClient.connect(server.ws_url, cookie=c, origin=server.origin) for c in cookies]
    try:
        await live_becomes(server, admin, (before[0] + 2, before[1] + 2))
        await asyncio.to_thread(server.kill)  # no cleanup at all: the rows stay
        await asyncio.to_thread(server.start)
        await live_becomes(server, admin, before)
    finally:
        for client in clients:
            await client.close()


async def test_the_live_tiles_count_the_sockets_of_both_processes(
    daphne_factory: Callable[..., DaphneServer],
    database: dict[str, str],
    redis_url: str,
    tmp_path: Path,
    new_user: NewUser,  # noqa: F811 - the fixture imported above
) -> None:
    """Sockets open on two processes sharing Redis: the dashboard served by one shows all of them (5 sockets,
    3 users: one user on both processes), updates without a reload as sockets close on either, and the
    other process says the same."""
    tag = tmp_path.name[-12:]
    root = f"root-{tag}"
    make_root(tmp_path, database, root)
    a, b = (
        daphne_factory(shared_dir=tmp_path, REDIS_URL=redis_url, CHAT_INSTANCE_ID=f"dash-{tag}-{i}", **database)
        for i in range(2)
    )
    admin = await asyncio.to_thread(a.login, root)
    before = await asyncio.to_thread(live, a, admin)
    alice, bob, carol = [await asyncio.to_thread(a.signup, f"{n}-{tag}") for n in ("alice", "bob", "carol")]
    opened: dict[str, ChatClient] = {}
    for name, server, cookie in (
        ("alice-a1", a, alice),
        ("alice-a2", a, alice),
        ("carol-a", a, carol),
        ("alice-b", b, alice),
        ("bob-b", b, bob),
    ):
        opened[name] = await ChatClient.connect(server.ws_url, cookie=cookie, origin=server.origin)
    try:
        staff = await new_user(a, None, viewport_width=1366)
        await staff.context.add_cookies(cookies_for(a, admin))  # type: ignore[arg-type]
        page = staff.page
        await page.goto(f"{a.base_url}/admin/")
        sockets, users = page.locator("#live-sockets"), page.locator("#live-users")
        await expect(sockets).to_have_text(str(before[0] + 5), timeout=timeout(20) * 1000)
        await expect(users).to_have_text(str(before[1] + 3))
        assert await asyncio.to_thread(live, b, admin) == (before[0] + 5, before[1] + 3)
        await page.screenshot(path=str(ROOT / "var" / "analytics-live-two-processes.png"))

        await opened.pop("alice-b").close()  # on the other process; alice is still on this one
        await opened.pop("carol-a").close()
        await expect(sockets).to_have_text(str(before[0] + 3), timeout=timeout(20) * 1000)  # polled, no reload
        await expect(users).to_have_text(str(before[1] + 2))
        await opened.pop("bob-b").close()
        await expect(sockets).to_have_text(str(before[0] + 2), timeout=timeout(20) * 1000)
        await expect(users).to_have_text(str(before[1] + 1))
        assert await asyncio.to_thread(live, b, admin) == (before[0] + 2, before[1] + 1)
        assert staff.page_errors == []
    finally:
        for client in opened.values():
            await client.close()
