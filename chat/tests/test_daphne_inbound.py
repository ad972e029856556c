"""chat.daphne_adapt.inbound's reader of whole client frames, against frames an independent
WebSocket implementation (`websockets`) writes as a browser would: masked, any length form."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode

from chat.daphne_adapt import frames, inbound


def client_frame(payload: bytes, opcode: Opcode = Opcode.TEXT, *, fin: bool = True) -> bytes:
    return Frame(opcode, payload, fin=fin).serialize(mask=True, extensions=[])


def read_whole(data: bytes) -> bytes | None:
    start = inbound.whole_text_frame(data)
    return None if start is None else inbound.unmask(data, start)


@pytest.mark.parametrize(
    "length", [0, 1, 3, 4, 5, 125, 126, 127, inbound.INT_UNMASK_MAX, inbound.INT_UNMASK_MAX + 1, 65_535]
)
def test_every_length_up_to_64_kib_reads_back_whole(length: int) -> None:
    """Both sides of the 7/16-bit length forms and of the two ways of unmasking."""
    payload = os.urandom(length)
    assert read_whole(client_frame(payload)) == payload


@given(st.text(max_size=3000))
def test_any_text_reads_back_as_itself(text: str) -> None:
    payload = text.encode("utf-8", "surrogatepass")
    assert read_whole(client_frame(payload)) == payload


@given(st.binary(min_size=1, max_size=300), st.data())
def test_a_frame_cut_short_is_left_to_autobahn(payload: bytes, data: st.DataObject) -> None:
    """A read that ends inside the frame (TCP delivers it in pieces) is not a whole frame."""
    whole = client_frame(payload)
    cut = data.draw(st.integers(min_value=0, max_value=len(whole) - 1))
    assert inbound.whole_text_frame(whole[:cut]) is None


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(client_frame(b'{"action": "ping"}') * 2, id="two frames in one read"),
        pytest.param(client_frame(b'{"action": "ping"}') + b"\x81", id="a frame and the start of the next"),
        pytest.param(client_frame(b'{"action"', fin=False), id="the first fragment of a message"),
        pytest.param(client_frame(b'"}', Opcode.CONT), id="a continuation"),
        pytest.param(client_frame(b'{"action": "ping"}', Opcode.BINARY), id="a binary frame"),
        pytest.param(client_frame(b"", Opcode.PING), id="a ping"),
        pytest.param(client_frame(b"\x03\xe8", Opcode.CLOSE), id="a close"),
        pytest.param(Frame(Opcode.TEXT, b"hi").serialize(mask=False, extensions=[]), id="unmasked"),
        pytest.param(bytes([0xC1]) + client_frame(b"hi")[1:], id="a reserved bit (compression)"),
        pytest.param(client_frame(b"x" * 65_536), id="a 64-bit length"),
        pytest.param(bytes([0x81, 0x80 | 126, 0, 5]) + os.urandom(4) + b"hello", id="a 16-bit length not minimal"),
    ],
)
def test_anything_but_one_whole_small_text_frame_is_left_to_autobahn(data: bytes) -> None:
    """autobahn reads these, with its own checks and close codes."""
    assert inbound.whole_text_frame(data) is None


class Original:
    """A stand-in for daphne's protocol class: records what reaches autobahn's reader and daphne."""

    def __init__(self) -> None:
        self.autobahn_reads: list[bytes] = []
        self.messages: list[tuple[bytes, bool]] = []

    def dataReceived(self, data: bytes) -> None:
        self.autobahn_reads.append(data)

    def onMessage(self, payload: bytes, is_binary: bool) -> None:
        self.messages.append((payload, is_binary))


class OpenSocket(Original):
    """An open socket as autobahn 26.10.2 keeps one, between messages."""

    def __init__(self) -> None:
        from autobahn.websocket.protocol import TrafficStats

        super().__init__()
        self.state, self.current_frame, self.inside_message, self.data = frames.STATE_OPEN, None, False, b""
        self._perMessageCompress = self.trackedTimings = self._listeners = None
        self.logOctets = self.logFrames = False
        self.maxFramePayloadSize, self.maxMessagePayloadSize = 0, 1_000
        self.utf8validateIncoming = True
        self.trafficStats = TrafficStats()
        self.autoPingTimeoutCall, self.autoPingRestartOnAnyTraffic = "a pending timeout", True
        self.ping_timeouts_cancelled = 0

    def _cancelAutoPingTimeoutCall(self) -> None:
        self.ping_timeouts_cancelled += 1


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> type[Original]:
    """install() on a stand-in daphne module, its counters and switch back as they were after."""
    from types import SimpleNamespace

    class Protocol(Original):
        pass

    monkeypatch.setitem(inbound.sys.modules, "daphne.ws_protocol", SimpleNamespace(WebSocketProtocol=Protocol))
    monkeypatch.setattr(inbound, "reads", {"whole": 0, "autobahn": 0})
    monkeypatch.setattr(inbound, "_enabled", True)
    assert inbound.install()
    return Protocol


def test_a_whole_frame_goes_to_daphne_counted_as_autobahn_counts_it(installed: type[Original]) -> None:
    socket = type("Socket", (OpenSocket, installed), {})()
    frame = client_frame("héllo".encode())
    socket.dataReceived(frame)
    assert socket.messages == [("héllo".encode(), False)]
    assert socket.autobahn_reads == []
    stats = socket.trafficStats
    assert (stats.incomingOctetsWireLevel, stats.incomingOctetsAppLevel) == (len(frame), 6)
    assert (stats.incomingWebSocketFrames, stats.incomingWebSocketMessages) == (1, 1)
    assert socket.ping_timeouts_cancelled == 1
    assert inbound.reads == {"whole": 1, "autobahn": 0}


@pytest.mark.parametrize(
    ("change", "data"),
    [
        pytest.param({"maxMessagePayloadSize": 10}, client_frame(b"x" * 11), id="over the message limit"),
        pytest.param({}, client_frame(b"\xff"), id="not UTF-8"),
        pytest.param({"inside_message": True}, client_frame(b"x"), id="mid-message"),
        pytest.param({"state": frames.STATE_OPEN + 1}, client_frame(b"x"), id="not open"),
        pytest.param({"data": b"\x81"}, client_frame(b"x"), id="a piece held"),
    ],
)
def test_what_autobahn_must_judge_reaches_autobahn_untouched(
    installed: type[Original], change: dict[str, object], data: bytes
) -> None:
    socket = type("Socket", (OpenSocket, installed), {})()
    socket.__dict__.update(change)
    socket.dataReceived(data)
    assert socket.autobahn_reads == [data]
    assert socket.messages == []
    assert socket.trafficStats.incomingOctetsWireLevel == 0
    assert inbound.reads == {"whole": 0, "autobahn": 1}


def test_a_changed_autobahn_turns_the_short_way_off_once(installed: type[Original], caplog: Any) -> None:
    """A protocol without an attribute the short way reads: one error for the process, and
    every read, this one included, goes to autobahn's reader."""
    sockets = [installed() for _ in range(3)]
    for socket in sockets:
        socket.state = frames.STATE_OPEN  # type: ignore[attr-defined]
    frame = client_frame(b"hi")
    with caplog.at_level("ERROR", logger="chat.daphne_adapt.inbound"):
        for socket in sockets:
            socket.dataReceived(frame)
    assert [(socket.autobahn_reads, socket.messages) for socket in sockets] == [([frame], [])] * 3
    assert len([r for r in caplog.records if "whole frame reads turned off" in r.getMessage()]) == 1
    assert inbound.reads == {"whole": 0, "autobahn": 3}
