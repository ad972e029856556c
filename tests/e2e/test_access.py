"""Access rules end to end on real daphne processes: exact origins at the handshake, and
revocation that reaches sockets already open on every process (docs/auth.md)."""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from tests.e2e.client import ChatClient, timeout
from tests.e2e.conftest import start_module_server
from tests.e2e.test_moderation import dynamodb_tables
from tests.fixtures import warm
from tests.fixtures.aws import MotoServer
from tests.fixtures.servers import ROOT, DaphneServer, base_env

pytestmark = pytest.mark.timeout(120)

APP_ORIGIN = "https://app.example"


@pytest.fixture(scope="module")
def origin_server(tmp_path_factory: pytest.TempPathFactory, migrated_db: Path) -> Iterator[DaphneServer]:
    server = start_module_server(tmp_path_factory, migrated_db, CHAT_ALLOWED_ORIGINS=APP_ORIGIN)
    yield server
    server.stop()


async def handshake(server: DaphneServer, *, origin: str | None, cookie: str | None) -> int:
    """101 if the socket opened, else the HTTP status of the refusal."""
    headers = {"Cookie": cookie} if cookie else {}
    try:
        async with websockets.connect(
            server.ws_url,
            additional_headers=headers,
            origin=Origin(origin) if origin else None,
            open_timeout=timeout(10),
        ):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


async def test_the_session_cookie_opens_the_socket_only_from_an_exact_origin(origin_server: DaphneServer) -> None:
    """A real browser's handshake: the site's own origin and CHAT_ALLOWED_ORIGINS open; every look-alike gets 403."""
    cookie = origin_server.signup("origin-alice")
    port = origin_server.port
    assert await handshake(origin_server, origin=origin_server.origin, cookie=cookie) == 101
    assert await handshake(origin_server, origin=APP_ORIGIN, cookie=cookie) == 101
    for look_alike in (
        f"http://127.0.0.1:{port + 1}",
        f"https://127.0.0.1:{port}",
        f"http://localhost:{port}",
        f"http://127.0.0.1.evil.example:{port}",
        "https://sub.app.example",
        "http://app.example",
        "null",
        None,
    ):
        assert await handshake(origin_server, origin=look_alike, cookie=cookie) == 403, look_alike


async def test_a_token_client_needs_no_origin_but_a_foreign_one_is_refused(origin_server: DaphneServer) -> None:
    """No cookie: no Origin is fine (wscat); a foreign Origin is refused anyway."""
    assert await handshake(origin_server, origin=None, cookie=None) == 101
    assert await handshake(origin_server, origin="http://evil.example", cookie=None) == 403


# --- revocation across processes ---------------------------------------------------------------

REACH_SECONDS = 2.0  # the bound: every process closes the sockets within 2 s


@pytest.fixture(scope="module", params=["local", "dynamodb", "postgres"])
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, migrated_db: Path, redis_url: str
) -> Iterator[list[DaphneServer]]:
    """Two daphne processes on one Redis (pub/sub layer) and one database: SQLite with the ORM
    store; SQLite with the chat's store on a moto server's DynamoDB; PostgreSQL (sessions,
    accounts and the ORM store)."""
    shared_dir = tmp_path_factory.mktemp("access-cluster")
    shutil.copy(migrated_db, shared_dir / "db.sqlite3")
    store: dict[str, str] = {}
    if request.param == "dynamodb":
        moto: MotoServer = request.getfixturevalue("moto_server")
        store = {**moto.env, **dynamodb_tables(moto)}
    elif request.param == "postgres":
        store = {"DATABASE_URL": request.getfixturevalue("postgres_url")}
    servers: list[DaphneServer] = []
    try:
        for i in range(2):
            env = base_env(shared_dir, REDIS_URL=redis_url, CHAT_INSTANCE_ID=f"access-{i}", **store)
            servers.append(DaphneServer(shared_dir, env).start())
        yield servers
    finally:
        for server in servers:
            server.stop()


def manage(server: DaphneServer, code: str) -> None:
    """Run Python in `manage.py shell` against the cluster's database and Redis (as an operator would)."""
    warm.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=server.env,
        check=True,
        capture_output=True,
        timeout=timeout(60),
    )


def sign_out(server: DaphneServer, cookie: str) -> None:
    """POST the sign-out form as the browser holding `cookie` does (CSRF token from its cookie)."""
    csrf = dict(part.strip().split("=", 1) for part in cookie.split(";"))["csrftoken"]
    request = urllib.request.Request(
        server.base_url + "/accounts/logout/",
        data=b"",
        headers={"Cookie": cookie, "X-CSRFToken": csrf, "Referer": server.base_url + "/"},
    )

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    try:
        urllib.request.build_opener(NoRedirect).open(request, timeout=timeout(10))
    except urllib.error.HTTPError as error:
        assert error.code == 302, error.code


