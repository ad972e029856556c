"""Give a WebSocket's close handshake time to finish, so the client learns why it was closed.

When the server closes a socket (4401, 4403, 4429, 1001), autobahn sends the close frame and
waits `closeHandshakeTimeout` for the client's answer; past it, it aborts the connection
with a TCP reset (WebSocketProtocol.onCloseHandshakeTimeout, `dropConnection(abort=True)`).
The default is 1 s, and daphne exposes no option for it. Under load, or for a client on a
slow link, the close frame is still queued behind earlier frames (in Twisted's buffer or
the kernel's send queue) when the reset discards it: the client sees 1006 instead of the
code that tells it what to do (sign in again, stop reconnecting, back off; issue 24).

`install` sets CHAT_CLOSE_HANDSHAKE_TIMEOUT on every WebSocket factory daphne builds from
now on. Only a daphne already imported is patched (as chat.wire and chat.handshake do), and
a daphne or autobahn without the hooks this needs is reported, not silently skipped.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.conf import settings

log = logging.getLogger(__name__)


def install() -> bool:
    """Apply the close-handshake timeout to daphne's WebSocket factories (idempotent)."""
    module: Any = sys.modules.get("daphne.ws_protocol")
    if module is None:
        return False
    factory_class = module.WebSocketFactory
    if getattr(factory_class, "chatsite_close_timeout", False):
        return True
    if not hasattr(factory_class, "setProtocolOptions"):  # pragma: no cover - an autobahn without it
        log.error("close handshake timeout not applied: daphne's WebSocketFactory has no setProtocolOptions")
        return False
    original = factory_class.__init__

    def __init__(factory: Any, *args: Any, **kwargs: Any) -> None:
        original(factory, *args, **kwargs)
        factory.setProtocolOptions(closeHandshakeTimeout=settings.CHAT_CLOSE_HANDSHAKE_TIMEOUT)

    factory_class.__init__ = __init__
    factory_class.chatsite_close_timeout = True
    return True
