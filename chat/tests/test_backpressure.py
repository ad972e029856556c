"""Shedding new sockets while the sync thread is congested (chat.backpressure).

The rule runs on a clock the test owns; the waits it reads are real ones, made long on purpose
(a call queued behind a slow job on the sync thread), so a busy machine only makes them longer.
"""

from __future__ import annotations

import time

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.utils import timezone
from pytest_django.fixtures import Settings

from chat import backpressure
from chat.backpressure import SyncThreadWaits
from chat.storage import get_store
from chat.tests.conftest import OpenSocket, session_cookie

WAIT = 5.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_rule_sheds_only_after_a_long_wait_and_only_for_a_while() -> None:
    clock = Clock()
    waits = SyncThreadWaits(clock=clock)
    assert not waits.congested(1.0)  # nothing has run yet
    waits.started(0.9)
    assert not waits.congested(1.0)  # a wait under the limit
    waits.started(1.2)
    assert waits.congested(1.0)
    assert not waits.congested(0)  # 0: shedding off
    clock.now += 0.99
    assert waits.congested(1.0)
    clock.now += 0.02
    assert not waits.congested(1.0)  # no call started since: a stuck thread does not shed for ever
    waits.started(0.1)
    assert not waits.congested(1.0)  # the next call waited little: the queue is short again


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(60)
async def test_a_congested_process_closes_new_sockets_with_1013_before_any_work_and_opens_them_after(
    session_sockets: OpenSocket, settings: Settings, monkeypatch: pytest.MonkeyPatch, trips: list[str]
) -> None:
    """A store call that waited 1.5 s for the sync thread (queued behind a slow job) makes the next socket
    close with 1013 at once: no identity read, no connection row, nothing stored. An open socket is untouched:
    its message is stored and acked. Once no call has waited long for the limit's length, sockets open."""
    settings.CHAT_OPEN_SHED_WAIT_SECONDS = 0.5
    clock = Clock()
    monkeypatch.setattr(backpressure, "waits", SyncThreadWaits(clock=clock))
    alice, bob = await sync_to_async(session_cookie)("alice"), await sync_to_async(session_cookie)("bob")
    sender = await session_sockets(alice)
    await sender.send_json_to({"action": "joinRoom", "roomId": "general"})
    assert (await sender.receive_json_from(timeout=WAIT))["type"] == "joined"

    slow = sync_to_async(time.sleep)(1.5)  # Django's one sync thread, busy for 1.5 s
    await sender.send_json_to({"action": "sendMessage", "roomId": "general", "message": "hi", "clientMessageId": "m1"})
    await slow
    frames = [await sender.receive_json_from(timeout=WAIT) for _ in range(2)]
    assert {f["type"] for f in frames} == {"ack", "message"}, frames  # stored after the wait, not refused
    assert backpressure.waits.last_wait >= 1.4

    trips.clear()
    shed = await session_sockets(bob)
    assert await shed.receive_output(timeout=WAIT) == {"type": "websocket.close", "code": 1013}
    assert trips == []  # closed before any work
    user = await get_user_model().objects.aget(username="bob")
    assert await sync_to_async(get_store().connections_for_user)(user_id=str(user.pk), now=timezone.now()) == []

    clock.now += 0.5  # no call has started since
    opened = await session_sockets(bob)
    await opened.send_json_to({"action": "joinRoom", "roomId": "general"})
    joined = await opened.receive_json_from(timeout=WAIT)
    assert joined["type"] == "joined", joined


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(60)
async def test_shedding_off_lets_every_socket_open(
    session_sockets: OpenSocket, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.CHAT_OPEN_SHED_WAIT_SECONDS = 0
    waits = SyncThreadWaits(clock=Clock())
    waits.started(30.0)
    monkeypatch.setattr(backpressure, "waits", waits)
    comm = await session_sockets(await sync_to_async(session_cookie)("alice"))
    await comm.send_json_to({"action": "joinRoom", "roomId": "general"})
    assert (await comm.receive_json_from(timeout=WAIT))["type"] == "joined"
