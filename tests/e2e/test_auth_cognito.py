"""Cognito sign-in end to end: a moto user pool, a real daphne, real WebSockets.

Tokens come from moto's InitiateAuth; daphne fetches the pool's keys over HTTP. Between the
two sits a JWKS stand-in of our own (`KeysEndpoint`): it serves moto's keys (plus, to test
claims and rotation, keys these tests sign with) and counts every fetch, so "at most once
per 10 s" is measured where it matters, at the endpoint.

Every bad token must close the socket with 4401 and leave its reason, never the token, in
daphne's log.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
import websockets
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import start_module_server
from tests.fixtures.cognito import CognitoPool
from tests.fixtures.servers import DaphneServer

pytestmark = pytest.mark.timeout(120)
WAIT = 10.0


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}


class KeysEndpoint:
    """The pool's JWKS as daphne sees it: moto's keys plus `extra`, with every fetch timed."""

    def __init__(self, upstream: str) -> None:
        with urllib.request.urlopen(upstream, timeout=10) as response:
            self.upstream_keys: list[dict[str, Any]] = json.load(response)["keys"]
        self.extra: list[dict[str, Any]] = []
        self.fetched_at: list[float] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                endpoint.fetched_at.append(time.monotonic())
                body = json.dumps({"keys": [*endpoint.upstream_keys, *endpoint.extra]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def fetches(self) -> int:
        return len(self.fetched_at)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- servers -------------------------------------------------------------------------------------

SIGNER = new_key()  # a second key in the pool's JWKS: signs the tokens whose claims are tested
SIGNER_KID = "chatsite-test-signer"


@pytest.fixture(scope="module")
def keys(cognito_pool: CognitoPool) -> Iterator[KeysEndpoint]:
    endpoint = KeysEndpoint(cognito_pool.jwks_url)
    endpoint.extra.append(public_jwk(SIGNER, SIGNER_KID))
    yield endpoint
    endpoint.close()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, migrated_db: Path, cognito_pool: CognitoPool, keys: KeysEndpoint
) -> Iterator[DaphneServer]:
    """Chatsite on the moto pool, with the default rules (ID and access tokens, 10 s refetch limit)."""
    daphne = start_module_server(tmp_path_factory, migrated_db, **cognito_pool.env(COGNITO_JWKS_URL=keys.url))
    yield daphne
    daphne.stop()


@pytest.fixture(scope="module")
def tokens(cognito_pool: CognitoPool) -> dict[str, Any]:
    """carol's tokens from InitiateAuth (USER_PASSWORD_AUTH) on the moto pool."""
    return cognito_pool.sign_in()


