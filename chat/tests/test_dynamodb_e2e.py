"""A real daphne process on the DynamoDB backend (moto server process): chat, retry, resume."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.typing import Origin

from chat.storage import schema
from chat.storage.dynamodb import make_client
from tests.fixtures import warm
from tests.fixtures.aws import MotoServer
from tests.fixtures.servers import ROOT, DaphneServer, base_env

Frame = dict[str, Any]

# Scaled on slow machines, like every wait of the end-to-end tests.
TIMEOUT = 10.0 * float(os.environ.get("CHAT_TEST_TIMEOUT_FACTOR", "1"))


async def next_frame(ws: ClientConnection, kind: str, timeout: float = TIMEOUT, **fields: Any) -> Frame:
    """The next frame of type `kind` (with the given fields), skipping others (presence, pongs, ...)."""
    async with asyncio.timeout(timeout):
        while True:
            frame: Frame = json.loads(await ws.recv())
            if frame.get("type") == kind and all(frame.get(k) == v for k, v in fields.items()):
                return frame


async def send(ws: ClientConnection, text: str, client_message_id: str) -> Frame:
    await ws.send(
        json.dumps(
            {"action": "sendMessage", "roomId": "general", "message": text, "clientMessageId": client_message_id}
        )
    )
    return await next_frame(ws, "ack")


async def join(ws: ClientConnection, last_seq: int | None = None) -> Frame:
    frame: Frame = {"action": "joinRoom", "roomId": "general"}
    if last_seq is not None:
        frame["lastSeq"] = last_seq
    await ws.send(json.dumps(frame))
    return await next_frame(ws, "joined")


async def test_two_users_chat_and_a_reconnect_resumes_on_dynamodb(
    moto_server: MotoServer, daphne_factory: Callable[..., DaphneServer], tmp_path: Path, aws_env: dict[str, str]
) -> None:
    """On DynamoDB, bob gets alice's messages live, and after a reconnect with lastSeq gets exactly what he missed."""
    names = schema.TableNames.with_prefix(f"e2e-{uuid.uuid4().hex[:10]}-")
    tables = {
        "DYNAMODB_CONNECTIONS_TABLE": names.connections,
        "DYNAMODB_MESSAGES_TABLE": names.messages,
        "DYNAMODB_ROOMS_TABLE": names.rooms,
    }
    created = warm.run(
        [sys.executable, "manage.py", "create_dynamodb_tables"],
        cwd=ROOT,
        env=base_env(tmp_path, **moto_server.env, **tables),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert f"created table {names.messages}" in created.stdout
    server = daphne_factory(**moto_server.env, CHAT_STORAGE_BACKEND="dynamodb", **tables)
    alice, bob = server.signup("alice"), server.signup("bob")

    def connect(cookie: str) -> websockets.connect:
        return websockets.connect(server.ws_url, additional_headers={"Cookie": cookie}, origin=Origin(server.origin))

    async with connect(alice) as a:
        async with connect(bob) as b:
            assert (await join(a))["lastSeq"] == 0
            assert (await join(b))["lastSeq"] == 0
            assert (await send(a, "hello bob", "a1"))["seq"] == 1
            got = await next_frame(b, "message")
            assert (got["seq"], got["username"], got["message"]) == (1, "alice", "hello bob")
            assert (await send(b, "hi alice", "b1"))["seq"] == 2
            assert (await next_frame(a, "message", seq=2))["message"] == "hi alice"
        # bob is away; alice goes on, and retries one send whose ack she "lost".
        assert (await send(a, "are you there?", "a2"))["seq"] == 3
        assert (await send(a, "bob?", "a3"))["seq"] == 4
        retry = await send(a, "are you there?", "a2")
        assert retry["seq"] == 3

        async with connect(bob) as b:
            resumed = await join(b, last_seq=2)
    assert (resumed["lastSeq"], resumed["recovered"]) == (4, True)
    assert [(m["seq"], m["message"]) for m in resumed["messages"]] == [(3, "are you there?"), (4, "bob?")]

    # The messages are in DynamoDB, each once, with the origin design's attributes.
    items = make_client(region=aws_env["AWS_REGION"]).scan(TableName=names.messages)["Items"]
    messages = [item for item in items if "roomId" in item]  # the others record clientMessageIds
    assert sorted(int(item["seq"]["N"]) for item in messages) == [1, 2, 3, 4]
    assert {"roomId", "username", "message", "timestamp", "connectionId", "ttl"} <= set(messages[0])
