"""This process's own metrics over the last five minutes, for the dashboard's "now".

Prometheus counters only grow, so a window is a difference of two readings: every call of
`window` reads the registry, keeps the reading, and compares it with the oldest one still
inside the window. The readings are of this process only (the one serving the admin page);
the dashboard says so. Across processes, Prometheus or CloudWatch hold the real figures.

What "delivery latency" means here: the histogram Chatsite has, the time of one channel-layer
publish of a stored message (chatsite_broadcast_latency_seconds); the p95 is the upper bound
of the bucket holding the 95th percentile. The error rate is error frames per message stored.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from chat import metrics

WINDOW: Final = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Reading:
    at: datetime
    buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count)
    errors: float
    stored: float


_readings: deque[Reading] = deque(maxlen=2000)
_lock = threading.Lock()


def _read(now: datetime) -> Reading:
    buckets: list[tuple[float, float]] = []
    for family in metrics.BROADCAST_LATENCY.collect():
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                buckets.append((float(sample.labels["le"]), sample.value))
    errors = sum(s.value for f in metrics.ERRORS.collect() for s in f.samples if s.name.endswith("_total"))
    stored = sum(s.value for f in metrics.MESSAGES_STORED.collect() for s in f.samples if s.name.endswith("_total"))
    return Reading(at=now, buckets=tuple(sorted(buckets)), errors=errors, stored=stored)


def p95(buckets: list[tuple[float, float]]) -> float | None:
    """The upper bound of the bucket holding the 95th percentile of cumulative counts."""
    total = buckets[-1][1] if buckets else 0
    if total <= 0:
        return None
    for bound, count in buckets:
        if count >= 0.95 * total:
            return bound
    return None


def window(*, now: datetime) -> dict[str, float | None]:
    """p95 publish latency (seconds), error frames per message and messages stored, over the
    part of the last five minutes this process has readings for."""
    current = _read(now)
    with _lock:
        while _readings and now - _readings[0].at > WINDOW:
            _readings.popleft()
        base = _readings[0] if _readings else None
        _readings.append(current)
    if base is None:
        return {"p95_seconds": None, "error_rate": None, "errors": None, "stored": None, "seconds": 0.0}
    diff = [(bound, count - old) for (bound, count), (_, old) in zip(current.buckets, base.buckets, strict=False)]
    stored = current.stored - base.stored
    errors = current.errors - base.errors
    return {
        "p95_seconds": p95(diff),
        "error_rate": (errors / stored) if stored else None,
        "errors": errors,
        "stored": stored,
        "seconds": (now - base.at).total_seconds(),
    }
