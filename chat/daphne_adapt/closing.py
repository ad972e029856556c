"""Close codes and shutdown: how a daphne process closes its sockets.

daphne 4.2.3 answers SIGTERM by cancelling every application instance in a "before
shutdown" trigger, then drops the TCP connections without a close frame (clients see 1006).
That trigger also fails outright (KeyError) while any HTTP connection whose response is done
is still open, a keep-alive or a balancer's health check, and then cancels nothing at all.
So Chatsite adds its own trigger, which closes every socket with 1001 and makes the
shutdown wait until they have gone (chat.connections.begin_drain does the closing).

daphne hands an ASGI websocket.close to autobahn's public sendClose, which accepts only
1000 and 3000-4999 and raises on anything else: the consumer's close(1001) would crash
instead of closing. autobahn's sendCloseFrame sends any code; the ones allowed here are
valid ones.

When the server closes a socket (4401, 4403, 4429, 1001), autobahn sends the close frame and
waits `closeHandshakeTimeout` for the client's answer; past it, it aborts the connection
with a TCP reset (WebSocketProtocol.onCloseHandshakeTimeout, `dropConnection(abort=True)`).
The default is 1 s, and daphne exposes no option for it. Under load, or for a client on a
slow link, the close frame is still queued behind earlier frames (in Twisted's buffer or
the kernel's send queue) when the reset discards it: the client sees 1006 instead of the
code that tells it what to do (sign in again, stop reconnecting, back off; issue 24). So
`close_handshake_timeout` sets CHAT_CLOSE_HANDSHAKE_TIMEOUT on every WebSocket factory
daphne builds from now on.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from typing import Any

from django.conf import settings

log = logging.getLogger(__name__)

# Close codes RFC 6455 (7.4.1) lets a server send that Chatsite uses: 1001 going away,
# 1011 internal error, 1012 service restart, 1013 try again later.
SERVER_CLOSE_CODES = frozenset({1001, 1011, 1012, 1013})

_shutdown_hooked = False


def allow_server_close_codes() -> bool:
    """Let daphne send 1001/1011/1012/1013 when the application closes with them."""
    module: Any = sys.modules.get("daphne.ws_protocol")
    if module is None:
        return False
    protocol_class = module.WebSocketProtocol
    if getattr(protocol_class, "chatsite_close_codes", False):
        return True
    if not hasattr(protocol_class, "sendCloseFrame"):  # pragma: no cover - an autobahn without it
        return False
    original = protocol_class.serverClose

    def server_close(protocol: Any, code: int | None = None) -> None:
        if code in SERVER_CLOSE_CODES:
            protocol.sendCloseFrame(code=code, isReply=False)
        else:
            original(protocol, code)

    protocol_class.serverClose = server_close
    protocol_class.chatsite_close_codes = True
    return True


def drain_on_shutdown(on_shutdown: Callable[[], asyncio.Future[Any] | None]) -> bool:
    """Run `on_shutdown` in Twisted's "before shutdown" phase; the shutdown waits for the
    future it returns. Importing the reactor here when daphne has not would install the
    wrong one, so this only hooks a reactor already there."""
    global _shutdown_hooked
    if _shutdown_hooked:
        return True
    reactor: Any = sys.modules.get("twisted.internet.reactor")
    if reactor is None:
        return False
    from twisted.internet.defer import Deferred

    def trigger() -> Any:
        future = on_shutdown()
        return None if future is None else Deferred.fromFuture(future)

    reactor.addSystemEventTrigger("before", "shutdown", trigger)
    _shutdown_hooked = True
    return True


def after_shutdown(on_stopped: Callable[[], None]) -> bool:
    """Run `on_stopped` in Twisted's "after shutdown" phase: the event loop has stopped and will
    not run again, and Python's exit comes next. Only a reactor daphne installed is hooked."""
    reactor: Any = sys.modules.get("twisted.internet.reactor")
    if reactor is None:
        return False
    reactor.addSystemEventTrigger("after", "shutdown", on_stopped)
    return True


def close_handshake_timeout() -> bool:
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
