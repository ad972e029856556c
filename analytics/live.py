"""The fleet's delivery figures over the last five minutes, for the dashboard's "now".

Prometheus counters only grow, so a window is a difference of two readings. Each process
reads its own registry and publishes the reading; the dashboard takes, per process, the
newest reading less the oldest one inside the window, and adds the differences of every
process up (histogram buckets add, so the merged p95 is the p95 of all deliveries, not an
average of p95s).

Where readings are kept follows the channel layer, like presence and the rate limits:
- Redis (REDIS_URL or Sentinel): a sorted set per process (`<prefix>p:<instance>`, scored by
  time, expiring with the window) and an index of processes (`<prefix>processes`). Each
  process publishes every PUBLISH_SECONDS from a daemon thread started with its first socket,
  and the process serving the page publishes a fresh reading before it reads. A process that
  stops publishing drops out when its readings leave the window.
- the embedded default (no Redis, one process): the readings stay in this process's memory,
  taken as the page polls, which is what the dashboard did before it had a fleet.

It used to be the serving process's figures only, which on a fleet of several daphne
processes said little: the admin page's process is rarely the one carrying the traffic.

What "delivery latency" means here: the histogram Chatsite has, the time of one channel-layer
publish of a stored message (chatsite_broadcast_latency_seconds); the p95 is the upper bound
of the bucket holding the 95th percentile. The error rate is error frames per message stored.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from django.conf import settings
from prometheus_client.registry import Collector

from chat import layer_backends, metrics

log = logging.getLogger(__name__)

WINDOW: Final = timedelta(minutes=5)
# How often each process publishes a reading to Redis: the dashboard polls every 5 s, and a
# figure 10 s behind is "now" enough for a five-minute window.
PUBLISH_SECONDS: Final = 10.0
# Readings a little older than the window are kept, so the oldest one inside it still has
# a predecessor to fall back on when a process published late.
KEEP: Final = WINDOW + timedelta(seconds=60)
# A dashboard poll must not hang on Redis: it shows a dash instead.
REDIS_TIMEOUT_SECONDS: Final = 0.5
DEFAULT_PREFIX: Final = "chatsite:live:"

# One name per process, for its readings (pid alone repeats across hosts and restarts).
INSTANCE: Final = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"

# What a reading reads: the publish-latency histogram, the error-frame counter and the
# stored-message counter. Only these: collecting the whole registry would also run its
# custom collectors (the search index's lag reads the store) every PUBLISH_SECONDS.
Sources = tuple[Collector, Collector, Collector]
SOURCES: Final[Sources] = (metrics.BROADCAST_LATENCY, metrics.ERRORS, metrics.MESSAGES_STORED)


@dataclass(frozen=True, slots=True)
class Reading:
    at: float  # seconds since the epoch
    buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count)
    errors: float
    stored: float

    def dumps(self) -> str:
        return json.dumps([self.at, self.buckets, self.errors, self.stored])

    @classmethod
    def loads(cls, raw: str | bytes) -> Reading:
        at, buckets, errors, stored = json.loads(raw)
        return cls(at=at, buckets=tuple((b, c) for b, c in buckets), errors=errors, stored=stored)


def _samples(collector: Collector, suffix: str) -> list[tuple[dict[str, str], float]]:
    return [(s.labels, s.value) for f in collector.collect() for s in f.samples if s.name.endswith(suffix)]


def read(sources: Sources = SOURCES, *, at: float) -> Reading:
    """This process's counters now (other metrics stand for another process in tests)."""
    latency, errors, stored = sources
    buckets = sorted((float(labels["le"]), value) for labels, value in _samples(latency, "_bucket"))
    return Reading(
        at=at,
        buckets=tuple(buckets),
        errors=sum(value for _, value in _samples(errors, "_total")),
        stored=sum(value for _, value in _samples(stored, "_total")),
    )


def p95(buckets: list[tuple[float, float]]) -> float | None:
    """The upper bound of the bucket holding the 95th percentile of cumulative counts."""
    total = buckets[-1][1] if buckets else 0
    if total <= 0:
        return None
    for bound, count in buckets:
        if count >= 0.95 * total:
            return bound
    return None


class Readings(Protocol):
    def publish(self, instance: str, reading: Reading) -> None: ...

    def recent(self, *, since: float) -> dict[str, list[Reading]]:
        """Every process's readings from `since` on (a little before, see KEEP), oldest first."""
        ...


