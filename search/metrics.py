"""Search's metrics: queries, indexing failures, and how far the index lags the store.

The lag is measured when /metrics is scraped (a scan of the room list against the index's
cursors: search.indexer.lag), not on any per-message path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, Final

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

QUERIES: Final = Histogram(
    "chatsite_search_query_seconds",
    "Duration of one user search (engine query and the store check of the page).",
    ["engine"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
INVALID_QUERIES: Final = Counter("chatsite_search_invalid_queries", "Searches refused as invalid_query.")
INDEX_FAILURES: Final = Counter(
    "chatsite_search_index_failures", "Batches of stored room events the index failed to take (retried)."
)
INDEX_CPU: Final = Counter(
    "chatsite_search_index_cpu_seconds",
    "CPU time this process spent writing room events to the search index (the feed's thread;"
    " a PostgreSQL server's own share is not in it).",
)
INDEXED_EVENTS: Final = Counter(
    "chatsite_search_indexed_events", "Room events the feed handed to the search index (taken or failed)."
)


class _LagCollector(Collector):
    """Measures the lag with the function it is given (search.indexer.lag: the indexer
    imports this module for its counters, so it hands the measure over, not the reverse)."""

    def __init__(self, measure: Callable[[], Any]) -> None:
        self.measure = measure

    def collect(self) -> Iterator[GaugeMetricFamily]:
        events = GaugeMetricFamily(
            "chatsite_search_index_lag_events", "Room events stored and not yet in the search index."
        )
        rooms = GaugeMetricFamily("chatsite_search_index_lag_rooms", "Rooms whose search index is behind.")
        try:
            lag = self.measure()
        except Exception:
            log.warning("search: the index lag could not be measured", exc_info=True)
            return
        events.add_metric([], lag.events_behind)
        rooms.add_metric([], lag.rooms_behind)
        yield events
        yield rooms

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())


_collector: _LagCollector | None = None


def register(measure: Callable[[], Any]) -> None:
    global _collector
    if _collector is None:
        _collector = _LagCollector(measure)
        REGISTRY.register(_collector)
