"""The built-in issuer end to end, on the embedded default: a real daphne, the demo user, tokens.

POST /api/auth/token with the demo account gives Cognito-shaped tokens signed by the key
daphne created on first run; they verify against its /.well-known/jwks.json with the same
function that verifies Cognito's, and they open the chat socket. Tokens here live a few
seconds, so expiry and in-band refresh on an open socket are observed for real.
"""

from __future__ import annotations

import asyncio
import json
import stat
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from accounts.issuer import BUILTIN_CLIENT_ID, BUILTIN_ISSUER
from accounts.tokens import StaticKeySet, TokenPolicy, verify_token
from tests.e2e.conftest import start_module_server
from tests.fixtures import warm
from tests.fixtures.servers import ROOT, DaphneServer

pytestmark = pytest.mark.timeout(120)
WAIT = 10.0
DEMO_PASSWORD = "demo-Passw0rd-for-tests"
# Seconds: built-in tokens in this module expire fast, yet not before a busy machine (load 20)
# has signed in, connected and refreshed: at 6 s the refresh once came after the expiry.
LIFETIME = 10


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, migrated_db: Path) -> Iterator[DaphneServer]:
    daphne = start_module_server(
        tmp_path_factory,
        migrated_db,
        CHATSITE_DEMO_PASSWORD=DEMO_PASSWORD,
        AUTH_TOKEN_LIFETIME=str(LIFETIME),
        AUTH_TOKEN_LEEWAY="0",
        CHAT_AUTH_TIMEOUT="1",
    )
    warm.run(
        [sys.executable, "manage.py", "ensure_demo_users"], cwd=ROOT, env=daphne.env, check=True, capture_output=True
    )
    yield daphne
    daphne.stop()


