"""Tokens on the chat socket, through the real ASGI routing (channels' WebsocketCommunicator).

Built-in issuer tokens on the in-memory channel layer and the test database: the first
`authenticate` frame, its deadline, handshake tokens, expiry on an open socket and in-band
refresh. The same paths with Cognito's tokens and a real daphne are in tests/e2e/.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client
from pytest_django.fixtures import Settings

from accounts import issuer
from chatsite.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

ORIGIN = (b"origin", b"http://127.0.0.1")
HOST = (b"host", b"127.0.0.1")  # the site itself: chat.origins
WAIT = 5.0
Open = Callable[..., Awaitable[WebsocketCommunicator]]


@pytest.fixture(scope="module")
def shared_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("issuer") / "key.pem"
    issuer.load_or_create_key(path)
    return path


@pytest.fixture(autouse=True)
def auth_settings(shared_key_file: Path, settings: Settings) -> None:
    settings.AUTH_SIGNING_KEY_FILE = shared_key_file
    settings.CHAT_AUTH_TIMEOUT = 10.0
    settings.AUTH_TOKEN_LEEWAY = 0


@pytest.fixture
async def open_socket() -> AsyncIterator[Open]:
    opened: list[WebsocketCommunicator] = []

    async def connect(
        path: str = "/ws/", *, cookie: str | None = None, subprotocols: list[str] | None = None
    ) -> WebsocketCommunicator:
        headers = [ORIGIN, HOST] + ([(b"cookie", cookie.encode())] if cookie else [])
        comm = WebsocketCommunicator(application, path, headers=headers, subprotocols=subprotocols)
        opened.append(comm)
        connected, _ = await comm.connect(timeout=WAIT)
        assert connected
        return comm

    yield connect
    for comm in opened:
        await comm.disconnect(timeout=WAIT)
    layer = get_channel_layer()
    assert layer is not None
    await layer.flush()  # type: ignore[attr-defined]


def make_user(username: str) -> Any:
    return get_user_model().objects.create_user(username=username)


def token_for(user: Any, *, lifetime: int = 3600, exp: int | None = None, use: str = "access") -> str:
    """A built-in token; `exp` pins its expiry to a wall-clock second."""
    now = int(time.time())
    id_token, access_token = issuer.mint(
        issuer.signing_key(),
        subject=issuer.subject_for(user),
        username=user.get_username(),
        groups=[],
        email=None,
        lifetime=(exp - now) if exp is not None else lifetime,
        now=now,
    )
    return access_token if use == "access" else id_token


async def user_and_token(username: str, **kwargs: Any) -> tuple[Any, str]:
    user = await sync_to_async(make_user)(username)
    return user, await sync_to_async(token_for)(user, **kwargs)


def session_cookie(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


async def closed_with(comm: WebsocketCommunicator, *, timeout: float = WAIT) -> int:
    """Skip frames until the server closes; return the close code."""
    deadline = time.monotonic() + timeout
    while True:
        output = await comm.receive_output(timeout=max(0.01, deadline - time.monotonic()))
        if output["type"] == "websocket.close":
            return int(output["code"])


# --- the first frame -------------------------------------------------------------------------


async def test_authenticate_frame_signs_the_socket_in(open_socket: Open) -> None:
    """A socket without a cookie that sends a valid token first is told who it is and can chat."""
    user, token = await user_and_token("alice")
    comm = await open_socket()
    await comm.send_json_to({"action": "authenticate", "token": token})
    frame = await comm.receive_json_from(timeout=WAIT)
    exp = datetime.fromtimestamp(int(time.time()) + 3600, UTC)
    assert frame["type"] == "authenticated"
    assert (frame["userId"], frame["username"]) == (str(user.pk), "alice")
    assert abs(datetime.fromisoformat(frame["expiresAt"].replace("Z", "+00:00")) - exp).total_seconds() <= 2
    await comm.send_json_to({"action": "joinRoom", "roomId": "general"})
    assert (await comm.receive_json_from(timeout=WAIT))["type"] == "joined"


async def test_id_tokens_authenticate_too(open_socket: Open) -> None:
    """By default an ID token opens a socket as well as an access token."""
    _, token = await user_and_token("alice", use="id")
    comm = await open_socket()
    await comm.send_json_to({"action": "authenticate", "token": token})
    assert (await comm.receive_json_from(timeout=WAIT))["username"] == "alice"


async def test_no_authenticate_frame_in_time_closes_4401(
    open_socket: Open, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A socket that stays silent past CHAT_AUTH_TIMEOUT is closed with 4401, with a logged reason."""
    settings.CHAT_AUTH_TIMEOUT = 0.3
    comm = await open_socket()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        assert await closed_with(comm) == 4401
    assert 0.25 <= time.monotonic() - started < 3
    assert "no authenticate frame within 0.3 s" in caplog.text


