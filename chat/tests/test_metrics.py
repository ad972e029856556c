"""Prometheus metrics: what the chat counts, and who may read /metrics."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client
from prometheus_client import REGISTRY
from pytest_django.fixtures import Settings

from chat import metrics
from chatsite.asgi import application

pytestmark = pytest.mark.timeout(60)

TOKEN = "m" * 40
WAIT = 5.0
Connect = Callable[[bytes], Awaitable[WebsocketCommunicator]]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Counts:
    """Sample values before a test, to assert on what the test itself added."""

    def __init__(self, *names: tuple[str, dict[str, str]]) -> None:
        self.before = {(n, tuple(sorted(ls.items()))): sample(n, **ls) for n, ls in names}

    def delta(self, name: str, **labels: str) -> float:
        return sample(name, **labels) - self.before.get((name, tuple(sorted(labels.items()))), 0.0)


# --- the endpoint ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_refuse_anonymous_requests(client: Client, settings: Settings) -> None:
    """Without credentials /metrics is 401 with a Bearer challenge and shows no metric."""
    settings.METRICS_TOKEN = TOKEN
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"chatsite_" not in response.content


@pytest.mark.django_db
def test_metrics_accept_the_configured_bearer_token_only(client: Client, settings: Settings) -> None:
    """The right bearer token reads Prometheus text; a wrong or truncated one does not."""
    settings.METRICS_TOKEN = TOKEN
    for wrong in ("Bearer " + TOKEN[:-1], "Bearer " + TOKEN + "x", "Basic " + TOKEN, TOKEN):
        assert client.get("/metrics", HTTP_AUTHORIZATION=wrong).status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer " + TOKEN)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    text = response.content.decode()
    for name in (
        "chatsite_connections_open",
        "chatsite_connections_total",
        "chatsite_joins_total",
        "chatsite_messages_stored_total",
        "chatsite_messages_delivered_total",
        "chatsite_store_latency_seconds",
        "chatsite_broadcast_latency_seconds",
        "chatsite_errors_total",
        "chatsite_rate_limit_hits_total",
        "chatsite_resumes_total",
        "chatsite_channel_layer_drops_total",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in text, name


@pytest.mark.django_db
def test_no_token_is_accepted_when_none_is_configured(client: Client, settings: Settings) -> None:
    """With METRICS_TOKEN unset there is no default token: an empty bearer gets nothing."""
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer None").status_code == 401


@pytest.mark.django_db
def test_staff_see_metrics_and_other_users_do_not(client: Client, settings: Settings) -> None:
    """A signed-in staff user reads /metrics; a signed-in ordinary user gets 401."""
    settings.METRICS_TOKEN = ""
    users = get_user_model().objects
    client.force_login(users.create_user(username="carol"))
    assert client.get("/metrics").status_code == 401
    client.force_login(users.create_user(username="root", is_staff=True))
    assert client.get("/metrics").status_code == 200


# --- what the chat counts -------------------------------------------------------------------


@pytest.fixture
async def connect(transactional_db: None) -> AsyncIterator[Connect]:
    opened: list[WebsocketCommunicator] = []

    def cookie_for(username: str) -> bytes:
        client = Client()
        client.force_login(get_user_model().objects.create_user(username=username))
        return f"sessionid={client.cookies['sessionid'].value}".encode()

    async def open_socket(username: bytes) -> WebsocketCommunicator:
        cookie = await sync_to_async(cookie_for)(username.decode())
        comm = WebsocketCommunicator(
            application,
            "/ws/",
            headers=[(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1"), (b"cookie", cookie)],
        )
        opened.append(comm)
        connected, _ = await comm.connect(timeout=WAIT)
        assert connected
        # The consumer opens its connection after accepting: a pong says it is done.
        await comm.send_json_to({"action": "ping"})
        await frame_of_type(comm, "pong")
        return comm

    yield open_socket
    for comm in opened:
        await comm.disconnect(timeout=WAIT)
    layer = get_channel_layer()
    assert layer is not None
    await layer.flush()  # type: ignore[attr-defined]


async def frame_of_type(comm: WebsocketCommunicator, kind: str) -> dict[str, Any]:
    for _ in range(10):
        frame = await comm.receive_json_from(timeout=WAIT)
        if frame.get("type") == kind:
            assert isinstance(frame, dict)
            return frame
    raise AssertionError(f"no {kind} frame")


async def test_a_conversation_moves_every_chat_counter(connect: Connect) -> None:
    """Connect, join, send, receive, err, resume and leave each show up in the metrics."""
    counts = Counts(
        ("chatsite_connections_total", {"outcome": "accepted"}),
        ("chatsite_connections_open", {}),
        ("chatsite_joins_total", {}),
        ("chatsite_resumes_total", {"outcome": "replayed"}),
        ("chatsite_resumes_total", {"outcome": "reloaded"}),
        ("chatsite_messages_stored_total", {}),
        ("chatsite_messages_delivered_total", {}),
        ("chatsite_store_latency_seconds_count", {"operation": "append_message"}),
        ("chatsite_broadcast_latency_seconds_count", {}),
        ("chatsite_errors_total", {"code": "invalid_json"}),
    )
    alice = await connect(b"alice")
    bob = await connect(b"bob")
    assert counts.delta("chatsite_connections_total", outcome="accepted") == 2
    assert counts.delta("chatsite_connections_open") == 2
    for comm in (alice, bob):
        await comm.send_json_to({"action": "joinRoom", "roomId": "general"})
        await frame_of_type(comm, "joined")
    await alice.send_json_to({"action": "sendMessage", "roomId": "general", "message": "hi", "clientMessageId": "c1"})
    await frame_of_type(alice, "ack")
    await frame_of_type(bob, "message")
    # A retry of the same clientMessageId stores nothing new.
    await alice.send_json_to({"action": "sendMessage", "roomId": "general", "message": "hi", "clientMessageId": "c1"})
    await frame_of_type(alice, "ack")
    await bob.send_to(text_data="{not json")
    await frame_of_type(bob, "error")
    # A resume within the replay window is replayed.
    await bob.send_json_to({"action": "joinRoom", "roomId": "general", "lastSeq": 0})
    await frame_of_type(bob, "joined")
    # A lastSeq the room never reached: the client is told to reload.
    await bob.send_json_to({"action": "joinRoom", "roomId": "general", "lastSeq": 10_000})
    await frame_of_type(bob, "joined")

    assert counts.delta("chatsite_joins_total") == 4
    assert counts.delta("chatsite_resumes_total", outcome="replayed") == 1
    assert counts.delta("chatsite_resumes_total", outcome="reloaded") == 1
    assert counts.delta("chatsite_messages_stored_total") == 1
    assert counts.delta("chatsite_messages_delivered_total") >= 2  # alice's and bob's copies
    assert counts.delta("chatsite_store_latency_seconds_count", operation="append_message") == 2
    assert counts.delta("chatsite_broadcast_latency_seconds_count") == 2
    assert counts.delta("chatsite_errors_total", code="invalid_json") == 1

    await bob.disconnect(timeout=WAIT)
    assert counts.delta("chatsite_connections_open") == 1


async def test_a_refused_handshake_counts_as_unauthorized(transactional_db: None) -> None:
    """A socket with a bad session is closed 4401 and counted, and never counts as open."""
    counts = Counts(("chatsite_connections_total", {"outcome": "unauthorized"}), ("chatsite_connections_open", {}))
    comm = WebsocketCommunicator(
        application,
        "/ws/",
        headers=[(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1"), (b"cookie", b"sessionid=not-a-session")],
        subprotocols=["chatsite.v1", "chatsite.token.e30.e30.x"],
    )
    await comm.connect(timeout=WAIT)
    output = await comm.receive_output(timeout=WAIT)
    while output["type"] != "websocket.close":
        output = await comm.receive_output(timeout=WAIT)
    assert output["code"] == 4401
    assert counts.delta("chatsite_connections_total", outcome="unauthorized") == 1
    assert counts.delta("chatsite_connections_open") == 0


def test_rate_limited_errors_count_as_rate_limit_hits() -> None:
    """An error frame with code rate_limited counts as an error and as a rate-limit hit."""
    counts = Counts(("chatsite_rate_limit_hits_total", {}), ("chatsite_errors_total", {"code": "rate_limited"}))
    metrics.record_error("rate_limited")
    assert counts.delta("chatsite_rate_limit_hits_total") == 1
    assert counts.delta("chatsite_errors_total", code="rate_limited") == 1


async def test_channels_redis_capacity_drops_are_counted(settings: Settings, redis_url: str) -> None:
    """Group messages that channels-redis drops at a full channel are counted as drops."""
    assert any(isinstance(h, metrics.LayerDropHandler) for h in logging.getLogger("channels_redis").handlers)
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_url], "capacity": 1, "prefix": "metrics-test"},
        }
    }
    layer = get_channel_layer()
    assert layer is not None
    counts = Counts(("chatsite_channel_layer_drops_total", {"reason": "capacity"}))
    channel = await layer.new_channel()
    await layer.group_add("drops", channel)
    for n in range(3):
        await layer.group_send("drops", {"type": "chat.message", "n": n})
    assert counts.delta("chatsite_channel_layer_drops_total", reason="capacity") == 2
    assert (await layer.receive(channel))["n"] == 0
    await layer.flush()  # type: ignore[attr-defined]
