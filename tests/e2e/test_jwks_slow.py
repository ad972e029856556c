"""A slow JWKS endpoint holds neither the process's threads nor the sockets waiting on it (issue 24).

Token checks used to run on the loop's default thread pool and queue behind the key set's
lock for as long as the JWKS endpoint took: a flood of tokens with unknown key ids filled
the pool, and /readyz's store check (and every DynamoDB store call, on the same pool)
timed out. Here the Cognito pool's JWKS is a local HTTP server that answers after 5 s.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
import websockets
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fixtures.servers import DaphneServer

pytestmark = pytest.mark.timeout(90)

JWKS_DELAY = 5.0
WAIT = 1.0  # AUTH_JWKS_WAIT for the server under test
FLOOD = 16
POOL = "us-east-1_slowjwks"
CLIENT_ID = "slowjwksclient"


class SlowJwks:
    """A JWKS endpoint on 127.0.0.1 that answers each request after JWKS_DELAY seconds."""

    def __init__(self) -> None:
        self.requests = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                time.sleep(JWKS_DELAY)
                body = json.dumps({"keys": []}).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the fetcher gave up first

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{POOL}/.well-known/jwks.json"


@pytest.fixture
def slow_jwks() -> Iterator[SlowJwks]:
    endpoint = SlowJwks()
    endpoint.thread.start()
    yield endpoint
    endpoint.server.shutdown()
    endpoint.server.server_close()


def bad_token(key: rsa.RSAPrivateKey) -> str:
    """A well-formed Cognito-shaped ID token under a key id the pool never had."""
    now = int(time.time())
    claims = {
        "sub": str(uuid.uuid4()),
        "iss": f"https://cognito-idp.us-east-1.amazonaws.com/{POOL}",
        "aud": CLIENT_ID,
        "token_use": "id",
        "cognito:username": "mallory",
        "iat": now,
        "exp": now + 600,
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": uuid.uuid4().hex})


async def _closed_with(server: DaphneServer, token: str) -> tuple[int | None, float]:
    started = time.monotonic()
    async with websockets.connect(f"{server.ws_url}?token={token}", origin=server.origin) as ws:  # type: ignore[arg-type]
        try:
            await asyncio.wait_for(ws.recv(), 30)
        except websockets.ConnectionClosed:
            pass
        return ws.close_code, time.monotonic() - started


def _readyz(server: DaphneServer) -> tuple[int, float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(server.base_url + "/readyz", timeout=20) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    return status, time.monotonic() - started


async def test_a_slow_jwks_holds_neither_readyz_nor_the_sockets_waiting_for_it(
    daphne_factory: Callable[..., DaphneServer], slow_jwks: SlowJwks, tmp_path: Path
) -> None:
    """16 unknown kids while the JWKS takes 5 s: one fetch, 4401 within the wait bound, /readyz 200 at once."""
    server = daphne_factory(
        shared_dir=tmp_path,
        COGNITO_REGION="us-east-1",
        COGNITO_USER_POOL_ID=POOL,
        COGNITO_APP_CLIENT_ID=CLIENT_ID,
        COGNITO_JWKS_URL=slow_jwks.url,
        AUTH_JWKS_WAIT=str(WAIT),
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    flood = [asyncio.create_task(_closed_with(server, bad_token(key))) for _ in range(FLOOD)]
    await asyncio.sleep(0.5)  # the flood's checks are waiting for the JWKS now
    status, took = await asyncio.to_thread(_readyz, server)
    closes = await asyncio.gather(*flood)
    assert status == 200, f"/readyz answered {status} after {took:.1f} s"
    assert took < 1.5, f"/readyz waited behind the key fetch: {took:.1f} s"
    assert {code for code, _ in closes} == {4401}, closes
    slowest = max(t for _, t in closes)
    assert slowest < WAIT + 2.0, f"sockets queued up for the key fetch: {slowest:.1f} s"
    assert slow_jwks.requests == 1
    print(
        f"\nobserved slow JWKS ({JWKS_DELAY:g} s): /readyz {status} in {took * 1000:.0f} ms; "
        f"{FLOOD} bad tokens closed 4401 within {slowest:.1f} s; {slow_jwks.requests} JWKS request"
    )
