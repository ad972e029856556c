"""chat.daphne_adapt.frames' frames, read back by an independent WebSocket implementation (`websockets`)."""

from __future__ import annotations

from collections.abc import Generator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from chat.daphne_adapt import frames


def parse_server_frame(data: bytes) -> tuple[Frame, bytes]:
    """Parse one frame as a client must (a server's frames are unmasked); return it and what is left over."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser: Generator[None, None, Frame] = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
    else:
        raise AssertionError("the frame is incomplete")
    return frame, bytes(reader.buffer)


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65_535, 65_536, 200_000])
def test_every_length_form_reads_back_whole(length: int) -> None:
    """7-bit, 16-bit and 64-bit payload lengths, at and around each boundary."""
    text = "a" * length
    frame, rest = parse_server_frame(frames.text_frame(text))
    assert (frame.opcode, frame.fin, frame.rsv1, frame.rsv2, frame.rsv3) == (Opcode.TEXT, True, False, False, False)
    assert frame.data.decode("utf-8") == text
    assert rest == b""


@given(st.text())
def test_any_text_reads_back_as_itself(text: str) -> None:
    """The length counts UTF-8 bytes, not characters: multi-byte text round-trips exactly."""
    frame, rest = parse_server_frame(frames.text_frame(text))
    assert frame.data.decode("utf-8") == text
    assert rest == b""


def test_no_writer_outside_daphne() -> None:
    """A scope from another server (or the test communicator) has no writer: frames take the ASGI way."""
    assert frames.writer({"type": "websocket"}) is None
    assert frames.writer({"type": "websocket", "extensions": {"websocket.http.response": {}}}) is None
    assert frames.writer({"type": "websocket", "extensions": {frames.EXTENSION: "not a writer"}}) is None
