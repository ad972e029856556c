"""/healthz and /readyz, answered before any other middleware.

A load balancer's health check arrives over plain HTTP with the instance's private address
as its Host header: Django's host validation would answer 400 and SECURE_SSL_REDIRECT a
301, and the target would never turn healthy. So this middleware sits first in
settings.MIDDLEWARE and answers these two paths itself, with nothing but status data.

- /healthz, the balancer's target check: the process is alive, its event loop answers, and
  it is not draining (chatsite/ops/drain.py; 503 while it is, so the balancer sends it no new
  sockets). It touches no dependency on purpose: a Redis failover or a database blip is
  shared by every target, and a target check that failed on it would take the whole fleet
  out of the balancer at once, turning a blip into an outage.
- /readyz, for operators and alarms: the database, the channel layer and the chat store
  answer, each timed; 503 when any does not. Results are cached for a second, so a flood of
  probes costs one check.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from asgiref.sync import markcoroutinefunction, sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections, connection
from django.http import HttpRequest, HttpResponseBase, JsonResponse

from chat import protocol
from chat.storage import get_store
from chatsite.ops import drain, loopwatch

HEALTH_PATH: Final = "/healthz"
READY_PATH: Final = "/readyz"
CACHE_SECONDS: Final = 1.0
_NO_CACHE: Final = {"Cache-Control": "no-store"}

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    latency_ms: float
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": self.ok, "latencyMs": self.latency_ms}
        if self.error is not None:
            body["error"] = self.error
        return body


def _database_ping() -> None:
    # Drops a connection that broke since its last use (CONN_HEALTH_CHECKS), so a database
    # that came back is seen as back.
    close_old_connections()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


async def check_database() -> None:
    await sync_to_async(_database_ping, thread_sensitive=True)()


async def check_channel_layer() -> None:
    """A round trip through the layer: send to a fresh channel of this process, read it back.

    The channel has the default prefix on purpose: channels-redis receives every process-local
    channel with one shared lock, and a channel under its own prefix would wait behind the
    consumers' blocking reads (up to five seconds) instead of being served by them.
    """
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "health.check"})
    message = await layer.receive(channel)
    if message.get("type") != "health.check":
        raise RuntimeError("channel layer returned a different message")


async def check_store() -> None:
    """One cheap read (the default room) through the configured storage backend."""
    # The first call builds the store (a boto3 client for DynamoDB): off the event loop.
    store = await sync_to_async(get_store, thread_sensitive=False)()
    await sync_to_async(store.get_room, thread_sensitive=store.thread_sensitive)(protocol.DEFAULT_ROOM)


CHECKS: Final[dict[str, Callable[[], Awaitable[None]]]] = {
    "database": check_database,
    "channelLayer": check_channel_layer,
    "store": check_store,
}


async def _timed(check: Callable[[], Awaitable[None]]) -> CheckResult:
    start = time.perf_counter()
    try:
        await asyncio.wait_for(check(), timeout=settings.CHAT_READY_CHECK_TIMEOUT_SECONDS)
    except Exception as exc:
        # The class name only: an exception's text can carry a DSN or a host name.
        error = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
        return CheckResult(ok=False, latency_ms=_ms_since(start), error=error)
    return CheckResult(ok=True, latency_ms=_ms_since(start))


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


_cache: tuple[float, dict[str, CheckResult]] | None = None
# The cache's clock; a test sets its own, so a probe's age never depends on the machine's speed.
_clock: Callable[[], float] = time.monotonic


async def readiness() -> dict[str, CheckResult]:
    """Run every check concurrently (or return the result of the last second)."""
    global _cache
    now = _clock()
    if _cache is not None and now - _cache[0] < CACHE_SECONDS:
        return _cache[1]
    names = list(CHECKS)
    results = await asyncio.gather(*(_timed(CHECKS[name]) for name in names))
    outcome = dict(zip(names, results, strict=True))
    _cache = (_clock(), outcome)
    return outcome


def reset_cache() -> None:
    global _cache
    _cache = None


async def readiness_response() -> JsonResponse:
    results = await readiness()
    ready = all(r.ok for r in results.values())
    response = JsonResponse(
        {"status": "ready" if ready else "unready", "checks": {name: r.as_json() for name, r in results.items()}},
        status=200 if ready else 503,
        headers=_NO_CACHE,
    )
    if not ready:
        failed = ", ".join(f"{name} ({r.error})" for name, r in results.items() if not r.ok)
        log.warning("not ready: %s", failed)
        # Said once above; Django would add an ERROR line for every probe's 503.
        response._has_been_logged = True  # type: ignore[attr-defined]
    return response


class HealthCheckMiddleware:
    """Answers GET/HEAD /healthz and /readyz; passes every other request on."""

    async_capable = True
    sync_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]]) -> None:
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        path = request.path_info
        if path in (HEALTH_PATH, READY_PATH) and request.method in ("GET", "HEAD"):
            drain.start_ecs_watch()  # on ECS: drain when the task is asked to stop
            loopwatch.start()  # event-loop lag and thread-pool queue gauges
            if path == HEALTH_PATH:
                if drain.draining():
                    response = JsonResponse(drain.status(), status=503, headers=_NO_CACHE)
                    response._has_been_logged = True  # type: ignore[attr-defined]  # drain.begin said it
                    return response
                return JsonResponse({"status": "ok"}, headers=_NO_CACHE)
            return await readiness_response()
        return await self.get_response(request)
