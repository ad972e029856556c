"""The dashboard's "now" tiles: the delivery figures (p95 latency, error rate over 5 minutes) are the fleet's,
not the serving process's; messages per minute and open reports."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client, override_settings
from prometheus_client import CollectorRegistry, Counter, Histogram

from accounts.identity import Identity
from analytics import live
from analytics.tests.conftest import Clock
from chat import services
from chat.moderation_models import Report
from tests.fixtures.redis import RedisServer

pytestmark = pytest.mark.timeout(60)

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Process:
    """One process's metrics: the three families analytics.live reads, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "chatsite_broadcast_latency_seconds", "publish", buckets=BUCKETS, registry=self.registry
        )
        self.errors = Counter("chatsite_errors", "errors", ["code"], registry=self.registry)
        self.stored = Counter("chatsite_messages_stored", "stored", registry=self.registry)
        self.sources = (self.latency, self.errors, self.stored)

    def deliver(self, count: int, seconds: float) -> None:
        for _ in range(count):
            self.stored.inc()
            self.latency.observe(seconds)


@pytest.fixture
def shared(redis_url: str) -> live.RedisReadings:
    """The Redis every process publishes to, under a prefix of this test's own."""
    return live.RedisReadings(live.redis_client({"address": redis_url}), prefix=f"test:{uuid.uuid4().hex}:")


def test_the_figures_merge_every_process_that_published(shared: live.RedisReadings) -> None:
    """A quiet process serving the page shows the busy process's slow deliveries and errors, added to its own."""
    now = datetime.now(UTC)
    quiet, busy = Process(), Process()
    start = (now - timedelta(minutes=4)).timestamp()
    shared.publish("busy", live.read(busy.sources, at=start))
    live.window(now=now - timedelta(minutes=4), backend=shared, instance="quiet", sources=quiet.sources)
    quiet.deliver(100, 0.004)
    busy.deliver(10, 0.4)
    busy.errors.labels(code="rate_limited").inc(5)
    shared.publish("busy", live.read(busy.sources, at=(now - timedelta(seconds=10)).timestamp()))

    figures = live.window(now=now, backend=shared, instance="quiet", sources=quiet.sources)

    # 110 deliveries, 10 of them slow: the 95th percentile (the 105th) is a slow one.
    assert figures["p95_seconds"] == 0.5
    assert figures["stored"] == 110 and figures["errors"] == 5
    assert figures["error_rate"] == pytest.approx(5 / 110)
    assert figures["processes"] == 2
    # What the page used to show: the serving process alone.
    alone = live.merged({"quiet": shared.recent(since=0)["quiet"]}, since=now.timestamp() - 300)
    assert alone["p95_seconds"] == 0.005 and alone["errors"] == 0


def test_a_process_that_stopped_publishing_leaves_the_window(shared: live.RedisReadings) -> None:
    """Deliveries older than five minutes, on a process that has gone, no longer count."""
    now = datetime.now(UTC)
    gone, serving = Process(), Process()
    shared.publish("gone", live.read(gone.sources, at=(now - timedelta(minutes=9)).timestamp()))
    gone.deliver(50, 2.0)
    shared.publish("gone", live.read(gone.sources, at=(now - timedelta(minutes=6)).timestamp()))
    live.window(now=now - timedelta(minutes=1), backend=shared, instance="serving", sources=serving.sources)
    serving.deliver(20, 0.002)

    figures = live.window(now=now, backend=shared, instance="serving", sources=serving.sources)

    assert figures["processes"] == 1
    assert figures["stored"] == 20 and figures["p95_seconds"] == 0.0025


