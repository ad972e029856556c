"""The same metrics as CloudWatch Embedded Metric Format log lines (optional).

With METRICS_EMF=1 a daemon thread writes, every METRICS_EMF_INTERVAL seconds, JSON lines
that CloudWatch Logs turns into metrics (whether they arrive through the CloudWatch agent,
the awslogs log driver or PutLogEvents): counters as the increase since the last line,
gauges as their value, latency histograms as the mean in milliseconds over the interval and
as its 99th percentile (`<Name>P99`, read from the histogram's buckets: the upper bound of the
bucket that holds the 99th percent of the interval's observations, so never an underestimate;
a fleet's p99 is at most the Maximum of its processes').

Every line has the dimension Service=<METRICS_EMF_SERVICE>; the dashboard and alarms in
deploy/cloudformation read these names. A labelled metric (errors by code, say) is
written once summed under the Service dimension alone, and once per label value with
that label as a second dimension, when it changed.
"""

from __future__ import annotations

import atexit
import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from prometheus_client import REGISTRY, CollectorRegistry

import chat.metrics  # noqa: F401 - registers Chatsite's metrics with the default registry

PREFIX: Final = "chatsite_"


def emf_name(name: str) -> str:
    """chatsite_messages_stored -> MessagesStored; chatsite_store_latency_seconds -> StoreLatency."""
    base = name.removeprefix(PREFIX).removesuffix("_seconds")
    return "".join(part.capitalize() for part in base.split("_"))


def _dimension(label: str) -> str:
    return "".join(part.capitalize() for part in label.split("_"))


def _stdout(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class EmfEmitter:
    """Turns the registry into EMF documents; remembers totals to write deltas."""

    def __init__(
        self,
        *,
        namespace: str,
        service: str,
        registry: CollectorRegistry = REGISTRY,
        write: Callable[[str], None] = _stdout,
    ) -> None:
        self.namespace = namespace
        self.service = service
        self.registry = registry
        self.write = write
        self._previous: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._lock = threading.Lock()

    def _delta(self, key: tuple[str, tuple[tuple[str, str], ...]], total: float) -> float:
        previous = self._previous.get(key, 0.0)
        self._previous[key] = total
        # A counter that went down was reset (a restarted process): count from zero.
        return total - previous if total >= previous else total

    def documents(self, now_ms: int | None = None) -> list[dict[str, Any]]:
        """One document for the Service dimension, one per changed label value."""
        timestamp = now_ms if now_ms is not None else int(time.time() * 1000)
        # (label name, label value) or None -> {metric name: (value, unit)}
        groups: dict[tuple[str, str] | None, dict[str, tuple[float, str]]] = {None: {}}
        for family in self.registry.collect():
            if not family.name.startswith(PREFIX) or family.type not in ("counter", "gauge", "histogram"):
                continue
            name = emf_name(family.name)
            per_labels: dict[tuple[tuple[str, str], ...], dict[str, float]] = {}
            for sample in family.samples:
                labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
                per_labels.setdefault(labels, {})[sample.name.removeprefix(family.name)] = sample.value
            summed: dict[str, float] = {}
            if family.type == "histogram":
                p99 = self._p99(family.name, family.samples)
                if p99 is not None:
                    groups[None][name + "P99"] = (p99, "Milliseconds")
            for labels, values in per_labels.items():
                point = self._point(family.type, family.name, labels, values)
                if point is None:
                    continue
                value, unit, weight = point
                if family.type == "histogram":
                    summed["sum"] = summed.get("sum", 0.0) + value * weight
                    summed["count"] = summed.get("count", 0.0) + weight
                else:
                    summed["value"] = summed.get("value", 0.0) + value
                if labels and (value != 0 or family.type == "gauge") and len(labels) == 1:
                    groups.setdefault(labels[0], {})[name] = (value, unit)
            unit = "Milliseconds" if family.type == "histogram" else "Count"
            if family.type == "histogram":
                if summed.get("count"):
                    groups[None][name] = (summed["sum"] / summed["count"], unit)
            else:
                groups[None][name] = (summed.get("value", 0.0), unit)
        return [self._document(timestamp, dimension, metrics) for dimension, metrics in groups.items() if metrics]

    def _p99(self, family: str, samples: Any) -> float | None:
        """The interval's 99th percentile in ms over every label value, from bucket deltas."""
        cumulative: dict[float, float] = {}
        for sample in samples:
            if sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                cumulative[bound] = cumulative.get(bound, 0.0) + sample.value
        deltas = {
            bound: self._delta((family + "_bucket", (("le", str(bound)),)), total)
            for bound, total in cumulative.items()
        }
        bounds = sorted(deltas)
        if not bounds or deltas[bounds[-1]] <= 0:
            return None
        wanted = 0.99 * deltas[bounds[-1]]
        finite = [b for b in bounds if b != float("inf")]
        for bound in bounds:
            if deltas[bound] >= wanted:
                # Past the last finite bucket the exact value is unknown: report that bound.
                return (bound if bound != float("inf") else finite[-1]) * 1000.0
        return None

    def _point(
        self, kind: str, family: str, labels: tuple[tuple[str, str], ...], values: dict[str, float]
    ) -> tuple[float, str, float] | None:
        if kind == "counter":
            return self._delta((family, labels), values.get("_total", 0.0)), "Count", 1.0
        if kind == "gauge":
            return values.get("", 0.0), "Count", 1.0
        count = self._delta((family + "_count", labels), values.get("_count", 0.0))
        total = self._delta((family + "_sum", labels), values.get("_sum", 0.0))
        if count <= 0:
            return None
        return total / count * 1000.0, "Milliseconds", count

    def _document(
        self, timestamp: int, dimension: tuple[str, str] | None, metrics: dict[str, tuple[float, str]]
    ) -> dict[str, Any]:
        dimensions = ["Service"]
        document: dict[str, Any] = {"Service": self.service}
        if dimension is not None:
            dimensions.append(_dimension(dimension[0]))
            document[_dimension(dimension[0])] = dimension[1]
        document["_aws"] = {
            "Timestamp": timestamp,
            "CloudWatchMetrics": [
                {
                    "Namespace": self.namespace,
                    "Dimensions": [dimensions],
                    "Metrics": [{"Name": name, "Unit": unit} for name, (_, unit) in sorted(metrics.items())],
                }
            ],
        }
        for name, (value, _) in metrics.items():
            document[name] = round(value, 3)
        return document

    def flush(self) -> int:
        """Write one line per document; return how many."""
        with self._lock:
            documents = self.documents()
        for document in documents:
            self.write(json.dumps(document, separators=(",", ":")))
        return len(documents)


class _Ticker(threading.Thread):
    def __init__(self, emitter: EmfEmitter, interval: float) -> None:
        super().__init__(name="chatsite-emf", daemon=True)
        self.emitter = emitter
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.emitter.flush()


_ticker: _Ticker | None = None


def start(*, namespace: str, service: str, interval: float) -> EmfEmitter:
    """Start the background writer once per process; flush a last time at exit."""
    global _ticker
    if _ticker is not None:
        return _ticker.emitter
    emitter = EmfEmitter(namespace=namespace, service=service)
    _ticker = _Ticker(emitter, interval)
    _ticker.start()
    atexit.register(emitter.flush)
    return emitter


def start_from_settings() -> EmfEmitter | None:
    from django.conf import settings

    if not settings.METRICS_EMF:
        return None
    return start(
        namespace=settings.METRICS_EMF_NAMESPACE,
        service=settings.METRICS_EMF_SERVICE,
        interval=float(settings.METRICS_EMF_INTERVAL),
    )
