"""The production database: Chatsite on PostgreSQL, through a real daphne process.

Skips (saying why) where no PostgreSQL answers on 127.0.0.1:5432 or POSTGRES_TEST_URL; this
machine and CI have one. Each run gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from tests.e2e.client import ChatClient, create_room
from tests.fixtures.servers import DaphneServer


async def test_users_chat_on_postgresql_with_contiguous_seqs_under_concurrent_senders(
    daphne_factory: Callable[..., DaphneServer], postgres_url: str, tmp_path: Path
) -> None:
    """On PostgreSQL, 3 users sending 20 messages at once get seqs 1..60, one order for all; a retry is stored once."""
    server = daphne_factory(shared_dir=tmp_path, DATABASE_URL=postgres_url)
    cookies = [server.signup(name) for name in ("alice", "bob", "carol")]
    room = create_room(server.base_url, cookies[0], "pg-room")
    clients = [await ChatClient.connect(server.ws_url, cookie=c, origin=server.origin) for c in cookies]
    try:
        for client in clients:
            await client.join(room)

        async def burst(client: ChatClient, i: int) -> list[dict[str, object]]:
            return await asyncio.gather(*(client.send_message(room, f"{i}:{n}") for n in range(20)))

        acks = [a for batch in await asyncio.gather(*(burst(c, i) for i, c in enumerate(clients))) for a in batch]
        assert {a["type"] for a in acks} == {"ack"}
        assert sorted(a["seq"] for a in acks) == list(range(1, 61))  # type: ignore[type-var]
        orders = []
        for client in clients:
            log = await client.wait_for_seq(room, 60)
            assert log.seqs == list(range(1, 61))
            orders.append([m["messageId"] for m in log.messages])
        assert orders[0] == orders[1] == orders[2]

        first = acks[0]
        again = await clients[0].send_message(room, "0:0", client_message_id=str(first["clientMessageId"]))
        assert (again["type"], again["seq"], again["messageId"]) == ("ack", first["seq"], first["messageId"])
        history = await clients[1].history(room, limit=200)
        assert [m["seq"] for m in history["messages"]] == list(range(1, 61))
    finally:
        for client in clients:
            await client.close()
