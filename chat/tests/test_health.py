"""/healthz and /readyz: what a load balancer polls, answered before host checks and redirects."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient, Client
from pytest_django.fixtures import Settings

from chat.storage import get_store
from chatsite.ops import drain, health
from tests.fixtures.aws import MotoServer
from tests.fixtures.servers import free_port

pytestmark = pytest.mark.timeout(60)

# An ALB probes by the target's private address, over plain HTTP.
PROBE_HOST = "10.0.3.7"


@pytest.fixture(autouse=True)
def fresh_readiness(settings: Settings) -> Iterator[None]:
    # A budget no busy machine reaches: these tests are about the answers. The one about the
    # budget sets its own.
    settings.CHAT_READY_CHECK_TIMEOUT_SECONDS = 60.0
    health.reset_cache()
    yield
    health.reset_cache()
    drain.reset()


def body(response: Any) -> dict[str, Any]:
    data = json.loads(response.content)
    assert isinstance(data, dict)
    return data


def test_healthz_answers_a_probe_by_ip_that_other_pages_refuse(client: Client) -> None:
    """A probe with the instance's IP as Host gets 200 from /healthz, though a page gets 400."""
    assert client.get("/accounts/login/", HTTP_HOST=PROBE_HOST).status_code == 400
    response = client.get("/healthz", HTTP_HOST=PROBE_HOST)
    assert response.status_code == 200
    assert body(response) == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response


def test_health_paths_are_not_redirected_to_https(client: Client, settings: Settings) -> None:
    """With SECURE_SSL_REDIRECT on, a plain-HTTP probe still gets 200, while pages redirect."""
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/accounts/login/").status_code == 301
    assert client.get("/healthz", HTTP_HOST=PROBE_HOST).status_code == 200
    assert client.head("/healthz", HTTP_HOST=PROBE_HOST).status_code == 200


def test_healthz_touches_no_database(client: Client) -> None:
    """/healthz works without database access (pytest-django blocks it here)."""
    assert client.get("/healthz").status_code == 200


@pytest.mark.django_db(transaction=True)
async def test_readyz_reports_every_dependency_with_its_latency() -> None:
    """/readyz is 200 with database, channel layer and store each ok and timed."""
    response = await AsyncClient().get("/readyz", headers={"host": PROBE_HOST})
    assert response.status_code == 200
    data = body(response)
    assert data["status"] == "ready"
    assert set(data["checks"]) == {"database", "channelLayer", "store"}
    for check in data["checks"].values():
        assert check["ok"] is True
        assert isinstance(check["latencyMs"], float | int) and check["latencyMs"] >= 0
        assert "error" not in check


@pytest.mark.django_db(transaction=True)
async def test_readyz_is_503_and_names_the_store_when_dynamodb_fails(
    settings: Settings, aws_env: dict[str, str]
) -> None:
    """A store whose tables are missing makes /readyz 503, naming only the store and the error class."""
    settings.CHAT_STORAGE_BACKEND = "dynamodb"
    settings.DYNAMODB_CONNECTIONS_TABLE = "missing-Connections"
    settings.DYNAMODB_MESSAGES_TABLE = "missing-Messages"
    settings.DYNAMODB_ROOMS_TABLE = "missing-Rooms"
    await sync_to_async(get_store)()  # build the boto3 client: the test is about the answer, not a cold start
    response = await AsyncClient().get("/readyz")
    assert response.status_code == 503
    data = body(response)
    assert data["status"] == "unready"
    assert data["checks"]["store"]["ok"] is False
    assert data["checks"]["store"]["error"] == "ResourceNotFoundException"
    assert data["checks"]["database"]["ok"] is True
    assert data["checks"]["channelLayer"]["ok"] is True
    # Nothing about where the store is: no endpoint, no table name.
    assert "missing-" not in response.content.decode()
    assert "127.0.0.1" not in response.content.decode()


@pytest.mark.django_db(transaction=True)
async def test_readyz_is_503_when_redis_is_down(settings: Settings) -> None:
    """A channel layer whose Redis refuses connections fails its check, within the time budget."""
    settings.CHAT_READY_CHECK_TIMEOUT_SECONDS = 2.0
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{free_port()}/0"]},
        }
    }
    response = await AsyncClient().get("/readyz")
    assert response.status_code == 503
    check = body(response)["checks"]["channelLayer"]
    assert check["ok"] is False
    assert check["error"]
    # Bounded by the budget (a Redis client left alone retries for far longer); the margin is
    # for a busy machine's late event loop.
    assert check["latencyMs"] <= settings.CHAT_READY_CHECK_TIMEOUT_SECONDS * 1000 + 2000
    # The balancer's target check stays green: a Redis outage is every target's, and taking
    # them all out of the balancer would turn a blip into an outage.
    assert (await AsyncClient().get("/healthz")).status_code == 200


