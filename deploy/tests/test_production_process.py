"""A daphne process on the production settings: probes, metrics, JSON logs and EMF lines, end to end."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.fixtures.servers import DaphneServer

pytestmark = pytest.mark.timeout(120)

METRICS_TOKEN = secrets.token_hex(32)


def get(server: DaphneServer, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(server.base_url + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for raw in text.splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


@pytest.fixture
def production_server(
    daphne_factory: Callable[..., DaphneServer], tmp_path: Path, collected_static: Path, redis_url: str
) -> DaphneServer:
    return daphne_factory(
        shared_dir=tmp_path,
        CHATSITE_ENV="production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        REDIS_URL=redis_url,
        DJANGO_STATIC_ROOT=str(collected_static),
        # Plain HTTP on loopback here; behind the balancer these stay on.
        DJANGO_SECURE_COOKIES="0",
        DJANGO_SECURE_SSL_REDIRECT="0",
        METRICS_TOKEN=METRICS_TOKEN,
        METRICS_EMF="1",
        METRICS_EMF_INTERVAL="1",
        LOG_LEVEL="DEBUG",
    )


async def test_a_production_process_is_observable_and_keeps_secrets_out_of_its_logs(
    production_server: DaphneServer,
) -> None:
    """Probes by IP pass, /metrics needs its token, logs are JSON with ids and no chat text, EMF lines flow."""
    server = production_server
    status, _, body = await asyncio.to_thread(get, server, "/healthz", Host="10.0.7.9")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    status, _, body = await asyncio.to_thread(get, server, "/readyz", Host="10.0.7.9")
    assert status == 200, body
    assert {name for name, check in json.loads(body)["checks"].items() if check["ok"]} == {
        "database",
        "channelLayer",
        "store",
    }

    alice = await asyncio.to_thread(server.signup, "alice")
    bob = await asyncio.to_thread(server.signup, "bob")
    secret_text = f"never-in-a-log-{uuid.uuid4().hex}"
    async with (
        websockets.connect(server.ws_url, additional_headers={"Cookie": alice}, origin=server.origin) as a,
        websockets.connect(server.ws_url, additional_headers={"Cookie": bob}, origin=server.origin) as b,
    ):
        for ws in (a, b):
            await ws.send(json.dumps({"action": "joinRoom", "roomId": "general"}))
            while json.loads(await ws.recv())["type"] != "joined":
                pass
        await a.send(json.dumps({"action": "sendMessage", "roomId": "general", "message": secret_text}))
        while (frame := json.loads(await b.recv()))["type"] != "message":
            pass
        assert frame["message"] == secret_text

        status, _, _ = await asyncio.to_thread(get, server, "/metrics")
        assert status == 401
        status, _, body = await asyncio.to_thread(get, server, "/metrics", Authorization=f"Bearer {METRICS_TOKEN}")
        assert status == 200
        assert "chatsite_messages_stored_total 1.0" in body.decode()
        assert "chatsite_connections_open 2.0" in body.decode()

        # The EMF writer flushes every second: wait (bounded) for a line that counted the message.
        deadline = time.monotonic() + 10
        stored = 0.0
        while time.monotonic() < deadline and stored < 1:
            await asyncio.sleep(0.3)
            stored = sum(
                line.get("MessagesStored", 0)
                for line in json_lines(server.log())
                if "_aws" in line and line.get("Service") == "chatsite" and "Code" not in line and "Outcome" not in line
            )
        assert stored == 1

    await asyncio.to_thread(server.stop)
    log = server.log()
    lines = json_lines(log)
    logged = [line for line in lines if "_aws" not in line]
    assert logged, log[-2000:]
    for line in logged:
        assert {"time", "level", "logger", "message"} <= set(line), line
    connected = [line for line in logged if line["message"] == "websocket connected"]
    assert len(connected) == 2
    assert all(line["connectionId"] and line["userId"] and line["requestId"] for line in connected)
    access = [line for line in logged if line["logger"] == "chatsite.request"]
    assert access and all(line["requestId"] for line in access)
    # Chat text, session cookies and the metrics token appear nowhere, even at DEBUG.
    assert secret_text not in log
    for cookie in (alice, bob):
        session = cookie.split("sessionid=")[1].split(";")[0]
        assert session not in log
    assert METRICS_TOKEN not in log
