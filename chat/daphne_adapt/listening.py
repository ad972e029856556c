"""A listen backlog for daphne's sockets that a reconnect storm does not overflow.

Twisted listens with a backlog of 50 (`twisted.internet.tcp.Port`), and daphne's `-b`/`-p`
offer no way to ask for more. When a process restarts, its sockets reconnect to the others
within a second or two: in `bench.storm` 2,500 handshakes reached one process at once. The
kernel's accept queue of 50 overflowed (its ListenOverflows counter stood at 127,978 after
an evening of storms, and did not move in four more once the backlog was raised). A dropped
SYN is sent again after 1 s, and a connection whose last ACK arrived while the queue was
full stayed half-open on the server while the balancer, which thought it open, waited for
the answer to its request: HAProxy answered 504 after its 60 s server timeout, in about a
third of the storms, and those sockets came back a minute late (docs/performance.md, "A
socket's open written out, opens a few at a time, and a listen backlog").

Here each of daphne's listening sockets is given BACKLOG once it listens (listen() again on
a listening socket sets its backlog; the kernel caps it at net.core.somaxconn, 4096 by
default since Linux 5.4). The queue only holds connections the kernel has completed; daphne
accepts them as fast as before.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Final

log = logging.getLogger(__name__)

BACKLOG: Final = 4096


def install() -> bool:
    """Give every port daphne listens on BACKLOG as it starts listening (idempotent)."""
    module: Any = sys.modules.get("daphne.server")
    server: Any = getattr(module, "Server", None)
    original: Any = getattr(server, "listen_success", None)
    if original is None:
        return False
    if getattr(original, "chatsite_backlog", False):
        return True

    def listen_success(self: Any, port: Any) -> None:
        original(self, port)
        listening = getattr(port, "socket", None)
        try:
            listening.listen(BACKLOG)  # type: ignore[union-attr]
        except (AttributeError, OSError):
            log.exception("could not set the listen backlog of %r: it stays Twisted's 50", port)

    listen_success.chatsite_backlog = True  # type: ignore[attr-defined]
    server.listen_success = listen_success
    return True
