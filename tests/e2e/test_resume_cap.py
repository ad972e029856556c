"""Resuming past the replay cap: a daphne process started with CHAT_REPLAY_CAP=5."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.client import ChatClient
from tests.e2e.conftest import Accounts, start_module_server
from tests.fixtures.servers import DaphneServer

pytestmark = pytest.mark.timeout(120)

CAP = 5


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory: pytest.TempPathFactory, migrated_db: Path) -> Iterator[DaphneServer]:
    """This module's daphne replays at most CAP missed messages on a resume."""
    server = start_module_server(tmp_path_factory, migrated_db, CHAT_REPLAY_CAP=str(CAP))
    yield server
    server.stop()


async def missed_then_resume(
    server: DaphneServer, accounts: Accounts, fresh_room: Callable[[], str], missed: int
) -> tuple[ChatClient, str, dict[str, object]]:
    room = await asyncio.to_thread(fresh_room)
    alice_cookie = await asyncio.to_thread(accounts.cookie, "alice")
    bob_cookie = await asyncio.to_thread(accounts.cookie, "bob")
    alice = await ChatClient.connect(server.ws_url, cookie=alice_cookie, origin=server.origin)
    bob = await ChatClient.connect(server.ws_url, cookie=bob_cookie, origin=server.origin)
    try:
        await bob.join(room)
        await alice.send_message(room, "seen")
        await bob.wait_for_seq(room, 1)
        await bob.close()
        for n in range(missed):
            await alice.send_message(room, f"missed {n}")
        joined = (await bob.reconnect())[room]
    finally:
        await alice.close()
    return bob, room, joined


async def test_resume_of_exactly_the_cap_is_recovered(
    chat_server: DaphneServer, accounts: Accounts, fresh_room: Callable[[], str]
) -> None:
    """Missing exactly CHAT_REPLAY_CAP messages still resumes them all: recovered true."""
    bob, room, joined = await missed_then_resume(chat_server, accounts, fresh_room, CAP)
    try:
        assert joined["recovered"] is True
        assert bob.room(room).seqs == list(range(1, CAP + 2))
        assert bob.room(room).reloads == 0
    finally:
        await bob.close()


async def test_resume_past_the_cap_says_reload(
    chat_server: DaphneServer, accounts: Accounts, fresh_room: Callable[[], str]
) -> None:
    """Missing more than CHAT_REPLAY_CAP messages answers recovered false with the latest page to reload from."""
    bob, room, joined = await missed_then_resume(chat_server, accounts, fresh_room, CAP + 1)
    try:
        assert joined["recovered"] is False
        assert joined["lastSeq"] == CAP + 2
        messages = joined["messages"]
        assert isinstance(messages, list)
        assert [m["seq"] for m in messages] == list(range(1, CAP + 3))  # the latest page: the whole room
        assert bob.room(room).reloads == 1
        assert bob.room(room).texts == ["seen", *(f"missed {n}" for n in range(CAP + 1))]
    finally:
        await bob.close()
