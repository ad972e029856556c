"""Client frames on real daphne: a read holding one whole text frame is read in one step
(chat.daphne_adapt.inbound), anything else by autobahn, and a client cannot tell which.

Frames are written by a raw client, so each test controls how they reach the server's
reads: one frame per write, two in one write, a frame in two writes, fragments.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Accounts, start_module_server
from tests.faults.rawws import TEXT, Frame, RawSocket, encode_frame
from tests.fixtures.servers import DaphneServer

pytestmark = pytest.mark.timeout(90)

TOKEN = "client-frames-metrics-token-0123456789abcdef"
PING = json.dumps({"action": "ping"}).encode()


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory: pytest.TempPathFactory, migrated_db: Path) -> Iterator[DaphneServer]:
    server = start_module_server(tmp_path_factory, migrated_db, METRICS_TOKEN=TOKEN)
    yield server
    server.stop()


@pytest.fixture
async def raw(chat_server: DaphneServer, accounts: Accounts) -> AsyncIterator[RawSocket]:
    cookie = await asyncio.to_thread(accounts.cookie, "rawley")
    socket = await RawSocket.open(chat_server.port, headers={"Origin": chat_server.origin, "Cookie": cookie})
    yield socket
    socket.abort()


def reads(server: DaphneServer) -> dict[str, float]:
    """chatsite_client_reads_total by way (whole, autobahn)."""
    return {
        dict(labels)["way"]: value
        for (name, labels), value in server.metrics(TOKEN).items()
        if name == "chatsite_client_reads_total"
    }


async def answer(socket: RawSocket) -> dict[str, object]:
    frame = await socket.next_data()
    assert frame is not None and frame.opcode == TEXT, frame
    return frame.json()


async def test_whole_frames_are_read_in_one_step_and_answered(chat_server: DaphneServer, raw: RawSocket) -> None:
    """Ten pings, each written on its own and answered before the next: ten pongs, and the
    server read each of them the short way."""
    before = await asyncio.to_thread(reads, chat_server)
    for _ in range(10):
        await raw.send(TEXT, PING)
        assert await answer(raw) == {"type": "pong"}
    after = await asyncio.to_thread(reads, chat_server)
    assert after["whole"] - before.get("whole", 0) >= 10


async def test_two_frames_in_one_write_are_both_answered_in_order(raw: RawSocket) -> None:
    raw.writer.write(encode_frame(TEXT, PING) + encode_frame(TEXT, b'{"action": "history"}'))
    await raw.writer.drain()
    assert await answer(raw) == {"type": "pong"}
    error = await answer(raw)
    assert (error["type"], error["action"]) == ("error", "history")


async def test_a_frame_in_two_writes_is_answered_once_whole(raw: RawSocket) -> None:
    """The header and the first bytes, then the rest a moment later: autobahn keeps the piece."""
    frame = encode_frame(TEXT, PING)
    raw.writer.write(frame[:9])
    await raw.writer.drain()
    await asyncio.sleep(0.2)
    raw.writer.write(frame[9:])
    await raw.writer.drain()
    assert await answer(raw) == {"type": "pong"}


async def test_a_fragmented_message_between_whole_frames_is_one_message(raw: RawSocket) -> None:
    await raw.send(TEXT, PING)
    assert await answer(raw) == {"type": "pong"}
    await raw.send(TEXT, b'{"action"', fin=False)
    await raw.send(0x0, b': "ping"}')
    assert await answer(raw) == {"type": "pong"}
    await raw.send(TEXT, PING)
    assert await answer(raw) == {"type": "pong"}


async def test_long_multibyte_messages_arrive_exactly(raw: RawSocket, room: str) -> None:
    """Messages across the 16-bit length form and both ways of unmasking are stored as sent."""
    await raw.send_json({"action": "joinRoom", "roomId": room})
    assert (await answer(raw))["type"] == "joined"
    texts = ["é" * 50, "ü✓" * 300, "z" * 3000, "ß" * 1999]  # 100, 1800, 3000, 3998 bytes
    for n, text in enumerate(texts):
        await raw.send_json({"action": "sendMessage", "roomId": room, "message": text, "clientMessageId": f"m{n}"})
    got: dict[str, str] = {}
    while len(got) < len(texts):
        frame = await answer(raw)
        if frame["type"] == "message":
            got[str(frame["clientMessageId"])] = str(frame["message"])
    assert got == {f"m{n}": text for n, text in enumerate(texts)}


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("invalid UTF-8", b'{"action": "ping", "x": "\xff"}'),
        ("a lone surrogate", b'{"action": "ping", "x": "\xed\xa0\x80"}'),
    ],
)
async def test_invalid_utf8_in_a_whole_frame_ends_the_connection_unanswered(
    raw: RawSocket, name: str, payload: bytes
) -> None:
    """autobahn's answer to a text frame that is not UTF-8 (it drops the connection, as it
    fails any: daphne's failByDrop), whichever way the frame was read; never a pong."""
    await raw.send(TEXT, payload)
    frame = await raw.next_data()
    assert frame is None or frame.close_code == 1007, f"{name}: {frame}"


async def test_a_frame_after_the_close_is_not_read(raw: RawSocket) -> None:
    """Once the client has sent its close, a text frame behind it reaches nobody."""
    raw.writer.write(encode_frame(0x8, b"\x03\xe8") + encode_frame(TEXT, PING))
    await raw.writer.drain()
    frame: Frame | None = await raw.next_data()
    assert frame is not None and frame.close_code == 1000
