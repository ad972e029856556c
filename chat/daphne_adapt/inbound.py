"""A client's frame read in one step when a read holds exactly that frame: the common case.

autobahn 26.10.2 reads every incoming frame through its general state machine: the header,
a C masker built through cffi for each frame, a UTF-8 validator, eight hooks from
onFrameBegin to onMessageEnd, a Deferred for `message` observers that daphne never
registers, and a debug line whose arguments are colour-formatted before the logger drops
them. That is about 230 Python calls for a 50-byte `typing` frame. Every client frame pays
it: each message sent, each markRead, each typing frame, each ping.

Most reads hold exactly one frame that is final, masked, text, uncompressed and shorter than
64 KiB. Such a read is handled here in a few calls. The checks are autobahn's (its size
limits, UTF-8), and so is the bookkeeping (the traffic counters, the auto-ping timeout). The
text goes to daphne's onMessage, as autobahn would hand it. Anything else goes autobahn's way
unchanged: a partial frame, two frames in one read, fragments, control and binary frames, a
frame over a size limit or not UTF-8 (autobahn then closes with its own code), a socket not
open, compression, observers, frame or octet logging.

Figures in docs/performance.md, "A client frame read in one step".
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any, Final

from chat.daphne_adapt.frames import STATE_OPEN

log = logging.getLogger(__name__)

# Up to here one integer XOR unmasks quicker than setting up autobahn's C masker through
# cffi (measured: even at about 1.5 KiB); past it, the C loop wins.
INT_UNMASK_MAX: Final = 1024

# Reads of open and opening WebSockets, by the way they were read (chat.metrics shows them).
reads: dict[str, int] = {"whole": 0, "autobahn": 0}
_enabled = True  # off for good, with one error, if autobahn's protocol lacks what the short way reads


def whole_text_frame(data: bytes) -> int | None:
    """Where the payload starts when `data` is exactly one final, masked, uncompressed text
    frame with a 7- or 16-bit length in minimal form; None for anything else."""
    size = len(data)
    if size < 6 or data[0] != 0x81:  # FIN, no RSV bit, opcode 1 (text)
        return None
    second = data[1]
    if not second & 0x80:  # unmasked: autobahn refuses it
        return None
    length = second & 0x7F
    if length < 126:
        start = 6
    elif length == 126:
        if size < 8:
            return None
        length = (data[2] << 8) | data[3]
        if length < 126:  # not the minimal form: autobahn refuses it
            return None
        start = 8
    else:
        return None  # a 64-bit length (64 KiB and more): autobahn's way
    return start if size == start + length else None


def unmask(data: bytes, start: int) -> bytes:
    """The payload of the frame `whole_text_frame` accepted, unmasked."""
    key = data[start - 4 : start]
    payload = data[start:]
    length = len(payload)
    if length > INT_UNMASK_MAX:
        masking: Any = importlib.import_module("autobahn.websocket.xormasker")
        return bytes(masking.create_xor_masker(key, length).process(payload))
    keys = (key * ((length >> 2) + 1))[:length]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(keys, "little")).to_bytes(length, "little")


def read_whole(protocol: Any, data: bytes) -> bytes | None:
    """The text of `data` when it is one whole text frame on an open socket, counted as
    autobahn counts a message it reads (its traffic counters, the auto-ping's timeout); None,
    with nothing changed, when autobahn must read it."""
    if (
        protocol.state != STATE_OPEN
        or protocol.current_frame is not None
        or protocol.inside_message
        or protocol.data
        or protocol._perMessageCompress is not None
        or protocol.logOctets
        or protocol.logFrames
        or protocol.trackedTimings
        or protocol._listeners is not None
    ):
        return None
    start = whole_text_frame(data)
    if start is None:
        return None
    length = len(data) - start
    if (protocol.maxFramePayloadSize and length > protocol.maxFramePayloadSize) or (
        protocol.maxMessagePayloadSize and length > protocol.maxMessagePayloadSize
    ):
        return None  # autobahn closes with 1009
    payload = unmask(data, start)
    if protocol.utf8validateIncoming:
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError:
            return None  # autobahn closes with 1007
    stats = protocol.trafficStats
    stats.incomingOctetsWireLevel += len(data)
    stats.incomingOctetsWebSocketLevel += length
    stats.incomingOctetsAppLevel += length
    stats.incomingWebSocketFrames += 1
    stats.incomingWebSocketMessages += 1
    if protocol.autoPingTimeoutCall and protocol.autoPingRestartOnAnyTraffic:
        protocol._cancelAutoPingTimeoutCall()
    return payload


def install() -> bool:
    """Read whole text frames in one step on every daphne WebSocket (idempotent).

    Returns whether it is installed: not when daphne is not imported. An autobahn whose
    protocol lacks an attribute the short way reads turns it off at that read, with one error
    for the process; from then on every read goes autobahn's way."""
    module: Any = sys.modules.get("daphne.ws_protocol")
    if module is None:
        return False
    protocol_class = module.WebSocketProtocol
    if getattr(protocol_class, "chatsite_whole_reads", False):
        return True
    from autobahn.websocket.protocol import WebSocketProtocol

    if WebSocketProtocol.STATE_OPEN != STATE_OPEN:  # pragma: no cover - an autobahn that renumbered
        return False
    original = protocol_class.dataReceived

    def data_received(protocol: Any, data: bytes) -> None:
        global _enabled
        if _enabled:
            try:
                payload = read_whole(protocol, data)
            except AttributeError as missing:
                _enabled = False
                payload = None
                log.error("whole frame reads turned off: autobahn's protocol has changed (%s)", missing)
            if payload is not None:
                reads["whole"] += 1
                protocol.onMessage(payload, False)  # daphne's: the message to the application
                return
        reads["autobahn"] += 1
        original(protocol, data)

    protocol_class.dataReceived = data_received
    protocol_class.chatsite_whole_reads = True
    return True