class MemoryReadings:
    """The embedded default: one process, its readings in memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_instance: dict[str, deque[Reading]] = {}

    def publish(self, instance: str, reading: Reading) -> None:
        with self._lock:
            self._by_instance.setdefault(instance, deque(maxlen=2000)).append(reading)

    def recent(self, *, since: float) -> dict[str, list[Reading]]:
        with self._lock:
            cutoff = since - (KEEP - WINDOW).total_seconds()
            for kept in self._by_instance.values():
                while kept and kept[0].at < cutoff:
                    kept.popleft()
            return {name: list(kept) for name, kept in self._by_instance.items() if kept}


class RedisReadings:
    """Every process's readings in one Redis, each key expiring with the window."""

    def __init__(self, client: Any, *, prefix: str = DEFAULT_PREFIX) -> None:
        self.client = client
        self.prefix = prefix

    def publish(self, instance: str, reading: Reading) -> None:
        key, index = f"{self.prefix}p:{instance}", f"{self.prefix}processes"
        oldest = reading.at - KEEP.total_seconds()
        keep_ms = int(KEEP.total_seconds() * 1000)
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(key, {reading.dumps(): reading.at})
        pipe.zremrangebyscore(key, "-inf", f"({oldest}")
        pipe.pexpire(key, keep_ms)
        pipe.zadd(index, {instance: reading.at})
        pipe.zremrangebyscore(index, "-inf", f"({oldest}")
        pipe.pexpire(index, keep_ms)
        pipe.execute()

    def recent(self, *, since: float) -> dict[str, list[Reading]]:
        start = since - (KEEP - WINDOW).total_seconds()
        names = [_text(n) for n in self.client.zrangebyscore(f"{self.prefix}processes", start, "+inf")]
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.zrangebyscore(f"{self.prefix}p:{name}", start, "+inf")
        found = {name: [Reading.loads(r) for r in rows] for name, rows in zip(names, pipe.execute(), strict=True)}
        return {name: rows for name, rows in found.items() if rows}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def redis_client(host: dict[str, Any]) -> Any:
    """A synchronous client for one channel-layer host entry (an address or Sentinels)."""
    import redis
    from redis.sentinel import Sentinel

    options: dict[str, Any] = {"socket_timeout": REDIS_TIMEOUT_SECONDS, "socket_connect_timeout": REDIS_TIMEOUT_SECONDS}
    if host.get("password"):
        options["password"] = host["password"]
    if "sentinels" in host:
        return Sentinel(host["sentinels"], **options).master_for(host["master_name"], **options)  # type: ignore[no-untyped-call]
    return redis.Redis.from_url(host["address"], **options)


@functools.lru_cache(maxsize=8)
def _readings_for(layer_json: str) -> Readings:
    layer: dict[str, Any] = json.loads(layer_json)
    if layer_backends.redis_backed(layer):
        return RedisReadings(redis_client(dict(layer["CONFIG"]["hosts"][0])))
    return MemoryReadings()


def readings() -> Readings:
    """The readings backend the channel layer calls for: made once per layer setting (so an
    override_settings in a test gets its own, as Channels' layer manager does)."""
    layer = settings.CHANNEL_LAYERS.get("default", {})
    return _readings_for(json.dumps(layer, sort_keys=True, default=str))


def merged(found: dict[str, list[Reading]], *, since: float) -> dict[str, float | None]:
    """Per process, its newest reading less the last one it published before `since` (or,
    if it has none, its oldest since then); the differences added over the processes."""
    latency: dict[float, float] = {}
    errors = stored = 0.0
    seconds = 0.0
    processes = 0
    for rows in found.values():
        rows = sorted(rows, key=lambda r: r.at)
        inside = [r for r in rows if r.at >= since]
        before = [r for r in rows if r.at < since]
        if not inside:
            continue
        base, current = (before[-1] if before else inside[0]), inside[-1]
        processes += 1
        if base is current:
            continue  # alive, nothing to compare with yet
        old = dict(base.buckets)
        for bound, count in current.buckets:
            latency[bound] = latency.get(bound, 0.0) + count - old.get(bound, 0.0)
        errors += current.errors - base.errors
        stored += current.stored - base.stored
        seconds = max(seconds, current.at - base.at)
    if not seconds:
        return {
            "p95_seconds": None,
            "error_rate": None,
            "errors": None,
            "stored": None,
            "seconds": 0.0,
            "processes": processes,
        }
    return {
        "p95_seconds": p95(sorted(latency.items())),
        "error_rate": (errors / stored) if stored else None,
        "errors": errors,
        "stored": stored,
        "seconds": seconds,
        "processes": processes,
    }


def window(
    *,
    now: datetime,
    backend: Readings | None = None,
    instance: str = INSTANCE,
    sources: Sources = SOURCES,
) -> dict[str, float | None]:
    """p95 publish latency (seconds), error frames per message and messages stored over the
    last five minutes, on every process that published readings (this one's taken now)."""
    at = now.timestamp()
    store = backend if backend is not None else readings()
    try:
        store.publish(instance, read(sources, at=at))
        found = store.recent(since=at - WINDOW.total_seconds())
    except Exception:
        log.warning("live delivery figures: readings unavailable", exc_info=True)
        found = {}
    return merged(found, since=at - WINDOW.total_seconds())


# Publishing from every process ----------------------------------------------------------

_publisher: threading.Thread | None = None
_publisher_lock = threading.Lock()


def _publish_forever(store: Readings) -> None:
    failing = False
    while True:
        try:
            store.publish(INSTANCE, read(at=time.time()))
        except Exception:
            if not failing:  # one warning per outage, not one per tick
                log.warning("live delivery figures: publishing failed; retrying", exc_info=True)
            failing = True
        else:
            failing = False
        time.sleep(PUBLISH_SECONDS)


def ensure_publishing() -> None:
    """Start this process's publisher (once): with Redis, every process's figures reach the
    dashboard, whichever process serves it. On the embedded default there is nothing to do."""
    global _publisher
    if _publisher is not None:
        return
    store = readings()
    if isinstance(store, MemoryReadings):
        return
    with _publisher_lock:
        if _publisher is None:
            _publisher = threading.Thread(
                target=_publish_forever, args=(store,), name="analytics-live-publisher", daemon=True
            )
            _publisher.start()
