# ruff: noqa: F811 - the fixture imported from test_consumer is used as an argument
"""The WebSocket entry (chat.entry): routing and cookies. Origins: test_consumer and the e2e suites."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from chat.entry import cookies_of, route_path
from chat.tests.test_consumer import cookie_for  # noqa: F401 - fixture
from chatsite.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]

ORIGIN = (b"origin", b"http://127.0.0.1")
HOST = (b"host", b"127.0.0.1")


@pytest.mark.parametrize("path", ["/admin/", "/", "/ws", "/ws/x/", "/api/auth/token"])
async def test_only_the_chat_path_speaks_websocket(path: str, cookie_for: Callable[[str], bytes]) -> None:
    """Any other path refuses the handshake (HTTP 403), even for a signed-in user with a valid origin."""
    cookie = await sync_to_async(cookie_for)("alice")
    socket = WebsocketCommunicator(application, path, headers=[ORIGIN, HOST, (b"cookie", cookie)])
    connected, _ = await socket.connect(timeout=5)
    assert connected is False
    await socket.disconnect()


async def test_the_session_cookie_signs_in_among_other_cookies(cookie_for: Callable[[str], bytes]) -> None:
    """The session cookie is found among others, in a second Cookie header too, and signs the socket in."""
    session = await sync_to_async(cookie_for)("alice")
    headers = [ORIGIN, HOST, (b"cookie", b"theme=dark; lang=en"), (b"cookie", session)]
    socket = WebsocketCommunicator(application, "/ws/", headers=headers)
    connected, _ = await socket.connect(timeout=5)
    assert connected is True
    await socket.send_json_to({"action": "joinRoom", "roomId": "general"})
    assert (await socket.receive_json_from(timeout=5))["type"] == "joined"
    await socket.disconnect()


def test_cookies_are_read_from_every_cookie_header() -> None:
    scope = {"headers": [(b"host", b"x"), (b"cookie", b"a=1; b=2"), (b"cookie", b"sessionid=abc")]}
    assert cookies_of(scope) == {"a": "1", "b": "2", "sessionid": "abc"}
    assert cookies_of({"headers": []}) == {}


def test_the_route_is_below_the_servers_root_path() -> None:
    assert route_path({"path": "/chat/ws/", "root_path": "/chat"}) == "/ws/"
    assert route_path({"path": "/ws/", "root_path": ""}) == "/ws/"
    assert route_path({"path": "/ws/", "root_path": "/chat"}) == "/ws/"


@pytest.mark.parametrize(
    "origin",
    [
        b"http://127.0.0.1:8001",
        b"https://127.0.0.1",
        b"http://127.0.0.1.evil.example",
        b"http://sub.localhost",
        b"null",
    ],
)
async def test_a_look_alike_origin_cannot_use_the_session_cookie(
    origin: bytes, cookie_for: Callable[[str], bytes]
) -> None:
    """Another port or scheme of the site, a look-alike host, a sub-domain or `null`: HTTP 403 at the handshake."""
    cookie = await sync_to_async(cookie_for)("alice")
    socket = WebsocketCommunicator(application, "/ws/", headers=[(b"origin", origin), HOST, (b"cookie", cookie)])
    connected, _ = await socket.connect(timeout=5)
    assert connected is False
    await socket.disconnect()


async def test_a_client_without_the_cookie_needs_no_origin() -> None:
    """No session cookie, no Origin (wscat, a bot): the socket opens and waits for an `authenticate` frame."""
    socket = WebsocketCommunicator(application, "/ws/", headers=[HOST])
    connected, _ = await socket.connect(timeout=5)
    assert connected is True
    await socket.send_json_to({"action": "ping"})  # not `authenticate`: refused as unauthenticated
    assert (await socket.receive_output(timeout=5))["code"] == 4401
    await socket.disconnect()


async def test_a_client_without_the_cookie_from_a_foreign_origin_is_refused() -> None:
    """A token client on a foreign page is refused all the same."""
    socket = WebsocketCommunicator(application, "/ws/", headers=[(b"origin", b"http://evil.example"), HOST])
    connected, _ = await socket.connect(timeout=5)
    assert connected is False
    await socket.disconnect()


async def test_an_origin_in_chat_allowed_origins_is_accepted_exactly(
    cookie_for: Callable[[str], bytes], settings: Any
) -> None:
    """CHAT_ALLOWED_ORIGINS admits its exact origins; the same host on another port stays out."""
    settings.CHAT_ALLOWED_ORIGINS = ["https://app.example"]
    cookie = await sync_to_async(cookie_for)("alice")
    for origin, expected in ((b"https://app.example", True), (b"https://app.example:8443", False)):
        socket = WebsocketCommunicator(application, "/ws/", headers=[(b"origin", origin), HOST, (b"cookie", cookie)])
        connected, _ = await socket.connect(timeout=5)
        assert connected is expected, origin
        await socket.disconnect()
