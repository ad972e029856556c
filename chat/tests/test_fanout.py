# ruff: noqa: F811 - the fixtures imported from test_consumer are used as arguments
"""Fan-out once per process and room (chat.fanout), through the real routing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from chat import broadcast, services
from chat.storage import get_store
from chat.tests.test_consumer import (  # noqa: F401 - fixtures
    Connect,
    connect,
    cookie_for,
    join,
    new_message,
    recv,
    room,
    send,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


async def open_members(connect: Connect, cookie_for: Callable[[str], bytes], count: int) -> list[WebsocketCommunicator]:
    return [await connect(await sync_to_async(cookie_for)(f"member{n}")) for n in range(count)]


def group_members(room_id: str) -> set[str]:
    layer: Any = get_channel_layer()
    return set(layer.groups.get(broadcast.room_group(room_id), {}))


async def test_a_room_costs_one_channel_layer_membership_per_process(
    connect: Connect, cookie_for: Callable[[str], bytes], room: str
) -> None:
    """Three local sockets in a room make one group member (the process), and each gets every message."""
    sockets = await open_members(connect, cookie_for, 3)
    for socket in sockets:
        await join(socket, room)
    assert len(group_members(room)) == 1
    await send(sockets[0], room, "hello all", "c-1")
    for socket in sockets[1:]:
        frame = await recv(socket)
        assert (frame["type"], frame["message"], frame["seq"]) == ("message", "hello all", 1)


async def test_the_last_local_socket_leaving_unsubscribes_the_process(
    connect: Connect, cookie_for: Callable[[str], bytes], room: str
) -> None:
    """The process stays subscribed while any local socket is in the room, and not after the last leaves."""
    first, second = await open_members(connect, cookie_for, 2)
    await join(first, room)
    await join(second, room)
    await first.send_json_to({"action": "leaveRoom", "roomId": room})
    assert (await recv(first))["type"] == "left"
    assert len(group_members(room)) == 1
    await second.send_json_to({"action": "leaveRoom", "roomId": room})
    assert (await recv(second))["type"] == "left"
    assert group_members(room) == set()


async def test_a_lost_broadcast_is_read_from_the_store_once_for_all_local_sockets(
    connect: Connect, cookie_for: Callable[[str], bytes], room: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gap is repaired by one store read for the process, and every socket sees both messages in order."""
    sockets = await open_members(connect, cookie_for, 3)
    for socket in sockets:
        await join(socket, room)
    await send(sockets[0], room, "first", "c-1")
    for socket in sockets[1:]:
        assert (await recv(socket))["seq"] == 1
    reads = 0
    original = services.events_missed

    async def counting(**kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        return await original(**kwargs)

    monkeypatch.setattr(services, "events_missed", counting)
    # Stored, but its broadcast is lost.
    await sync_to_async(get_store().append_message)(new=new_message(room, "lost in transit", seq_hint=2))
    await send(sockets[0], room, "after the loss", "c-3", joined=False)
    for socket in sockets:
        frames = [await recv(socket) for _ in range(2)]
        assert [(f["seq"], f["message"]) for f in frames] == [(2, "lost in transit"), (3, "after the loss")]
    assert reads == 1


async def test_a_lost_removal_is_repaired_from_the_rooms_log_like_a_lost_message(
    connect: Connect, cookie_for: Callable[[str], bytes], room: str
) -> None:
    """A removal stored but never broadcast is read from the store, at its own seq, before the next message."""
    sockets = await open_members(connect, cookie_for, 2)
    for socket in sockets:
        await join(socket, room)
    ack = await send(sockets[0], room, "first", "c-1")
    assert (await recv(sockets[1]))["seq"] == 1
    # Removed in the store, its broadcast lost.
    await sync_to_async(get_store().remove_message)(
        room_id=room,
        message_id=ack["messageId"],
        removal="hidden",
        removed_by="moderator",
        now=services.utcnow(),
        ttl_seconds=3600,
    )
    await send(sockets[0], room, "after the loss", "c-3", joined=False)
    for socket in sockets:
        frames = [await recv(socket) for _ in range(2)]
        assert [(f["type"], f["seq"]) for f in frames] == [("messageRemoved", 2), ("message", 3)]
        assert (frames[0]["messageId"], frames[0]["messageSeq"]) == (ack["messageId"], 1)


def user_groups() -> dict[str, set[str]]:
    layer: Any = get_channel_layer()
    return {name: set(members) for name, members in layer.groups.items() if name.startswith("chat.user.")}


async def test_sockets_have_no_channel_of_their_own(
    connect: Connect, cookie_for: Callable[[str], bytes], room: str
) -> None:
    """Three sockets of one user in a room: the layer holds the process's one channel, in the
    room's group and the user's; when the last socket closes, the user's group is left."""
    cookie = await sync_to_async(cookie_for)("member0")
    sockets = [await connect(cookie) for _ in range(3)]
    for socket in sockets:
        await join(socket, room)
    process = group_members(room)
    assert len(process) == 1
    assert list(user_groups().values()) == [process]
    layer: Any = get_channel_layer()
    assert set(layer.channels) <= process  # no channel per socket
    for socket in sockets:
        await socket.disconnect()
    assert user_groups() == {}