def post(server: DaphneServer, path: str, body: Any) -> dict[str, Any]:
    request = urllib.request.Request(
        server.base_url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        return dict(json.load(response))


def sign_in(server: DaphneServer, username: str = "alice") -> dict[str, Any]:
    return post(server, "/api/auth/token", {"username": username, "password": DEMO_PASSWORD})


async def recv(ws: Any) -> dict[str, Any]:
    return dict(json.loads(await asyncio.wait_for(ws.recv(), WAIT)))


async def authenticated(server: DaphneServer, token: str) -> tuple[Any, dict[str, Any]]:
    ws = await websockets.connect(server.ws_url, origin=server.origin, open_timeout=WAIT)
    await ws.send(json.dumps({"action": "authenticate", "token": token}))
    frame = await recv(ws)
    assert frame["type"] == "authenticated", frame
    return ws, frame


async def close_code(ws: Any, *, timeout: float) -> int:
    """Read until the server closes the socket; its close code."""
    deadline = time.monotonic() + timeout
    try:
        while True:
            await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
    except ConnectionClosed:
        return int(ws.close_code)


def test_demo_user_gets_tokens_that_verify_against_the_published_jwks(server: DaphneServer) -> None:
    """The demo account's tokens verify against /.well-known/jwks.json under the built-in issuer's rules."""
    tokens = sign_in(server)
    assert {"IdToken", "AccessToken", "RefreshToken", "ExpiresIn", "TokenType"} == set(tokens)
    with urllib.request.urlopen(server.base_url + "/.well-known/jwks.json", timeout=WAIT) as response:
        keys = StaticKeySet(json.load(response))
    policy = TokenPolicy(issuer=BUILTIN_ISSUER, client_id=BUILTIN_CLIENT_ID)
    for kind in ("IdToken", "AccessToken"):
        verified = verify_token(tokens[kind], keys=keys, policy=policy, now=time.time())
        assert verified.username == "alice"


def test_signing_key_was_created_on_first_run_in_the_data_dir(server: DaphneServer) -> None:
    """daphne made its RSA key under its data directory, readable by its owner only, not in the repo."""
    sign_in(server)
    key = server.data_dir / "auth-signing-key.pem"
    assert key.exists() and stat.S_IMODE(key.stat().st_mode) == 0o600
    assert not key.resolve().is_relative_to(ROOT)


def test_wrong_password_gets_no_tokens(server: DaphneServer) -> None:
    """A wrong password is a 401 from the token endpoint."""
    with pytest.raises(urllib.error.HTTPError) as info:
        post(server, "/api/auth/token", {"username": "alice", "password": "wrong"})
    assert info.value.code == 401


async def test_demo_user_chats_with_a_token(server: DaphneServer) -> None:
    """Sign in through the API, authenticate the socket with the access token, and chat."""
    alice, bob = sign_in(server, "alice"), sign_in(server, "bob")
    a, a_frame = await authenticated(server, alice["AccessToken"])
    b, b_frame = await authenticated(server, bob["IdToken"])
    try:
        assert (a_frame["username"], b_frame["username"]) == ("alice", "bob")
        for ws in (a, b):
            await ws.send(json.dumps({"action": "joinRoom", "roomId": "general"}))
            assert (await recv(ws))["type"] == "joined"
        await a.send(
            json.dumps({"action": "sendMessage", "roomId": "general", "message": "hi bob", "clientMessageId": "t1"})
        )
        got = await recv(b)
        assert (got["type"], got["username"], got["userId"]) == ("message", "alice", a_frame["userId"])
    finally:
        await a.close()
        await b.close()


async def test_silent_socket_is_closed_4401_after_the_deadline(server: DaphneServer) -> None:
    """A socket with no cookie that never authenticates is closed with 4401 after CHAT_AUTH_TIMEOUT."""
    mark = len(server.log())
    started = time.monotonic()
    async with websockets.connect(server.ws_url, origin=server.origin, open_timeout=WAIT) as ws:
        assert await close_code(ws, timeout=WAIT) == 4401
    assert 0.9 <= time.monotonic() - started < 5
    assert "no authenticate frame within 1.0 s" in server.log()[mark:]


def expiry_of(token: str) -> int:
    return int(jwt.decode(token, options={"verify_signature": False})["exp"])


async def test_socket_closes_4401_at_expiry_unless_refreshed_in_band(server: DaphneServer) -> None:
    """Of two sockets on expiring tokens, the one that refreshes in-band stays, in its room; the other is closed."""
    # bob chats from a page: a session cookie, which does not expire with any token. Signed in
    # first, so that alice's tokens' lifetime is not spent on his password check.
    cookie = server.login("bob", DEMO_PASSWORD)
    alice = sign_in(server, "alice")
    stays, first = await authenticated(server, alice["AccessToken"])
    drops, _ = await authenticated(server, alice["IdToken"])
    writer = await websockets.connect(
        server.ws_url, origin=server.origin, additional_headers={"Cookie": cookie}, open_timeout=WAIT
    )
    first_expiry = expiry_of(alice["AccessToken"])
    try:
        for ws in (stays, drops):
            await ws.send(json.dumps({"action": "joinRoom", "roomId": "general"}))
            assert (await recv(ws))["type"] == "joined"
        # Refresh once a new token can carry a later exp (exp has one-second resolution).
        await asyncio.sleep(max(0.0, first_expiry - LIFETIME + 1.05 - time.time()))
        fresh = post(server, "/api/auth/refresh", {"refreshToken": alice["RefreshToken"]})
        second_expiry = expiry_of(fresh["AccessToken"])
        assert second_expiry > first_expiry
        await stays.send(json.dumps({"action": "refreshToken", "token": fresh["AccessToken"]}))
        answer = await recv(stays)
        assert answer["type"] == "authenticated" and answer["expiresAt"] > first["expiresAt"]

        assert await close_code(drops, timeout=first_expiry + 3 - time.time()) == 4401
        assert time.time() >= first_expiry - 0.2  # at its token's expiry, not before

        await writer.send(json.dumps({"action": "sendMessage", "roomId": "general", "message": "after expiry"}))
        got = await recv(stays)
        while got["type"] != "message":
            got = await recv(stays)
        assert got["message"] == "after expiry"  # still open past the first expiry, still in the room
        assert time.time() > first_expiry
        assert await close_code(stays, timeout=second_expiry + 3 - time.time()) == 4401
        assert time.time() >= second_expiry - 0.2  # at the fresh token's expiry
    finally:
        for ws in (stays, drops, writer):
            await ws.close()
