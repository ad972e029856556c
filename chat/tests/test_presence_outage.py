"""Presence when Redis stops answering: chat goes on, and the outage is told once.

In a reconnect storm the stopping process closed thousands of sockets while its Redis calls
timed out: every presence update already in flight failed, and each wrote a warning with its
traceback (1,957 in one stop, on an event loop already behind; docs/performance.md).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from chat import presence
from chat.presence_rules import ACTIVE, CLOSED


class Socket:
    presence_hidden = False
    last_active = 0.0

    def __init__(self, connection_id: str) -> None:
        self.connection_id = connection_id
        self.presence_state = ACTIVE

    def presence_user(self) -> str | None:
        return "41"

    def joined_rooms(self) -> list[str]:
        return ["general"]


class StalledRedis:
    """Presence calls hang until Redis is declared gone; then every one fails."""

    def __init__(self) -> None:
        self.gone = asyncio.Event()
        self.calls = 0

    async def update(self, **_: Any) -> None:
        self.calls += 1
        await self.gone.wait()
        raise ConnectionError("Timeout connecting to server")


async def test_an_outage_is_logged_once_with_its_traceback_not_once_per_call_in_flight(
    caplog: pytest.LogCaptureFixture,
) -> None:
    redis = StalledRedis()
    local = presence.LocalPresence(redis)  # type: ignore[arg-type]
    closing = [asyncio.create_task(local.report(Socket(f"c{n}"), CLOSED)) for n in range(50)]
    while redis.calls < 50:  # every close has its call in flight
        await asyncio.sleep(0)
    with caplog.at_level(logging.DEBUG, logger="chat.presence"):
        redis.gone.set()
        await asyncio.gather(*closing)  # none raises: chat goes on without presence
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1 and warned[0].exc_info is not None, warned
    assert len([r for r in caplog.records if r.levelno == logging.DEBUG]) == 49
    assert not local.available()

    await local.report(Socket("late"), CLOSED)  # left alone meanwhile: Redis is not called
    assert redis.calls == 50

    caplog.clear()
    local.down_until = 0.0  # the pause is over, and Redis still fails: a new outage, told again
    with caplog.at_level(logging.WARNING, logger="chat.presence"):
        await local.report(Socket("next"), CLOSED)
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