def test_another_os_process_publishing_through_its_own_registry_reaches_the_dashboard(
    shared: live.RedisReadings, redis_url: str
) -> None:
    """A second Python process (its own chat.metrics) publishes twice; this one merges its deliveries."""
    script = textwrap.dedent(
        f"""
        import time
        import django
        django.setup()
        from chat import metrics
        from analytics import live
        shared = live.RedisReadings(live.redis_client({{"address": {redis_url!r}}}), prefix={shared.prefix!r})
        shared.publish("worker", live.read(at=time.time() - 30))
        for _ in range(40):
            metrics.record_stored(created=True)
            metrics.BROADCAST_LATENCY.observe(0.02)
        metrics.ERRORS.labels(code="internal_error").inc(2)
        shared.publish("worker", live.read(at=time.time()))
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=45)
    serving, earlier = Process(), datetime.now(UTC) - timedelta(seconds=40)
    live.window(now=earlier, backend=shared, instance="page", sources=serving.sources)

    figures = live.window(now=datetime.now(UTC), backend=shared, instance="page", sources=serving.sources)

    assert figures["processes"] == 2
    assert figures["stored"] == 40 and figures["errors"] == 2 and figures["p95_seconds"] == 0.025


def test_on_the_embedded_default_the_figures_are_this_process_in_memory() -> None:
    """Without Redis the readings stay in memory, taken as the page polls (one process: it is the fleet)."""
    memory, serving = live.MemoryReadings(), Process()
    now = datetime.now(UTC)
    first = live.window(now=now - timedelta(minutes=2), backend=memory, instance="one", sources=serving.sources)
    serving.deliver(30, 0.03)
    serving.errors.labels(code="slow_mode").inc(3)

    figures = live.window(now=now, backend=memory, instance="one", sources=serving.sources)

    assert first["p95_seconds"] is None and first["processes"] == 1
    assert figures["stored"] == 30 and figures["error_rate"] == pytest.approx(0.1)
    assert figures["p95_seconds"] == 0.05 and figures["seconds"] == 120


def test_the_dashboards_live_figures_are_the_fleets_with_a_redis_channel_layer(
    db: None, redis_factory: Callable[[], RedisServer]
) -> None:
    """/admin/analytics/live/ on a process with no traffic shows what another process published to Redis."""
    url = redis_factory().url  # a Redis of this test's own: no other process's figures in it
    layer = {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer", "CONFIG": {"hosts": [{"address": url}]}}
    other, now = Process(), datetime.now(UTC)
    shared = live.RedisReadings(live.redis_client({"address": url}))
    shared.publish("other-process", live.read(other.sources, at=(now - timedelta(minutes=1)).timestamp()))
    other.deliver(20, 0.3)
    other.errors.labels(code="internal_error").inc(2)
    shared.publish("other-process", live.read(other.sources, at=(now - timedelta(seconds=1)).timestamp()))
    staff = get_user_model().objects.create_user(username="staffer", is_staff=True)
    client = Client()
    client.force_login(staff)

    with override_settings(CHANNEL_LAYERS={"default": layer}):
        delivery = client.get("/admin/analytics/live/").json()["delivery"]

    assert delivery["processes"] == 2  # this one (nothing to compare yet) and the other
    assert (delivery["stored"], delivery["errors"], delivery["p95_seconds"]) == (20, 2, 0.5)
    assert delivery["error_rate"] == pytest.approx(0.1)


@pytest.mark.django_db(transaction=True)
async def test_the_now_tiles_count_messages_per_minute_and_open_reports(clock: Clock) -> None:
    """/admin/analytics/live/: the last whole minute's messages, the five-minute average, and the open reports
    (for a moderator; staff without moderator rights get null)."""
    clock.now = datetime(2026, 10, 5, 10, 0, 10, tzinfo=UTC)

    def people() -> tuple[Any, Any]:
        mod = get_user_model().objects.create_user(username="mod", is_staff=True)
        mod.groups.add(Group.objects.get_or_create(name=settings.AUTH_MODERATOR_GROUP)[0])
        return mod, get_user_model().objects.create_user(username="staffer", is_staff=True)

    mod, staffer = await sync_to_async(people)()
    alice = Identity(user_id="41", username="alice")
    for n in range(3):
        clock.now += timedelta(seconds=10)  # 10:00:20 to 10:00:40
        await services.message_send(
            identity=alice, connection_id="c", room_id="general", text=f"{n}", client_message_id=None
        )
    clock.now = datetime(2026, 10, 5, 10, 1, 30, tzinfo=UTC)

    def tiles() -> tuple[dict[str, Any], dict[str, Any]]:
        Report.objects.create(
            room_id="general",
            message_id="m",
            seq=1,
            author_id="41",
            author_username="alice",
            text="0",
            reporter=staffer,
            reason="spam",
            created_at=clock.now,
        )
        answers = []
        for who in (mod, staffer):
            client = Client()
            client.force_login(who)
            answers.append(client.get("/admin/analytics/live/").json())
        return answers[0], answers[1]

    as_mod, as_staff = await sync_to_async(tiles)()

    assert (as_mod["messagesLastMinute"], as_mod["messagesPerMinute5m"], as_mod["openReports"]) == (3, 0.6, 1)
    assert as_staff["openReports"] is None and as_staff["messagesLastMinute"] == 3