def claims_of(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def signed(claims: dict[str, Any], *, key: rsa.RSAPrivateKey = SIGNER, kid: str = SIGNER_KID) -> str:
    return jwt.api_jws.PyJWS().encode(json.dumps(claims).encode(), key, algorithm="RS256", headers={"kid": kid})


# --- a socket --------------------------------------------------------------------------------------


async def authenticate(daphne: DaphneServer, token: str) -> tuple[Any, dict[str, Any] | int]:
    """Open a socket, send `authenticate`; return (socket, the answer frame or the close code)."""
    ws = await websockets.connect(daphne.ws_url, origin=daphne.origin, max_size=None, open_timeout=WAIT)
    await ws.send(json.dumps({"action": "authenticate", "token": token}))
    try:
        return ws, json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    except ConnectionClosed:
        assert ws.close_code is not None
        return ws, ws.close_code


async def refused(daphne: DaphneServer, token: str) -> int:
    ws, answer = await authenticate(daphne, token)
    await ws.close()
    assert isinstance(answer, int), f"expected a close, got {answer}"
    return answer


def log_after(daphne: DaphneServer, mark: int) -> str:
    return daphne.log()[mark:]


# --- good tokens ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["IdToken", "AccessToken"])
async def test_cognito_tokens_open_a_chat_socket(
    server: DaphneServer, tokens: dict[str, Any], cognito_pool: CognitoPool, kind: str
) -> None:
    """carol's ID token and her access token, from InitiateAuth on the pool, both open a socket and chat."""
    ws, answer = await authenticate(server, tokens[kind])
    try:
        assert isinstance(answer, dict) and answer["type"] == "authenticated"
        assert answer["username"] == cognito_pool.username
        assert answer["expiresAt"].endswith("Z")
        room = f"cognito-{kind.lower()}"
        await ws.send(json.dumps({"action": "joinRoom", "roomId": "general"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), WAIT))["type"] == "joined"
        await ws.send(
            json.dumps({"action": "sendMessage", "roomId": "general", "message": room, "clientMessageId": room})
        )
        frames = [json.loads(await asyncio.wait_for(ws.recv(), WAIT)) for _ in range(2)]
        message = next(f for f in frames if f["type"] == "message")
        assert (message["username"], message["userId"]) == (cognito_pool.username, answer["userId"])
    finally:
        await ws.close()


async def test_both_tokens_of_a_user_are_the_same_chat_user(server: DaphneServer, tokens: dict[str, Any]) -> None:
    """The ID and access tokens of one Cognito user (one sub) map to one userId."""
    user_ids = set()
    for kind in ("IdToken", "AccessToken"):
        ws, answer = await authenticate(server, tokens[kind])
        await ws.close()
        assert isinstance(answer, dict)
        user_ids.add(answer["userId"])
    assert len(user_ids) == 1


async def test_handshake_tokens_are_accepted_and_never_logged(server: DaphneServer, tokens: dict[str, Any]) -> None:
    """A token in Sec-WebSocket-Protocol or ?token= signs in; no log line, access log included, shows it."""
    mark = len(server.log())
    token = tokens["AccessToken"]
    async with websockets.connect(
        server.ws_url,
        origin=server.origin,
        subprotocols=["chatsite", token],
        open_timeout=WAIT,  # type: ignore[list-item]
    ) as ws:
        assert ws.subprotocol == "chatsite"  # the token is never echoed back
        assert json.loads(await asyncio.wait_for(ws.recv(), WAIT))["type"] == "authenticated"
    async with websockets.connect(f"{server.ws_url}?token={token}", origin=server.origin, open_timeout=WAIT) as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), WAIT))["type"] == "authenticated"
    # A plain GET of the socket URL (a proxy that drops Upgrade) lands in daphne's HTTP access log.
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(f"{server.base_url}/ws/?token={token}", timeout=WAIT)
    await asyncio.sleep(0.3)
    log = log_after(server, mark)
    assert "WSCONNECT /ws/" in log and "GET /ws/?token=[redacted]" in log  # the access log is on
    signature = token.rsplit(".", 1)[1]
    assert token not in log and signature not in log and token.split(".")[1] not in log


# --- the battery of bad tokens -------------------------------------------------------------------------

Forge = Callable[[dict[str, Any], CognitoPool], str]


def none_alg(t: dict[str, Any], pool: CognitoPool) -> str:
    header = jwt.get_unverified_header(t["IdToken"])
    return f"{b64(json.dumps({**header, 'alg': 'none'}).encode())}.{t['IdToken'].split('.')[1]}."


def hs256_with_public_key(t: dict[str, Any], pool: CognitoPool) -> str:
    kid = jwt.get_unverified_header(t["IdToken"])["kid"]
    with urllib.request.urlopen(pool.jwks_url, timeout=WAIT) as response:
        jwk = next(k for k in json.load(response)["keys"] if k["kid"] == kid)
    pem = jwt.algorithms.RSAAlgorithm.from_jwk(jwk).public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'kid': kid}).encode())}.{t['IdToken'].split('.')[1]}"
    return f"{signing_input}.{b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())}"


def foreign_key_right_kid(t: dict[str, Any], pool: CognitoPool) -> str:
    return signed(claims_of(t["IdToken"]), key=new_key(), kid=jwt.get_unverified_header(t["IdToken"])["kid"])


