"""Chatsite's metrics, defined once: every counter, gauge and histogram the chat emits.

Services and the consumer call the small `record_*` helpers below (one line at each call
site); `/metrics` exposes the default prometheus-client registry, and the optional
CloudWatch Embedded Metric Format emitter (chatsite.ops.emf) reads the same registry. An
increment costs about a microsecond under a lock: cheap enough for the per-delivery path.

Labels are bounded sets (error codes, outcomes, store operations), never user, room or
connection ids: a label per room would grow without limit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from accounts.tokens import JwksKeySet
from chat.daphne_adapt import inbound

# Store calls are usually a few milliseconds (SQLite, DynamoDB in-region); the top buckets
# catch botocore's retries with backoff.
_LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

CONNECTIONS_OPEN: Final = Gauge("chatsite_connections_open", "WebSocket connections open on this process.")
EVENT_LOOP_LAG: Final = Gauge(
    "chatsite_event_loop_lag_seconds",
    "Worst lateness of the event loop over the last few seconds (chatsite/ops/loopwatch.py).",
)
THREAD_POOL_QUEUED: Final = Gauge(
    "chatsite_thread_pool_queued",
    "Calls waiting for a thread (sync_to_async: the shared default pool and the thread-sensitive one).",
)
CONNECTIONS: Final = Counter(
    "chatsite_connections",
    "WebSocket handshakes by outcome: accepted, unauthorized (closed 4401), failed (server-side error),"
    " busy (no turn to open in time).",
    ["outcome"],
)
JOINS: Final = Counter("chatsite_joins", "Rooms joined (joinRoom frames answered with joined).")
RESUMES: Final = Counter(
    "chatsite_resumes",
    "Joins with a lastSeq, by outcome: replayed (the gap was sent) or reloaded (too far behind: latest page).",
    ["outcome"],
)
MESSAGES_STORED: Final = Counter(
    "chatsite_messages_stored", "Messages durably stored (retries of a stored clientMessageId excluded)."
)
MESSAGES_DELIVERED: Final = Counter("chatsite_messages_delivered", "Live message frames written to sockets.")
FRAMES_SHARED: Final = Counter(
    "chatsite_frames_shared",
    "Of the deliveries, those written as the room fan-out's one ready-made frame (chat.daphne_adapt.frames), "
    "not framed per socket.",
)
STORE_LATENCY: Final = Histogram(
    "chatsite_store_latency_seconds", "Duration of one storage call.", ["operation"], buckets=_LATENCY_BUCKETS
)
BROADCAST_LATENCY: Final = Histogram(
    "chatsite_broadcast_latency_seconds",
    "Duration of one channel-layer group_send for a stored message.",
    buckets=_LATENCY_BUCKETS,
)
ERRORS: Final = Counter("chatsite_errors", "Error frames sent to clients, by error code.", ["code"])
RATE_LIMIT_HITS: Final = Counter("chatsite_rate_limit_hits", "Frames refused with rate_limited.")
CHANNEL_LAYER_DROPS: Final = Counter(
    "chatsite_channel_layer_drops",
    "Channel-layer events lost: capacity (dropped by channels-redis), gap (seqs that had not reached the "
    "process a reorder window after a later one, read from the store or resynced), send_failed "
    "(group_send raised).",
    ["reason"],
)
EVENTS_REORDERED: Final = Counter(
    "chatsite_events_reordered",
    "Room events that reached a process after a later seq but within the reorder window (normal between "
    "publishers: put back in order, nothing read, no loss).",
)


class _CountsOf(Collector):
    """A counter kept as a plain dict (label value -> count) by a module that knows nothing of
    metrics, looked up and read at each scrape: nothing is added to the path that counts."""

    def __init__(self, name: str, help_text: str, label: str, counts: Callable[[], dict[str, int]]) -> None:
        self.name, self.help_text, self.label, self.counts = name, help_text, label, counts

    def describe(self) -> list[CounterMetricFamily]:
        return [CounterMetricFamily(self.name, self.help_text, labels=[self.label])]

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.help_text, labels=[self.label])
        for value, count in sorted(self.counts().items()):
            family.add_metric([value], count)
        yield family


# JWKS fetches (accounts.tokens): a flood of tokens with made-up key ids shows as fetches at the
# refetch limit, and a key endpoint in trouble as failures.
REGISTRY.register(
    _CountsOf(
        "chatsite_jwks_fetches",
        "JWKS fetches by outcome (ok, failed); at most one per AUTH_JWKS_REFETCH_INTERVAL.",
        "outcome",
        lambda: JwksKeySet.fetch_totals,
    )
)
# Reads of WebSocket data (chat.daphne_adapt.inbound): `whole` held one whole small text frame,
# read in one step; `autobahn` is every other read (handshakes, pieces, control frames).
REGISTRY.register(
    _CountsOf(
        "chatsite_client_reads",
        "Reads of WebSocket data by way: whole (one text frame, read in one step) or autobahn (the rest).",
        "way",
        lambda: inbound.reads,
    )
)

# Pre-create the label values that alarms and dashboards read, so a series exists (at 0)
# before the first event and rate() has a baseline.
for _outcome in ("accepted", "unauthorized", "failed"):
    CONNECTIONS.labels(outcome=_outcome)
for _outcome in ("replayed", "reloaded"):
    RESUMES.labels(outcome=_outcome)
for _reason in ("capacity", "gap", "send_failed"):
    CHANNEL_LAYER_DROPS.labels(reason=_reason)


# Helpers called from chat.services and chat.consumers ----------------------------------


def record_connection(outcome: str) -> None:
    """One handshake ended: accepted (now open), unauthorized, failed, or busy (no turn to
    open in time: chat.open_gate)."""
    CONNECTIONS.labels(outcome=outcome).inc()
    if outcome == "accepted":
        CONNECTIONS_OPEN.inc()


def record_refused(*, accepted: bool) -> None:
    """A socket closed with 4401: a refused handshake counts; an accepted socket whose token
    expired was counted when it opened."""
    if not accepted:
        CONNECTIONS.labels(outcome="unauthorized").inc()


def record_disconnect(*, accepted: bool) -> None:
    if accepted:
        CONNECTIONS_OPEN.dec()


def record_join(*, last_seq: int | None, recovered: bool) -> None:
    """A join answered. With a lastSeq it was a resume: replayed, or reloaded from the latest page."""
    JOINS.inc()
    if last_seq is not None:
        RESUMES.labels(outcome="replayed" if recovered else "reloaded").inc()


def record_stored(*, created: bool) -> None:
    if created:
        MESSAGES_STORED.inc()


def record_delivered(count: int = 1, *, shared: bool = False) -> None:
    MESSAGES_DELIVERED.inc(count)
    if shared:
        FRAMES_SHARED.inc(count)


def record_error(code: str) -> None:
    """An error frame went to a client."""
    ERRORS.labels(code=code).inc()
    if code == "rate_limited":
        RATE_LIMIT_HITS.inc()


def record_reordered(count: int = 1) -> None:
    EVENTS_REORDERED.inc(count)


def record_drop(reason: str, count: int = 1) -> None:
    CHANNEL_LAYER_DROPS.labels(reason=reason).inc(count)


@contextmanager
def store_timer(operation: str) -> Iterator[None]:
    """Time one storage call, failed or not."""
    start = time.perf_counter()
    try:
        yield
    finally:
        child = _store_latency.get(operation)
        if child is None:
            child = _store_latency[operation] = STORE_LATENCY.labels(operation=operation)
        child.observe(time.perf_counter() - start)


# operation -> its STORE_LATENCY child: `labels()` builds a key and takes a lock on every
# call, and a socket's open makes three store calls.
_store_latency: dict[str, Histogram] = {}


@contextmanager
def broadcast_timer() -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        BROADCAST_LATENCY.observe(time.perf_counter() - start)


class LayerDropHandler(logging.Handler):
    """Counts the events channels-redis drops at capacity.

    channels-redis drops a group message for a channel whose queue is full and says so only
    in an INFO log line ("%s of %s channels over capacity in group %s"); this handler, attached
    to its logger in settings.LOGGING, turns that line into a counter.
    """

    def emit(self, record: logging.LogRecord) -> None:
        if "over capacity" not in str(record.msg):
            return
        args = record.args if isinstance(record.args, tuple) else ()
        first = args[0] if args else 1
        count = first if isinstance(first, int) and first > 0 else 1
        record_drop("capacity", count)