@pytest.mark.parametrize(
    "frame",
    [
        '{"action": "joinRoom", "roomId": "general"}',
        '{"action": "sendmessage", "data": "hi"}',
        "not json",
        '{"action": "authenticate"}',
        '{"action": "authenticate", "token": 42}',
    ],
    ids=["joinRoom", "legacy send", "invalid JSON", "no token", "numeric token"],
)
async def test_anything_but_a_token_first_closes_4401(open_socket: Open, frame: str) -> None:
    """Before authentication, any frame other than a well-formed `authenticate` closes with 4401."""
    comm = await open_socket()
    await comm.send_to(text_data=frame)
    assert await closed_with(comm) == 4401


async def test_bad_token_closes_4401_and_logs_why_without_the_token(
    open_socket: Open, caplog: pytest.LogCaptureFixture
) -> None:
    """A forged token closes the socket with 4401; the log names the reason and never the token."""
    _, token = await user_and_token("alice")
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    comm = await open_socket()
    with caplog.at_level(logging.WARNING):
        await comm.send_json_to({"action": "authenticate", "token": forged})
        assert await closed_with(comm) == 4401
    assert "via=websocket reason=bad_signature" in caplog.text
    assert forged[:30] not in caplog.text


async def test_deactivated_user_is_refused(open_socket: Open) -> None:
    """A sound token of a deactivated account closes the socket with 4401."""
    user, token = await user_and_token("mallory")
    await get_user_model().objects.filter(pk=user.pk).aupdate(is_active=False)
    comm = await open_socket()
    await comm.send_json_to({"action": "authenticate", "token": token})
    assert await closed_with(comm) == 4401


# --- tokens in the handshake -----------------------------------------------------------------


async def test_token_as_subprotocol_is_accepted_without_echoing_it(open_socket: Open) -> None:
    """A token offered next to `chatsite` in Sec-WebSocket-Protocol signs in; the answer is `chatsite`."""
    _, token = await user_and_token("alice")
    comm = WebsocketCommunicator(application, "/ws/", headers=[ORIGIN, HOST], subprotocols=["chatsite", token])
    connected, subprotocol = await comm.connect(timeout=WAIT)
    try:
        assert connected and subprotocol == "chatsite"
        assert (await comm.receive_json_from(timeout=WAIT))["type"] == "authenticated"
    finally:
        await comm.disconnect()


async def test_token_as_query_parameter_is_accepted(open_socket: Open) -> None:
    """?token= on the socket URL signs in, as API Gateway clients do."""
    _, token = await user_and_token("alice")
    comm = await open_socket(f"/ws/?token={token}")
    assert (await comm.receive_json_from(timeout=WAIT))["username"] == "alice"


async def test_bad_handshake_token_closes_4401(open_socket: Open) -> None:
    """A bad token in the handshake is refused at once; there is no second chance in-band."""
    comm = await open_socket("/ws/?token=abc.def.ghi")
    assert await closed_with(comm) == 4401


# --- expiry and refresh ----------------------------------------------------------------------


