"""Let go of the HTTP request that opened a WebSocket, once the socket is open.

daphne receives a WebSocket handshake as an HTTP request (Twisted's HTTPChannel and daphne's
WebRequest), then hands the TCP connection to a WebSocket protocol. The HTTP objects stay
behind for the socket's whole life: the channel remains registered as the connection's
producer, and keeps the request (its headers, cookies, body buffer) in its queue. Measured
on 1000 idle sockets that is about 4 KiB each (docs/performance.md), for nothing: the
request never finishes (so the channel's idle timeout stays off and it never pauses the
connection; Twisted's HTTPChannel.pauseProducing does nothing while a request is being
handled), and daphne forgot it at the upgrade (`protocol_disconnected`).

So when a socket opens, the channel is unregistered as the connection's producer and its
request queue emptied; both are garbage then. Only a daphne already imported is patched
(chat.daphne_adapt.install), and only a producer that is an HTTP channel is touched.
"""

from __future__ import annotations

import sys
from typing import Any


def release(protocol: Any) -> bool:
    """Drop the HTTP channel a just-opened WebSocket's connection still holds; True if it did."""
    transport: Any = getattr(protocol, "transport", None)
    producer = getattr(transport, "producer", None)
    if producer is None or producer is protocol or not _is_http_channel(producer):
        return False
    producer.requests.clear()
    transport.unregisterProducer()
    return True


def _is_http_channel(producer: Any) -> bool:
    http: Any = sys.modules.get("twisted.web.http")
    return http is not None and isinstance(producer, http.HTTPChannel)


def install() -> bool:
    """Release the upgrade request of every WebSocket daphne opens from now on (idempotent)."""
    module: Any = sys.modules.get("daphne.ws_protocol")
    if module is None:
        return False
    protocol_class = module.WebSocketProtocol
    if getattr(protocol_class, "chatsite_release_upgrade", False):
        return True
    original = protocol_class.onOpen

    def on_open(protocol: Any) -> Any:
        release(protocol)
        return original(protocol)

    protocol_class.onOpen = on_open
    protocol_class.chatsite_release_upgrade = True
    return True