@pytest.mark.parametrize(
    "backend", ["channels_redis.core.RedisChannelLayer", "channels_redis.pubsub.RedisPubSubChannelLayer"]
)
@pytest.mark.django_db(transaction=True)
async def test_readyz_round_trips_through_a_real_redis_layer(settings: Settings, redis_url: str, backend: str) -> None:
    """With either channels-redis layer on a live Redis, the channel-layer check passes."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": backend, "CONFIG": {"hosts": [redis_url]}}}
    response = await AsyncClient().get("/readyz")
    assert body(response)["checks"]["channelLayer"]["ok"] is True
    assert response.status_code == 200


@pytest.mark.django_db(transaction=True)
async def test_a_burst_of_probes_runs_the_checks_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Probes within a second share one round of checks, so polling stays cheap; the next
    second's probe checks again. The test owns the cache's clock: a slow machine cannot age
    the burst past the second."""
    calls: list[str] = []
    original = health.CHECKS["store"]
    now = [1000.0]

    async def counted() -> None:
        calls.append("store")
        await original()

    monkeypatch.setitem(health.CHECKS, "store", counted)
    monkeypatch.setattr(health, "_clock", lambda: now[0])
    client = AsyncClient()
    for _ in range(20):
        assert (await client.get("/readyz")).status_code == 200
    now[0] += health.CACHE_SECONDS - 0.01
    assert (await client.get("/readyz")).status_code == 200
    assert calls == ["store"]
    now[0] += 0.01
    assert (await client.get("/readyz")).status_code == 200
    assert calls == ["store", "store"]


@pytest.mark.django_db(transaction=True)
async def test_moto_backed_store_passes_when_its_tables_exist(
    settings: Settings, aws_env: dict[str, str], moto_server: MotoServer
) -> None:
    """With the DynamoDB backend and its tables created, /readyz is 200."""
    from chat.storage import dynamodb, schema

    names = schema.TableNames.with_prefix("readyz-")
    dynamodb.ensure_tables(dynamodb.make_client(region=aws_env["AWS_REGION"]), names, poll_seconds=0.05)
    settings.CHAT_STORAGE_BACKEND = "dynamodb"
    settings.DYNAMODB_CONNECTIONS_TABLE = names.connections
    settings.DYNAMODB_MESSAGES_TABLE = names.messages
    settings.DYNAMODB_ROOMS_TABLE = names.rooms
    response = await AsyncClient().get("/readyz")
    assert body(response)["checks"]["store"]["ok"] is True
    assert response.status_code == 200


def test_healthz_is_503_once_the_process_drains(client: Client) -> None:
    """After a drain begins, the target check fails (the balancer sends no new sockets) and says why."""
    assert client.get("/healthz", HTTP_HOST=PROBE_HOST).status_code == 200
    drain.begin("test", window=7)
    response = client.get("/healthz", HTTP_HOST=PROBE_HOST)
    assert response.status_code == 503
    assert body(response) | {"elapsedSeconds": 0} == {
        "status": "draining",
        "reason": "test",
        "windowSeconds": 7,
        "elapsedSeconds": 0,
    }
    assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("sockets", "window", "offsets"),
    [(4, 20.0, [0.0, 5.0, 10.0, 15.0]), (1, 20.0, [0.0]), (2, 3.0, [0.0, 1.5])],
)
def test_a_drain_closes_sockets_evenly_over_its_window(sockets: int, window: float, offsets: list[float]) -> None:
    """n sockets close at 0, W/n, ... (n-1)W/n: never in one burst, the last with W/n to leave."""
    now, seen = 0.0, []
    for left in range(sockets - 1, -1, -1):
        seen.append(now)
        now += drain.next_close_delay(left=left, time_left=window - now)
    assert seen == pytest.approx(offsets)
    assert drain.next_close_delay(left=3, time_left=-1.0) == 0.0


class _TaskMetadata(BaseHTTPRequestHandler):
    """The ECS agent's task metadata endpoint, as far as a drain reads it."""

    desired = "RUNNING"

    def do_GET(self) -> None:
        payload = json.dumps({"DesiredStatus": type(self).desired, "KnownStatus": "RUNNING"}).encode()
        self.send_response(200 if self.path.endswith("/task") else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


async def test_ecs_stopping_the_task_begins_a_drain(monkeypatch: pytest.MonkeyPatch) -> None:
    """On ECS the balancer drains before SIGTERM: DesiredStatus STOPPED in the task metadata begins the drain."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TaskMetadata)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(drain.ECS_METADATA_ENV, f"http://127.0.0.1:{server.server_address[1]}/v4/abc")
    monkeypatch.setattr(drain, "ECS_POLL_SECONDS", 0.05)
    monkeypatch.setattr(drain, "_watcher", None)
    try:
        drain.start_ecs_watch()
        await asyncio.sleep(0.3)
        assert not drain.draining()
        _TaskMetadata.desired = "STOPPED"
        async with asyncio.timeout(10):
            while not drain.draining():
                await asyncio.sleep(0.05)
        assert drain.status()["reason"] == "ECS is stopping the task"
    finally:
        _TaskMetadata.desired = "RUNNING"
        server.shutdown()
        server.server_close()
