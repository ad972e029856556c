"""Bad input never becomes a server error: one answer on SQLite, PostgreSQL and DynamoDB.

NUL (which PostgreSQL's text type cannot hold) and lone surrogates (which JSON can carry and
UTF-8 cannot) in a username, a room name, a message and a report reason are refused at the
edge: HTTP 400 or a non-retryable `invalid_field` frame, the socket left open, nothing
stored, no traceback in the server's log. A very long /app/ path is a 404.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.client import ChatClient, create_room
from tests.fixtures import warm
from tests.fixtures.aws import MotoServer
from tests.fixtures.servers import ROOT, DaphneServer, base_env

pytestmark = pytest.mark.timeout(180)
WAIT = 10.0
PASSWORD = "bad-input-Passw0rd"


@pytest.fixture(scope="module", params=["sqlite+local", "postgresql+local", "sqlite+dynamodb"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, migrated_db: Path
) -> Iterator[DaphneServer]:
    """A daphne process on each database and storage backend."""
    database, storage = request.param.split("+")
    data_dir = tmp_path_factory.mktemp("bad-input")
    env: dict[str, str] = {}
    if database == "postgresql":
        env["DATABASE_URL"] = request.getfixturevalue("postgres_url")
    else:
        (data_dir / "db.sqlite3").write_bytes(migrated_db.read_bytes())
    if storage == "dynamodb":
        moto: MotoServer = request.getfixturevalue("moto_server")
        prefix = f"bad-{uuid.uuid4().hex[:10]}-"
        env.update(moto.env)
        env.update(
            CHAT_STORAGE_BACKEND="dynamodb",
            DYNAMODB_CONNECTIONS_TABLE=f"{prefix}Connections",
            DYNAMODB_MESSAGES_TABLE=f"{prefix}Messages",
            DYNAMODB_ROOMS_TABLE=f"{prefix}Rooms",
        )
        warm.run(
            [sys.executable, "manage.py", "create_dynamodb_tables"],
            cwd=ROOT,
            env=base_env(data_dir, **env),
            capture_output=True,
            timeout=120,
            check=True,
        )
    daphne = DaphneServer(data_dir, base_env(data_dir, **env)).start()
    yield daphne
    daphne.stop()


def http(server: DaphneServer, method: str, path: str, body: str | None = None, **headers: str) -> tuple[int, Any]:
    request = urllib.request.Request(
        server.base_url + path,
        data=None if body is None else body.encode("utf-8"),
        method=method,
        headers={"Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, None


def sign_in(server: DaphneServer, username: str) -> tuple[str, str]:
    """A new account's session cookie and ID token."""
    cookie = server.signup(username, PASSWORD)
    status, tokens = http(server, "POST", "/api/auth/token", json.dumps({"username": username, "password": PASSWORD}))
    assert status == 200, tokens
    return cookie, str(tokens["IdToken"])


def test_unstorable_usernames_are_400_not_500(server: DaphneServer) -> None:
    """A NUL or a lone surrogate in /api/auth/token's username is a 400, never a 500."""
    for raw in ('{"username": "al\\u0000ice", "password": "x"}', '{"username": "\\ud800", "password": "x"}'):
        status, body = http(server, "POST", "/api/auth/token", raw)
        assert (status, body["error"]) == (400, "invalid_request"), raw
    assert "Traceback" not in server.log_path.read_text()


def test_unstorable_room_names_are_400(server: DaphneServer) -> None:
    """POST /api/rooms with a NUL in the name is 400 invalid_field, and no room is made."""
    _, token = sign_in(server, f"namer{uuid.uuid4().hex[:6]}")
    auth = {"Authorization": f"Bearer {token}"}
    for name in ("a\\u0000b", "\\udfff"):
        raw = '{"roomId": "nul-room", "name": "' + name + '"}'
        status, body = http(server, "POST", "/api/rooms", raw, **auth)
        assert (status, body["error"]) == (400, "invalid_field"), name
    status, body = http(server, "GET", "/api/rooms", **auth)
    assert status == 200 and "nul-room" not in [r["roomId"] for r in body["rooms"]]
    assert "Traceback" not in server.log_path.read_text()


async def test_unstorable_messages_and_reasons_are_invalid_field_not_retryable(server: DaphneServer) -> None:
    """NUL in a message or a report reason is a non-retryable invalid_field; the socket goes on, nothing is stored."""
    cookie, _ = sign_in(server, f"sender{uuid.uuid4().hex[:6]}")
    room = f"bad-{uuid.uuid4().hex[:6]}"
    room = create_room(server.base_url, cookie, room)
    client = await ChatClient.connect(server.ws_url, cookie=cookie, origin=server.origin)
    try:
        await client.join(room)
        sent = await client.send_message(room, "a fine message")
        assert sent["type"] == "ack"
        for text in ("before\u0000after", "\u0000"):
            error = await client.expect_error(
                {"action": "sendMessage", "roomId": room, "message": text, "clientMessageId": "nul-1"}
            )
            assert (error["code"], error.get("retryable"), error["clientMessageId"]) == ("invalid_field", None, "nul-1")
        error = await client.expect_error(
            {"action": "reportMessage", "roomId": room, "messageId": sent["messageId"], "reason": "spam\u0000"}
        )
        assert (error["code"], error.get("retryable")) == ("invalid_field", None)
        history = await client.history(room)
        assert [m["message"] for m in history["messages"]] == ["a fine message"]
        await client.ping()
    finally:
        await client.close()
    assert "Traceback" not in server.log_path.read_text()