def unknown_kid(t: dict[str, Any], pool: CognitoPool) -> str:
    return signed(claims_of(t["IdToken"]), key=new_key(), kid=f"unknown-{uuid.uuid4()}")


def with_claims(kind: str, **changes: Any) -> Forge:
    def forge(t: dict[str, Any], pool: CognitoPool) -> str:
        claims = {**claims_of(t[kind]), **changes}
        return signed({k: v for k, v in claims.items() if v is not None})

    return forge


def shifted_issuer(edit: Callable[[str], str]) -> Forge:
    def forge(t: dict[str, Any], pool: CognitoPool) -> str:
        return signed({**claims_of(t["IdToken"]), "iss": edit(pool.issuer)})

    return forge


def two_segments(t: dict[str, Any], pool: CognitoPool) -> str:
    return ".".join(t["IdToken"].split(".")[:2])


def bad_base64(t: dict[str, Any], pool: CognitoPool) -> str:
    header, payload, signature = t["IdToken"].split(".")
    return f"{header}.{payload[:10]}!!{payload[12:]}.{signature}"


def megabyte(t: dict[str, Any], pool: CognitoPool) -> str:
    return "A" * 1_000_000


NOW = int(time.time())
BATTERY: list[tuple[str, Forge, str]] = [
    ("alg none", none_alg, "reason=algorithm_not_allowed"),
    ("HS256 signed with the public key", hs256_with_public_key, "reason=algorithm_not_allowed"),
    ("foreign key with the pool's kid", foreign_key_right_kid, "reason=bad_signature"),
    ("unknown kid", unknown_kid, "reason=unknown_kid"),
    ("another pool's iss", shifted_issuer(lambda iss: iss[:-3] + "XYZ"), "reason=wrong_issuer"),
    ("iss with the pool's as prefix", shifted_issuer(lambda iss: iss + "evil"), "reason=wrong_issuer"),
    ("iss a prefix of the pool's", shifted_issuer(lambda iss: iss[:-1]), "reason=wrong_issuer"),
    ("iss with a trailing slash", shifted_issuer(lambda iss: iss + "/"), "reason=wrong_issuer"),
    ("access token shaped like an ID token", with_claims("IdToken", token_use="access"), "reason=wrong_client_id"),
    ("ID token shaped like an access token", with_claims("AccessToken", token_use="id"), "reason=wrong_audience"),
    ("refresh token_use", with_claims("AccessToken", token_use="refresh"), "reason=wrong_token_use"),
    ("wrong aud", with_claims("IdToken", aud="another-app-client"), "reason=wrong_audience"),
    ("wrong client_id", with_claims("AccessToken", client_id="another-app-client"), "reason=wrong_client_id"),
    ("expired", with_claims("IdToken", iat=NOW - 7200, exp=NOW - 3600), "reason=expired"),
    ("not yet valid", with_claims("IdToken", nbf=NOW + 3600), "reason=not_yet_valid"),
    ("issued in the future", with_claims("AccessToken", iat=NOW + 3600, exp=NOW + 7200), "reason=issued_in_future"),
    ("two segments", two_segments, "reason=malformed"),
    ("bad base64", bad_base64, "reason=malformed"),
    ("a megabyte of text", megabyte, "first frame refused (frame_too_large)"),
]


@pytest.mark.parametrize(("forge", "logged"), [(f, r) for _, f, r in BATTERY], ids=[n for n, _, _ in BATTERY])
async def test_bad_token_closes_4401_with_a_logged_reason(
    server: DaphneServer, tokens: dict[str, Any], cognito_pool: CognitoPool, forge: Forge, logged: str
) -> None:
    """Each forged, mis-addressed, stale or malformed token closes the socket with 4401; the log says why."""
    mark = len(server.log())
    token = forge(tokens, cognito_pool)
    assert await refused(server, token) == 4401
    log = log_after(server, mark)
    assert logged in log
    assert token[-40:] not in log


