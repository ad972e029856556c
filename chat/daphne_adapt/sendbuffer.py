"""A client that stops reading cannot make a daphne process buffer without bound.

daphne hands every outgoing frame to autobahn, which writes it straight into Twisted's TCP
transport; the transport buffers whatever the kernel will not take. Nobody registers a
producer, so nothing pushes back: a socket whose client stopped reading (a frozen tab, a
stalled mobile link, a client that only writes) holds every frame its rooms carry, and the
process grows until it dies, taking every other socket with it.

So before each frame daphne sends, Chatsite checks how many bytes that socket still holds
unsent (Twisted's buffer and the kernel's queue). Past CHAT_MAX_SEND_BUFFER_BYTES the TCP
connection is aborted instead: a close frame would only queue behind the backlog the client
is not reading. The client sees 1006,
reconnects and resumes from its last seq; every other socket is untouched. The process's
memory per socket is bounded by the limit plus the kernel's socket buffers.

Room messages written by the fan-out's shared frames (chat.daphne_adapt.frames) skip
daphne's send, so they check the same bound themselves, once per eighth of the limit written.
The bound never turns itself off silently: a transport it cannot measure is logged, once.
"""

from __future__ import annotations

import logging
import struct
import sys
from typing import Any

try:
    import fcntl
    import termios
except ImportError:  # not on Windows
    fcntl = termios = None  # type: ignore[assignment]

from django.conf import settings

log = logging.getLogger(__name__)

# Linux's SIOCOUTQ is TIOCOUTQ on a socket: the bytes its peer has not acknowledged.
_OUTQ: int | None = getattr(termios, "TIOCOUTQ", None) if sys.platform == "linux" else None


def pending_bytes(transport: Any) -> int | None:
    """Bytes sent to this peer and not yet taken by it (None: not a Twisted TCP transport).

    That is what Twisted buffers plus what the kernel's send queue holds unacknowledged
    (Linux's SIOCOUTQ). The kernel counts: it grows a socket's send buffer by itself, to
    megabytes on a fast link (on loopback at once), before Twisted buffers a byte.
    """
    for candidate in (transport, getattr(transport, "transport", None)):  # TLS wraps the TCP transport
        data = getattr(candidate, "dataBuffer", None)
        temp = getattr(candidate, "_tempDataLen", None)
        if isinstance(data, bytes | bytearray | memoryview) and isinstance(temp, int):
            return len(data) - int(getattr(candidate, "offset", 0)) + temp + _kernel_queue(candidate)
    return None


def _kernel_queue(transport: Any) -> int:
    """Bytes in the socket's kernel send queue (0 where the platform cannot say)."""
    if _OUTQ is None:
        return 0
    try:
        fileno = transport.getHandle().fileno()
        return int(struct.unpack("i", fcntl.ioctl(fileno, _OUTQ, b"\0\0\0\0"))[0])
    except (AttributeError, OSError, ValueError):
        return 0


def over_limit(protocol: Any) -> bool:
    """True when a daphne WebSocket's unsent bytes exceed the limit; it is then dropped (once)."""
    if getattr(protocol, "chatsite_dropped", False):
        return True
    limit = settings.CHAT_MAX_SEND_BUFFER_BYTES
    transport = getattr(protocol, "transport", None)
    pending = pending_bytes(transport)
    if pending is None:
        _cannot_measure(transport)
        return False
    if pending <= limit:
        return False
    protocol.chatsite_dropped = True
    client = getattr(protocol, "client_addr", None)
    log.warning(
        "slow reader dropped: %d bytes unsent (limit %d) client=%s",
        pending,
        limit,
        f"{client[0]}:{client[1]}" if client else "-",
    )
    protocol.dropConnection(abort=True)
    return True


_unmeasured: set[str] = set()  # transport types already reported as not measurable


def _cannot_measure(transport: Any) -> None:
    """Say (once per transport type) that a socket's send buffer cannot be bounded."""
    kind = type(transport).__qualname__
    if transport is not None and kind not in _unmeasured:
        _unmeasured.add(kind)
        log.error("send-buffer bound off for %s transports: Twisted's buffer attributes are not there", kind)


def install() -> bool:
    """Bound every socket's send buffer in this daphne process (idempotent; False elsewhere).

    Only a daphne already imported is patched (chat.daphne_adapt.install): tests that drive
    the consumer in-process have no transport to bound.
    """
    module: Any = sys.modules.get("daphne.ws_protocol")
    if module is None:
        return False
    if getattr(module.WebSocketProtocol, "chatsite_send_bound", False):
        return True
    original = module.WebSocketProtocol.serverSend

    def server_send(protocol: Any, content: Any, binary: bool = False) -> None:
        if not over_limit(protocol):  # checked before the frame: one large frame alone never trips it
            original(protocol, content, binary)

    module.WebSocketProtocol.serverSend = server_send
    module.WebSocketProtocol.chatsite_send_bound = True
    return True
