"""chat.open_gate: a process's sockets do their opening database work a few at a time, in the
order they came, and one that waits too long is told to come back (1011) instead of hanging."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from chat import open_gate as gate_module
from chat.models import Connection
from chat.open_gate import OpenBusy, OpenGate
from chat.protocol import CloseCode
from chat.tests.conftest import OpenSocket, session_cookie

pytestmark = pytest.mark.timeout(60)


async def test_no_more_than_the_turns_run_at_once_and_waiters_go_in_the_order_they_came() -> None:
    """Ten opens through a gate of three: never more than three inside, the rest enter first come, first served."""
    gate = OpenGate(at_once=3, wait_seconds=30)
    inside: list[int] = []
    most = 0
    entered: list[int] = []
    release = asyncio.Event()

    async def open_one(n: int) -> None:
        nonlocal most
        async with gate.turn():
            entered.append(n)
            inside.append(n)
            most = max(most, len(inside))
            await release.wait()
            await asyncio.sleep(0)
            inside.remove(n)

    tasks = []
    for n in range(10):
        tasks.append(asyncio.create_task(open_one(n)))
        await asyncio.sleep(0)  # each reaches the gate before the next starts
    await asyncio.sleep(0)
    assert entered == [0, 1, 2] and gate.waited == 7
    release.set()
    await asyncio.gather(*tasks)
    assert entered == list(range(10)) and most == 3


async def test_a_waiter_without_a_turn_in_time_is_refused_and_the_turns_come_back() -> None:
    """OpenBusy after the wait, holding nothing; a turn held by a failing open is given back."""
    gate = OpenGate(at_once=1, wait_seconds=0.05)
    held = asyncio.Event()
    done = asyncio.Event()

    async def holder() -> None:
        async with gate.turn():
            held.set()
            await done.wait()

    task = asyncio.create_task(holder())
    await held.wait()
    with pytest.raises(OpenBusy):
        async with gate.turn():
            pytest.fail("no turn was free")
    done.set()
    await task
    with pytest.raises(RuntimeError):
        async with gate.turn():
            raise RuntimeError("the open failed")
    async with gate.turn():  # the failed open gave its turn back
        pass


@pytest.mark.django_db(transaction=True)
async def test_a_socket_waits_for_a_turn_then_opens_and_is_told_to_come_back_when_none_comes(
    session_sockets: OpenSocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With every turn held, a signed-in socket is not served until one frees (then it joins as usual); when
    none frees within the wait, it is closed with 1011 and nothing more, and leaves no connection row."""
    gate = OpenGate(at_once=1, wait_seconds=30)
    monkeypatch.setattr(gate_module, "_gates", {asyncio.get_running_loop(): gate})
    holding = asyncio.Event()
    free = asyncio.Event()

    async def hold(gate: OpenGate) -> None:
        async with gate.turn():
            holding.set()
            await free.wait()

    holder = asyncio.create_task(hold(gate))
    await holding.wait()
    socket: WebsocketCommunicator = await session_sockets(await sync_to_async(session_cookie)("alice"))
    await socket.send_json_to({"action": "joinRoom", "roomId": "general"})
    assert await socket.receive_nothing(timeout=0.3)  # still waiting for its turn
    assert gate.waited == 1
    free.set()
    await holder
    frame = await socket.receive_json_from(timeout=10)
    assert frame["type"] == "joined", frame
    await socket.disconnect()

    busy = OpenGate(at_once=1, wait_seconds=0.2)
    monkeypatch.setattr(gate_module, "_gates", {asyncio.get_running_loop(): busy})
    holding.clear()
    free.clear()
    holder = asyncio.create_task(hold(busy))
    await holding.wait()
    refused = await session_sockets(await sync_to_async(session_cookie)("bob"))
    await refused.send_json_to({"action": "joinRoom", "roomId": "general"})  # as a client does once open
    closed = await refused.receive_output(timeout=10)
    assert (closed["type"], closed.get("code")) == ("websocket.close", CloseCode.INTERNAL_ERROR), closed
    assert await refused.receive_nothing(timeout=0.3)  # the join is not read as a wrong first frame (4401)
    free.set()
    await holder
    rows = await sync_to_async(list)(Connection.objects.filter(username="bob"))
    assert rows == []  # refused before its admission: no connection row
