"""Frame a room message once and write the same bytes to every local socket.

daphne turns each ASGI `websocket.send` into an autobahn `sendMessage`: encode the text,
check its size, build a frame header, count traffic, then write. For a room message that
is the same work, with the same result, for every member of the room: a 1000-member room
paid it 1000 times per message (docs/performance.md). Here the fan-out (chat.fanout)
frames the message once (`text_frame`) and hands the bytes to each socket's `FrameWriter`,
which writes them straight to that socket's transport.

A writer only takes the short way when nothing about its socket needs autobahn: the
socket is open (not connecting, not closing), no compression extension was negotiated
(daphne negotiates none), autobahn holds no queued frames of its own (order), and the
socket is under the send-buffer bound (chat.daphne_adapt.sendbuffer). Otherwise it says no and the
frame goes the ordinary ASGI way, which handles every case.

daphne has no ASGI extension that exposes a socket's transport, so `install` adds one:
it puts a `FrameWriter` for the socket's protocol into the WebSocket scope's
`extensions` under `EXTENSION` when daphne creates the application (installed by
chat.daphne_adapt, for the daphne, Twisted and autobahn versions it was checked against). Anything else that
serves Chatsite (the test communicator, another ASGI server) simply has no writer there,
and every frame takes the ASGI path.
"""

from __future__ import annotations

import logging
import struct
import sys
from typing import Any, Final

from django.conf import settings

from chat.daphne_adapt import sendbuffer

log = logging.getLogger(__name__)

EXTENSION: Final = "chatsite.frame_writer"

# RFC 6455 5.2: FIN and the text opcode; a server's frames are never masked.
_FIN_TEXT: Final = 0x81


def text_frame(text: str) -> bytes:
    """One complete, unmasked WebSocket text frame carrying `text` (a server's frame)."""
    payload = text.encode("utf-8")
    length = len(payload)
    if length <= 125:
        header = struct.pack("!BB", _FIN_TEXT, length)
    elif length <= 0xFFFF:
        header = struct.pack("!BBH", _FIN_TEXT, 126, length)
    else:
        header = struct.pack("!BBQ", _FIN_TEXT, 127, length)
    return header + payload


class FrameWriter:
    """Writes ready-made frames to one daphne WebSocket, when that is safe."""

    __slots__ = ("protocol", "unchecked")

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol
        # Bytes written the short way since the send-buffer bound was last checked.
        self.unchecked = 0

    def write(self, frame: bytes) -> bool:
        """Write `frame` (from `text_frame`); False: not now, send it the ASGI way.

        True also when the socket was just dropped for holding too much unsent data: the
        ASGI way would drop this frame the same, and the client resumes by seq. An internal
        of autobahn or Twisted that is not what this was written for turns the short way off
        for the process, with one error logged, instead of an exception per socket per message.
        """
        if not _enabled:
            return False
        try:
            return self._write(frame)
        except AttributeError:
            _disable("an autobahn or Twisted attribute the shared frames rely on is missing")
            return False

    def _write(self, frame: bytes) -> bool:
        protocol = self.protocol
        if (
            protocol.state != STATE_OPEN
            or protocol._perMessageCompress is not None
            or protocol.send_queue
            or protocol.maskServerFrames
            or protocol.autoFragmentSize
        ):
            return False
        # The bound (chat.daphne_adapt.sendbuffer) costs a system call (the kernel's queue counts), so it is
        # checked once per CHECK_FRACTION of it written, not per frame: a socket that stops
        # reading is dropped at most that much past the limit, as it would be the ASGI way.
        self.unchecked += len(frame)
        if self.unchecked >= _check_every:
            self.unchecked = 0
            if sendbuffer.over_limit(protocol):
                return True
        transport = protocol.transport
        if _idle_tcp(transport):
            # Nothing waits in Twisted for this socket: hand the frame to the kernel now, as
            # an asyncio transport would, instead of queueing it for the reactor's next turn
            # (which registers the socket for writing and unregisters it after: two epoll
            # calls and a loop turn per socket per message). What the kernel does not take
            # now goes to Twisted's queue below, in order.
            try:
                written = transport.socket.send(frame)
            except (BlockingIOError, InterruptedError):
                written = 0
            except OSError:
                written = 0  # a dead peer: Twisted's own write below finds out and closes
            if written == len(frame):
                return True
            frame = frame[written:]
        transport.write(frame)
        return True


STATE_OPEN: Final = 3  # autobahn's WebSocketProtocol.STATE_OPEN, checked in install()
_tcp_server: type | None = None  # twisted.internet.tcp.Server, once installed
_enabled = True  # False once an internal turned out not to be what this was written for
CHECK_FRACTION: Final = 8
_check_every = 0  # CHAT_MAX_SEND_BUFFER_BYTES // CHECK_FRACTION, read by install()


def _idle_tcp(transport: Any) -> bool:
    """A plain Twisted TCP connection, open, with nothing buffered to send."""
    kind: Any = type(transport)  # (not narrowed by mypy: a Twisted transport is untyped)
    return (
        kind is _tcp_server
        and not transport._tempDataLen
        and len(transport.dataBuffer) == transport.offset
        and transport.connected
        and not transport.disconnecting
        and not transport._writeDisconnected
        and not transport.TLS
    )


def _disable(reason: str) -> None:
    """Turn the short way off for this process, saying so once (every frame then goes the ASGI way)."""
    global _enabled
    if _enabled:
        _enabled = False
        log.error("shared frames turned off: %s; every frame now goes through daphne", reason, exc_info=True)


def writer(scope: Any) -> FrameWriter | None:
    """The socket's writer, when daphne (with `install`) serves it."""
    extensions = scope.get("extensions")
    found = extensions.get(EXTENSION) if isinstance(extensions, dict) else None
    return found if isinstance(found, FrameWriter) else None


def install() -> bool:
    """Give every WebSocket daphne opens from now on a FrameWriter (idempotent).

    Only a daphne already imported is patched (chat.daphne_adapt.install): importing it here
    would drag Twisted into processes that never serve. Returns whether it is installed.
    """
    server_module: Any = sys.modules.get("daphne.server")
    if server_module is None:
        return False
    server_class = server_module.Server
    if getattr(server_class, "chatsite_frame_writer", False):
        return True
    from autobahn.websocket.protocol import WebSocketProtocol
    from twisted.internet import tcp

    global _tcp_server, _check_every
    if WebSocketProtocol.STATE_OPEN != STATE_OPEN:  # pragma: no cover - an autobahn that renumbered
        return False
    if not all(hasattr(tcp.Server, name) for name in ("dataBuffer", "offset", "TLS")):
        return False  # pragma: no cover - a Twisted whose transport is not what _idle_tcp reads
    _tcp_server = tcp.Server
    _check_every = settings.CHAT_MAX_SEND_BUFFER_BYTES // CHECK_FRACTION
    original = server_class.create_application

    def create_application(server: Any, protocol: Any, scope: dict[str, Any]) -> Any:
        if scope.get("type") == "websocket":
            scope.setdefault("extensions", {})[EXTENSION] = FrameWriter(protocol)
        return original(server, protocol, scope)

    server_class.create_application = create_application
    server_class.chatsite_frame_writer = True
    return True