async def open_on(server: DaphneServer, cookie: str) -> ChatClient:
    client = await ChatClient.connect(server.ws_url, cookie=cookie, origin=server.origin)
    await client.ping()  # signed in, and in its user's group on that process
    return client


async def closes(clients: list[ChatClient], started: float) -> list[int | None]:
    codes = await asyncio.gather(*(client.wait_closed(timeout(10)) for client in clients))
    assert time.monotonic() - started < REACH_SECONDS + timeout(0.5), "the close took longer than 2 s"
    return list(codes)


async def test_signing_out_closes_that_sessions_sockets_on_every_process(cluster: list[DaphneServer]) -> None:
    """One browser signs out on process 1: its sockets on both processes close with 4401; another browser's stay."""
    one, two = cluster
    name = f"rev-{uuid.uuid4().hex[:8]}"
    laptop = await asyncio.to_thread(one.signup, name)
    phone = await asyncio.to_thread(two.login, name)
    on_laptop = [await open_on(one, laptop), await open_on(two, laptop)]
    on_phone = await open_on(two, phone)
    started = time.monotonic()
    await asyncio.to_thread(sign_out, one, laptop)
    assert await closes(on_laptop, started) == [4401, 4401]
    await on_phone.ping()
    await on_phone.close()


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ("u.set_password('another-Passw0rd-x'); u.save()", 4401),
        ("u.is_active = False; u.save()", 4403),
        ("u.delete()", 4403),
    ],
)
async def test_an_account_change_closes_every_socket_of_the_user_on_every_process(
    cluster: list[DaphneServer], change: str, code: int
) -> None:
    """A password change (4401), deactivation or deletion (4403) by a command closes the user's sockets everywhere."""
    one, two = cluster
    name = f"rev-{uuid.uuid4().hex[:8]}"
    cookie = await asyncio.to_thread(one.signup, name)
    bystander = await open_on(one, await asyncio.to_thread(one.signup, f"{name}-other"))
    sockets = [await open_on(one, cookie), await open_on(two, cookie)]
    script = (
        f"from django.contrib.auth import get_user_model; u = get_user_model().objects.get(username={name!r}); {change}"
    )
    await asyncio.to_thread(manage, one, script)
    started = time.monotonic()  # from the command's end: its start-up is not the server's doing
    assert await closes(sockets, started) == [code, code]
    await bystander.ping()
    await bystander.close()


async def test_a_moderator_demoted_by_a_command_leaves_private_rooms_on_every_process(
    cluster: list[DaphneServer],
) -> None:
    """Out of the moderator group: the private room they read as moderators is left on both processes (`left`)."""
    one, two = cluster
    name, room = f"mod-{uuid.uuid4().hex[:8]}", f"priv-{uuid.uuid4().hex[:8]}"
    cookie = await asyncio.to_thread(one.signup, name)
    setup = (
        "from django.conf import settings; from django.contrib.auth import get_user_model; "
        "from django.contrib.auth.models import Group; from chat import services; from chat.storage import get_store; "
        "import datetime; "
        f"u = get_user_model().objects.get(username={name!r}); "
        "u.groups.add(Group.objects.get_or_create(name=settings.AUTH_MODERATOR_GROUP)[0]); "
        f"services.room_create(room_id={room!r}, name='Private'); "
        f"get_store().update_room(room_id={room!r}, private=True, now=datetime.datetime.now(datetime.UTC), "
        "ttl_seconds=86400)"
    )
    await asyncio.to_thread(manage, one, setup)
    sockets = [await open_on(one, cookie), await open_on(two, cookie)]
    for socket in sockets:
        assert (await socket.join(room))["type"] == "joined"
    demote = (
        "from django.conf import settings; from django.contrib.auth import get_user_model; "
        f"u = get_user_model().objects.get(username={name!r}); "
        "u.groups.remove(*u.groups.filter(name=settings.AUTH_MODERATOR_GROUP))"
    )
    await asyncio.to_thread(manage, one, demote)
    started = time.monotonic()
    for socket in sockets:
        left = await socket.wait_for(lambda f: f["type"] == "left", wait=timeout(10))
        assert left == {"type": "left", "roomId": room, "reason": "removed"}
    assert time.monotonic() - started < REACH_SECONDS + timeout(0.5)
    for socket in sockets:
        await socket.close()
