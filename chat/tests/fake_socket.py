"""A socket for the edge's handlers (chat.commands, chat.socket_events) with no server behind
it: what they send, refuse and close is recorded; the delivery core is the real one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from accounts.identity import Identity
from chat import protocol
from chat.delivery import SocketDelivery
from chat.fanout import Offer


class FakeSocket:
    def __init__(self, identity: Identity | None = None, *, connection_id: str | None = "c1") -> None:
        self.scope: dict[str, Any] = {}
        self.identity = identity
        self.connection_id = connection_id
        self.core = SocketDelivery()
        self.tail_check: asyncio.Task[None] | None = None
        self.disconnected = False
        self.refused = False
        self.frames: list[dict[str, Any]] = []
        self.texts: list[str] = []
        self.closes: list[str] = []  # "refuse", "forbid", with the notice if any
        self.notices: list[dict[str, Any] | None] = []
        self.catch_ups: list[bool] = []
        self.catch_up_gate: asyncio.Event | None = None
        self.catch_up_error: BaseException | None = None
        self.presence_changes = 0

    # what the handlers call

    async def send_frame(self, frame: dict[str, Any]) -> None:
        self.frames.append(frame)

    async def send(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        assert text_data is not None
        self.texts.append(text_data)

    async def refuse(self) -> None:
        self.refused = True
        self.closes.append("refuse")

    async def forbid(self, notice: dict[str, Any] | None = None) -> None:
        self.refused = True
        self.closes.append("forbid")
        self.notices.append(notice)

    async def catch_up(self, *, fresh: bool) -> None:
        self.catch_ups.append(fresh)
        if self.catch_up_gate is not None:
            await self.catch_up_gate.wait()
        if self.catch_up_error is not None:
            raise self.catch_up_error

    @contextlib.asynccontextmanager
    async def delivering(self) -> AsyncIterator[None]:
        yield

    def joined_rooms(self) -> list[str]:
        return self.core.rooms()

    async def presence_rooms_changed(self, joined: str | None = None) -> None:
        self.presence_changes += 1

    async def send_joined(self, room_id: str, result: Any) -> None:
        raise AssertionError("no join in these tests")

    def _identified(self) -> None:
        pass

    async def on_typing(self, command: protocol.Typing) -> None:
        raise AssertionError("not in these tests")

    async def on_presence(self, command: protocol.SetPresence) -> None:
        raise AssertionError("not in these tests")

    # what the fan-out calls (RoomMember); never reached here

    def offer_message(self, event: dict[str, Any], frame: bytes) -> Offer:
        raise AssertionError("no fan-out in these tests")

    async def send_text(self, text: str) -> None:
        raise AssertionError("no fan-out in these tests")

    async def room_event(self, event: dict[str, Any]) -> None:
        raise AssertionError("no fan-out in these tests")
