# ruff: noqa: F811 - the fixtures imported from test_consumer are used as arguments
"""Fan-out once per process and room (chat.fanout), through the real routing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from chat import broadcast, metrics, services
from chat.delivery import SocketDelivery, Step
from chat.events import RoomEvent
from chat.fanout import Offer, RoomFanout
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


def count_rows_read(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the message rows the store's range reads return from now on (one entry per read)."""
    store = get_store()
    original = store.messages_after
    reads: list[int] = []

    def counting(**kwargs: Any) -> Any:
        rows = original(**kwargs)
        reads.append(len(rows))
        return rows

    monkeypatch.setattr(store, "messages_after", counting)
    return reads


async def test_retrying_an_old_message_does_not_make_the_process_read_the_rooms_history(
    connect: Connect, cookie_for: Callable[[str], bytes], room: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 24.3: a retry of an old clientMessageId in a busy room, on a freshly subscribed
    process, costs no store read: the old seq is no baseline for a gap from seq 1."""
    (sender,) = await open_members(connect, cookie_for, 1)
    await join(sender, room)
    first = await send(sender, room, "the first", "old-1")
    await sender.send_json_to({"action": "leaveRoom", "roomId": room})
    assert (await recv(sender))["type"] == "left"  # the process is no longer subscribed
    append = get_store().append_message
    for n in range(2, 1_202):
        await sync_to_async(append)(new=new_message(room, f"m{n}", seq_hint=n))
    await join(sender, room)  # a fresh subscription of the process
    reads = count_rows_read(monkeypatch)
    retry = await send(sender, room, "the first", "old-1", joined=False)
    assert retry["seq"] == first["seq"] == 1  # the original ack: nothing new stored
    after = await send(sender, room, "the next one", "new-1")
    assert after["seq"] == 1_202
    assert sum(reads) == 0, reads


async def test_a_gap_past_the_cap_resyncs_the_sockets_instead_of_reading_it(
    connect: Connect,
    cookie_for: Callable[[str], bytes],
    room: str,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    """Issue 24.3: a lost stretch wider than the replay cap is not read; the socket gets
    `recovered: false` with the latest page, then the room goes on live."""
    settings.CHAT_REPLAY_CAP = 5
    settings.CHAT_REORDER_WINDOW_SECONDS = 0.05
    sender, reader = await open_members(connect, cookie_for, 2)
    await join(reader, room)
    append = get_store().append_message
    for n in range(1, 21):  # stored, their broadcasts lost
        await sync_to_async(append)(new=new_message(room, f"lost {n}", seq_hint=n))
    reads = count_rows_read(monkeypatch)
    await send(sender, room, "after the loss", "c-21", joined=False)
    frame = await recv(reader)
    assert (frame["type"], frame["recovered"], frame["lastSeq"]) == ("joined", False, 21)
    assert frame["messages"][-1]["seq"] == 21
    assert all(rows <= 5 for rows in reads), reads  # never a read wider than the cap
    await send(sender, room, "live again", "c-22", joined=False)
    assert (await recv(reader))["seq"] == 22


class RecordingMember:
    """A socket as the fan-out sees it, with the delivery core deciding, recording what it sends."""

    def __init__(self, room_id: str, cursor: int) -> None:
        self.core = SocketDelivery()
        self.core.join(room_id, cursor)
        self.sent: list[int] = []

    def offer_message(self, event: dict[str, Any], frame: bytes) -> Offer:
        if self.core.receive(event["room_id"], event["seq"]) is Step.SEND:
            self.sent.append(event["seq"])
            return Offer.SENT
        return Offer.SKIPPED

    async def send_text(self, text: str) -> None:
        raise AssertionError("not used")

    async def room_event(self, event: dict[str, Any]) -> None:
        raise AssertionError("the fan-out put every event in order: no socket has a gap")


async def test_reordering_between_two_publishers_reads_nothing_and_counts_no_loss() -> None:
    """Issue 24.4: interleaved deliveries from two publishers, swapped within the reorder
    window, reach every socket in order with no store read and no loss counted."""
    now = [100.0]
    reads: list[tuple[str, int, int]] = []

    async def read_gap(room_id: str, after: int, up_to: int) -> list[Any]:
        reads.append((room_id, after, up_to))
        return []

    fanout = RoomFanout(read_gap=read_gap, window=0.2, clock=lambda: now[0])
    members = [RecordingMember("r", 0) for _ in range(3)]
    for member in members:
        await fanout.join("r", member)
    fanout.baseline("r", 0)
    lost_before = metrics.CHANNEL_LAYER_DROPS.labels(reason="gap")._value.get()
    reordered_before = metrics.EVENTS_REORDERED._value.get()
    for first in range(1, 41, 2):  # publisher A sends the odd seqs, B the even ones
        for seq in (first + 1, first):
            await fanout.dispatch({"type": broadcast.ROOM_EVENT, "room_id": "r", "seq": seq, "text": f"m{seq}"})
            now[0] += 0.05
        await fanout.run_expired()
    assert [member.sent for member in members] == [list(range(1, 41))] * 3
    assert reads == []
    assert metrics.CHANNEL_LAYER_DROPS.labels(reason="gap")._value.get() == lost_before
    assert metrics.EVENTS_REORDERED._value.get() == reordered_before + 20
    for member in members:
        await fanout.leave("r", member)


async def test_a_seq_missing_past_the_window_is_one_read_and_counted_as_loss() -> None:
    """Issue 24.4: a seq that never arrives is read once for the process after the window, and counted as lost."""
    now = [100.0]
    reads: list[tuple[str, int, int]] = []

    async def read_gap(room_id: str, after: int, up_to: int) -> list[Any]:
        reads.append((room_id, after, up_to))
        return [RoomEvent(room_id, seq, {"type": "message", "roomId": room_id, "seq": seq}) for seq in (2, 3)]

    fanout = RoomFanout(read_gap=read_gap, window=0.2, clock=lambda: now[0])
    member = RecordingMember("r", 0)
    await fanout.join("r", member)
    fanout.baseline("r", 0)
    lost_before = metrics.CHANNEL_LAYER_DROPS.labels(reason="gap")._value.get()
    for seq in (1, 4, 5):
        await fanout.dispatch({"type": broadcast.ROOM_EVENT, "room_id": "r", "seq": seq, "text": f"m{seq}"})
    await fanout.run_expired()
    assert (member.sent, reads) == ([1], [])  # still within the window
    now[0] += 0.2
    await fanout.run_expired()
    assert reads == [("r", 1, 3)]
    assert member.sent == [1, 2, 3, 4, 5]
    assert metrics.CHANNEL_LAYER_DROPS.labels(reason="gap")._value.get() == lost_before + 2
    await fanout.leave("r", member)