async def test_flood_of_unknown_kids_hits_the_jwks_at_most_once_per_10_seconds(
    server: DaphneServer, tokens: dict[str, Any], keys: KeysEndpoint
) -> None:
    """Sixty sockets with made-up kids are all refused; the JWKS endpoint is asked at most once."""
    before = keys.fetches
    started = time.monotonic()
    claims = claims_of(tokens["IdToken"])
    attacker = new_key()
    forged = [signed(claims, key=attacker, kid=f"flood-{i}-{uuid.uuid4()}") for i in range(60)]
    for batch in range(0, len(forged), 15):
        codes = await asyncio.gather(*(refused(server, token) for token in forged[batch : batch + 15]))
        assert codes == [4401] * 15
    assert time.monotonic() - started < 10  # all inside one refetch window
    assert keys.fetches - before <= 1
    gaps = [b - a for a, b in zip(keys.fetched_at, keys.fetched_at[1:], strict=False)]
    assert all(gap >= 9.9 for gap in gaps), gaps  # over the whole module, never faster


# --- access-only rules and key rotation (a second process: AUTH_TOKEN_USE=access, 1 s refetch limit) ------


@pytest.fixture(scope="module")
def rotating_keys(cognito_pool: CognitoPool) -> Iterator[KeysEndpoint]:
    endpoint = KeysEndpoint(cognito_pool.jwks_url)
    yield endpoint
    endpoint.close()


@pytest.fixture(scope="module")
def access_only_server(
    tmp_path_factory: pytest.TempPathFactory,
    migrated_db: Path,
    cognito_pool: CognitoPool,
    rotating_keys: KeysEndpoint,
) -> Iterator[DaphneServer]:
    env = cognito_pool.env(COGNITO_JWKS_URL=rotating_keys.url, AUTH_TOKEN_USE="access", AUTH_JWKS_REFETCH_INTERVAL="1")
    daphne = start_module_server(tmp_path_factory, migrated_db, **env)
    yield daphne
    daphne.stop()


async def test_id_token_where_access_tokens_are_expected_is_refused(
    access_only_server: DaphneServer, tokens: dict[str, Any]
) -> None:
    """With AUTH_TOKEN_USE=access, the pool's real ID token is refused and its access token accepted."""
    mark = len(access_only_server.log())
    assert await refused(access_only_server, tokens["IdToken"]) == 4401
    assert "reason=wrong_token_use" in log_after(access_only_server, mark)
    ws, answer = await authenticate(access_only_server, tokens["AccessToken"])
    await ws.close()
    assert isinstance(answer, dict) and answer["type"] == "authenticated"


async def test_rotated_key_is_accepted_after_one_refetch(
    access_only_server: DaphneServer, tokens: dict[str, Any], rotating_keys: KeysEndpoint
) -> None:
    """When the pool starts signing with a new key, its tokens are accepted after exactly one refetch."""
    ws, answer = await authenticate(access_only_server, tokens["AccessToken"])
    await ws.close()
    assert isinstance(answer, dict)
    fetches = rotating_keys.fetches
    rotated = new_key()
    rotating_keys.extra.append(public_jwk(rotated, "rotated-2026"))
    # Wait out the refetch limit (1 s here) since the last fetch.
    await asyncio.sleep(max(0.0, rotating_keys.fetched_at[-1] + 1.2 - time.monotonic()))
    token = signed(claims_of(tokens["AccessToken"]), key=rotated, kid="rotated-2026")
    ws, answer = await authenticate(access_only_server, token)
    await ws.close()
    assert isinstance(answer, dict) and answer["type"] == "authenticated"
    assert rotating_keys.fetches == fetches + 1
    ws, answer = await authenticate(access_only_server, token)  # now cached
    await ws.close()
    assert isinstance(answer, dict) and rotating_keys.fetches == fetches + 1
