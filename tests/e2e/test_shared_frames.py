"""Room messages framed once and written to every member's socket (chat.daphne_adapt.frames), on real daphne.

The fan-out hands one ready-made frame to each socket and writes it past daphne and autobahn
(straight to the kernel when nothing waits in Twisted). These tests hold it to what a client
sees: every frame is a valid, unmasked text frame a strict client (`websockets`) accepts, in
seq order, each once — also for a client that stops reading for a while, whose frames queue
in Twisted behind the part the kernel took — and the metrics show the shared path was taken.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Accounts, Connect, start_module_server
from tests.faults.rawws import TEXT, RawSocket
from tests.fixtures.servers import DaphneServer

pytestmark = pytest.mark.timeout(120)

TOKEN = "shared-frames-metrics-token-0123456789abcdef"
MAX_MESSAGE = 60_000


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory: pytest.TempPathFactory, migrated_db: Path) -> Iterator[DaphneServer]:
    """The module's daphne (conftest's, plus a metrics token, and messages up to 60,000 characters
    so a few of them outgrow what the kernel buffers for a socket: 4 MiB at most here)."""
    server = start_module_server(
        tmp_path_factory, migrated_db, METRICS_TOKEN=TOKEN, CHAT_MAX_MESSAGE_LENGTH=str(MAX_MESSAGE)
    )
    yield server
    server.stop()


def metric(server: DaphneServer, name: str) -> float:
    return server.metrics(TOKEN)[(name, frozenset())]


async def test_every_member_gets_the_shared_frame_in_order(
    chat_server: DaphneServer, connect: Connect, room: str
) -> None:
    """6 members, 3 senders, 30 messages: each member has seqs 1..30 once, in order, and all 180
    deliveries were the fan-out's shared frames (none framed per socket)."""
    members = [await connect(name) for name in ("alice", "bob", "carol", "dave", "erin", "frank")]
    for member in members:
        await member.join(room)
    before = await asyncio.to_thread(metric, chat_server, "chatsite_frames_shared_total")
    texts = [f"message {n} " + "é✓" * n for n in range(30)]  # multi-byte text, lengths across 125
    for n, text in enumerate(texts):
        ack = await members[n % 3].send_message(room, text)
        assert ack["type"] == "ack"
    for member in members:
        log = await member.wait_for_seq(room, 30)
        assert log.seqs == list(range(1, 31))
        assert log.texts == texts
        assert (log.duplicates, log.gaps, log.out_of_order) == ([], [], [])
    after = await asyncio.to_thread(metric, chat_server, "chatsite_frames_shared_total")
    assert after - before == 6 * 30


async def test_long_messages_cross_the_16_bit_length_form(connect: Connect, room: str) -> None:
    """Frames of 126 bytes and up carry a 16-bit length; a strict client decodes them whole."""
    sender, reader = await connect("alice"), await connect("bob")
    await sender.join(room)
    await reader.join(room)
    texts = ["x" * 100, "y" * 2000, "z" * 3900, "ü" * 1999]
    for text in texts:
        await sender.send_message(room, text)
    log = await reader.wait_for_seq(room, len(texts))
    assert log.texts == texts


async def test_a_reader_that_pauses_gets_every_frame_whole_and_in_order(
    chat_server: DaphneServer, accounts: Accounts, connect: Connect, room: str
) -> None:
    """A client that stops reading while 120 messages of 50 KB go out (6 MB: past the most the
    kernel holds for a socket, so the rest waits in Twisted behind a partly written frame; under
    the 8 MiB send-buffer bound) then reads: every frame is whole, a final unmasked text frame,
    and the messages come once each in seq order."""
    cookie = await asyncio.to_thread(accounts.cookie, "paused")
    paused = await RawSocket.open(
        chat_server.port, headers={"Origin": chat_server.origin, "Cookie": cookie}, receive_buffer=4096
    )
    try:
        await paused.send_json({"action": "joinRoom", "roomId": room})
        joined = await paused.next_data()
        assert joined is not None and joined.json()["type"] == "joined"
        sender = await connect("alice")
        await sender.join(room)
        body = "m" * 50_000
        for n in range(120):  # bounded: 6 MB in all
            assert (await sender.send_message(room, f"{n} {body}"))["type"] == "ack"
        seqs = []
        while len(seqs) < 120:
            raw = await paused.next_data()
            assert raw is not None and (raw.opcode, raw.fin, raw.masked) == (TEXT, True, False), raw
            frame = raw.json()
            if frame["type"] == "message":
                assert frame["message"] == f"{len(seqs)} {body}"
                seqs.append(frame["seq"])
        assert seqs == list(range(1, 121))
    finally:
        paused.abort()


def test_daphne_runs_with_no_adaptation_off(chat_server: DaphneServer) -> None:
    """chat.daphne_adapt, installed once from chatsite.asgi on the checked versions, reports no
    adaptation that could not apply or turned itself off (each says so at WARNING or above)."""
    log = chat_server.log()
    assert "WSCONNECT" in log  # the tests above ran on this server
    for trouble in ("could not be applied", "shared frames turned off", "send-buffer bound off", "Traceback"):
        assert trouble not in log, log[-2000:]
