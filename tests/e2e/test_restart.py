"""A daphne process stopped or killed mid-conversation loses nothing it acknowledged."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import pytest

from tests.e2e.client import ChatClient, Frame, create_room, new_client_message_id, timeout
from tests.fixtures.servers import DaphneServer

pytestmark = pytest.mark.timeout(180)


async def chat_until_cut_off(client: ChatClient, room: str, sent: dict[str, str], acked: dict[str, Frame]) -> None:
    """Send batches of 5 messages at once until the socket goes away; record what was sent and acked."""
    for batch in range(1000):
        cmids = [new_client_message_id() for _ in range(5)]
        for n, cmid in enumerate(cmids):
            sent[cmid] = f"b{batch}m{n}"
        results = await asyncio.gather(
            *(client.send_message(room, sent[cmid], client_message_id=cmid, wait=timeout(5)) for cmid in cmids),
            return_exceptions=True,
        )
        for cmid, result in zip(cmids, results, strict=True):
            if isinstance(result, dict) and result["type"] == "ack":
                acked[cmid] = result
        if any(isinstance(result, BaseException) for result in results):
            return


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
async def test_nothing_acknowledged_is_lost_across_a_restart(
    daphne_factory: Callable[..., DaphneServer], stop: str
) -> None:
    """Every acked message survives a restart (graceful or killed); unacked ones are retried and stored once."""
    server = daphne_factory()
    alice_cookie, bob_cookie = await asyncio.gather(
        asyncio.to_thread(server.signup, "alice"), asyncio.to_thread(server.signup, "bob")
    )
    room = await asyncio.to_thread(create_room, server.base_url, alice_cookie, "restart room")
    alice = await ChatClient.connect(server.ws_url, cookie=alice_cookie, origin=server.origin)
    bob = await ChatClient.connect(server.ws_url, cookie=bob_cookie, origin=server.origin)
    try:
        await alice.join(room)
        await bob.join(room)
        sent: dict[str, str] = {}
        acked: dict[str, Frame] = {}
        talking = asyncio.create_task(chat_until_cut_off(alice, room, sent, acked))
        await alice.wait_for(lambda f: f["type"] == "ack" and f["seq"] >= 20)  # mid-conversation
        await asyncio.to_thread(server.stop if stop == "sigterm" else server.kill)
        await asyncio.wait_for(talking, timeout(30))
        assert len(acked) >= 20
        with contextlib.suppress(ConnectionError, TimeoutError):
            await bob.wait_closed(timeout(5))

        await asyncio.to_thread(server.start)
        await alice.reconnect(resume=False)
        # The client retries every send it holds no ack for, with the same clientMessageId.
        for cmid, text in sent.items():
            if cmid not in acked:
                retry = await alice.send_message(room, text, client_message_id=cmid)
                assert retry["type"] == "ack", retry
                acked[cmid] = retry
        resumed = (await bob.reconnect())[room]
        assert resumed["recovered"] is True

        history = await alice.history(room, limit=200)
        assert history["hasMore"] is False
        stored = history["messages"]
        # Stored once each, seqs 1..n without a gap, and every ack still names its message.
        assert sorted(m["clientMessageId"] for m in stored) == sorted(sent)
        assert [m["seq"] for m in stored] == list(range(1, len(sent) + 1))
        by_cmid = {m["clientMessageId"]: m for m in stored}
        for cmid, ack in acked.items():
            assert (by_cmid[cmid]["messageId"], by_cmid[cmid]["seq"], by_cmid[cmid]["message"]) == (
                ack["messageId"],
                ack["seq"],
                sent[cmid],
            )
        # Bob, resumed from his last seq, has exactly the room's messages, each once.
        log = await bob.wait_for_seq(room, len(sent))
        assert log.seqs == list(range(1, len(sent) + 1))
        assert log.duplicates == []
    finally:
        await alice.close()
        await bob.close()
