"""chat.daphne_adapt.handshake on Twisted's own HTTP channel and transport (no server needed)."""

from __future__ import annotations

from types import SimpleNamespace

from twisted.internet.testing import StringTransport
from twisted.web import http

from chat.daphne_adapt import handshake


def upgraded_connection() -> tuple[StringTransport, http.HTTPChannel]:
    """A connection whose HTTP channel handled an upgrade request that never finishes, as daphne leaves it."""
    transport = StringTransport()
    channel = http.HTTPChannel()
    channel.makeConnection(transport)
    channel.requests.append(http.Request(channel))
    return transport, channel


def test_an_open_socket_lets_go_of_its_upgrade_request() -> None:
    transport, channel = upgraded_connection()
    assert transport.producer is channel  # what daphne leaves behind
    socket = SimpleNamespace(transport=transport)
    assert handshake.release(socket) is True
    assert transport.producer is None
    assert channel.requests == []


def test_a_producer_that_is_not_an_http_channel_is_left_alone() -> None:
    transport = StringTransport()
    other = SimpleNamespace(pauseProducing=lambda: None, resumeProducing=lambda: None, stopProducing=lambda: None)
    transport.registerProducer(other, True)
    assert handshake.release(SimpleNamespace(transport=transport)) is False
    assert transport.producer is other
    assert handshake.release(SimpleNamespace(transport=StringTransport())) is False  # no producer at all
