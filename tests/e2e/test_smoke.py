"""A real daphne process serves pages and the chat socket."""

from __future__ import annotations

import json

import websockets

from tests.fixtures.servers import DaphneServer


async def test_two_users_chat_through_a_real_daphne(daphne_server: DaphneServer) -> None:
    """A message from alice reaches bob's socket, and alice gets her ack."""
    alice = daphne_server.signup("alice")
    bob = daphne_server.signup("bob")
    connect = websockets.connect
    async with (
        connect(daphne_server.ws_url, additional_headers={"Cookie": alice}, origin=daphne_server.origin) as a,
        connect(daphne_server.ws_url, additional_headers={"Cookie": bob}, origin=daphne_server.origin) as b,
    ):
        for ws in (a, b):
            await ws.send(json.dumps({"action": "joinRoom", "roomId": "general"}))
            assert json.loads(await ws.recv())["type"] == "joined"
        await a.send(
            json.dumps({"action": "sendMessage", "roomId": "general", "message": "hi", "clientMessageId": "m1"})
        )
        got = json.loads(await b.recv())
        assert (got["type"], got["username"], got["message"], got["seq"]) == ("message", "alice", "hi", 1)
        frames = [json.loads(await a.recv()) for _ in range(2)]
        assert sorted(f["type"] for f in frames) == ["ack", "message"]