async def test_socket_is_closed_4401_when_its_token_expires(open_socket: Open) -> None:
    """An open socket whose token expires is closed with 4401 at the expiry."""
    exp = int(time.time()) + 2
    _, token = await user_and_token("alice", exp=exp)
    comm = await open_socket()
    await comm.send_json_to({"action": "authenticate", "token": token})
    assert (await comm.receive_json_from(timeout=WAIT))["type"] == "authenticated"
    assert await closed_with(comm, timeout=6) == 4401
    assert exp - 0.2 <= time.time() <= exp + 1.5


async def test_refresh_in_band_keeps_the_socket_and_its_rooms(open_socket: Open) -> None:
    """refreshToken before expiry keeps the socket open past the old expiry, still in its rooms."""
    alice = await sync_to_async(make_user)("alice")
    bob = await sync_to_async(make_user)("bob")
    comm = await open_socket()
    # The two-second token is minted last: on a busy machine the set-up above can take longer.
    first_exp = int(time.time()) + 2
    token = await sync_to_async(token_for)(alice, exp=first_exp)
    await comm.send_json_to({"action": "authenticate", "token": token})
    await comm.receive_json_from(timeout=WAIT)
    await comm.send_json_to({"action": "joinRoom", "roomId": "general"})
    assert (await comm.receive_json_from(timeout=WAIT))["type"] == "joined"

    second_exp = first_exp + 3
    fresh = await sync_to_async(token_for)(alice, exp=second_exp)
    await comm.send_json_to({"action": "refreshToken", "token": fresh})
    answer = await comm.receive_json_from(timeout=WAIT)
    assert answer["type"] == "authenticated" and answer["userId"] == str(alice.pk)
    assert answer["expiresAt"] == datetime.fromtimestamp(second_exp, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")

    await asyncio.sleep(max(0.0, first_exp + 0.5 - time.time()))
    other = await open_socket(cookie=await sync_to_async(session_cookie)(bob))
    await other.send_json_to({"action": "sendMessage", "roomId": "general", "message": "still there?"})
    got = await comm.receive_json_from(timeout=WAIT)
    assert (got["type"], got["message"], got["username"]) == ("message", "still there?", "bob")
    assert await closed_with(comm, timeout=6) == 4401  # at the new expiry
    assert time.time() >= second_exp - 0.2


async def test_refresh_with_a_bad_token_is_an_error_frame_and_changes_nothing(open_socket: Open) -> None:
    """A refused refresh answers invalid_token; the socket stays open on its current token."""
    _, token = await user_and_token("alice")
    comm = await open_socket()
    await comm.send_json_to({"action": "authenticate", "token": token})
    await comm.receive_json_from(timeout=WAIT)
    await comm.send_json_to({"action": "refreshToken", "token": "x.y.z"})
    error = await comm.receive_json_from(timeout=WAIT)
    assert (error["type"], error["code"], error["action"]) == ("error", "invalid_token", "refreshToken")
    assert "x.y.z" not in error["message"]
    await comm.send_json_to({"action": "ping"})
    assert (await comm.receive_json_from(timeout=WAIT))["type"] == "pong"


async def test_refresh_with_another_users_token_is_refused(open_socket: Open) -> None:
    """A socket cannot become someone else by refreshing with their token."""
    _, token = await user_and_token("alice")
    _, bobs = await user_and_token("bob")
    comm = await open_socket()
    await comm.send_json_to({"action": "authenticate", "token": token})
    await comm.receive_json_from(timeout=WAIT)
    await comm.send_json_to({"action": "refreshToken", "token": bobs})
    error = await comm.receive_json_from(timeout=WAIT)
    assert (error["code"], error["message"]) == ("invalid_token", "the token is for another user")


async def test_session_socket_accepts_its_users_token(open_socket: Open) -> None:
    """A page's socket (session cookie) may also present its user's token and is answered in kind."""
    alice, token = await user_and_token("alice")
    comm = await open_socket(cookie=await sync_to_async(session_cookie)(alice))
    await comm.send_json_to({"action": "authenticate", "token": token})
    frame = await comm.receive_json_from(timeout=WAIT)
    assert frame["type"] == "authenticated" and frame["expiresAt"] is not None
