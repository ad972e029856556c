"""Access rules end to end on real daphne processes: exact origins at the handshake, and
revocation that reaches sockets already open on every process (docs/auth.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from tests.e2e.client import timeout
from tests.e2e.conftest import start_module_server
from tests.fixtures.servers import DaphneServer

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
