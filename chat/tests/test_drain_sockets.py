"""A stopping process's drain of its sockets (chat.connections.LocalSockets.drain): every open
socket is sent away with 1001 once, those that close on their own meanwhile are left alone, and
those that finish opening during the drain are sent away too. Fake sockets, no server."""

from __future__ import annotations

import pytest

from chat.connections import LocalSockets


class Socket:
    """Closes as a consumer does once told to go away: its disconnect discards it."""

    def __init__(self, registry: LocalSockets, name: str) -> None:
        self.registry = registry
        self.name = name
        self.connection_id: str | None = name
        self.sent_away = 0
        self.then: list[object] = []  # what happens meanwhile, on its go_away

    def joined_rooms(self) -> list[str]:
        return []

    async def go_away(self) -> None:
        self.sent_away += 1
        for act in self.then:
            act()  # type: ignore[operator]
        self.registry.discard(self)  # type: ignore[arg-type]

    async def release(self) -> None:
        self.registry.discard(self)  # type: ignore[arg-type]

    async def catch_up(self, *, fresh: bool) -> None: ...

    def session_key(self) -> str | None:
        return None

    async def end_access(self, close_code: int) -> None: ...


@pytest.mark.timeout(60)
async def test_a_drain_sends_each_socket_away_once_skips_those_gone_and_reaches_those_opened_meanwhile() -> None:
    registry = LocalSockets()
    sockets = [Socket(registry, f"s{n}") for n in range(2000)]
    for socket in sockets:
        registry.sockets[id(socket)] = socket  # type: ignore[assignment]
    late = Socket(registry, "late")
    gone = sockets[1500]
    # While the first is being closed, one more finishes opening and another client leaves by itself.
    sockets[0].then = [lambda: registry.sockets.__setitem__(id(late), late), lambda: registry.discard(gone)]  # type: ignore[arg-type]

    await registry.drain(0.0)

    assert [s.name for s in sockets if s.sent_away != (0 if s is gone else 1)] == []
    assert late.sent_away == 1
    assert registry.sockets == {}
