"""CloudWatch Embedded Metric Format lines built from the Prometheus registry."""

from __future__ import annotations

import json
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from chatsite.ops.emf import EmfEmitter, emf_name


def emitter(registry: CollectorRegistry, lines: list[str]) -> EmfEmitter:
    return EmfEmitter(namespace="Chatsite", service="chat-test", registry=registry, write=lines.append)


def by_dimension(lines: list[str]) -> dict[str, dict[str, Any]]:
    """Documents keyed by their extra dimension value ('' for the Service-only one)."""
    documents = [json.loads(line) for line in lines]
    keyed = {}
    for document in documents:
        [dimensions] = document["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
        keyed[document.get(dimensions[1], "") if len(dimensions) > 1 else ""] = document
    return keyed


def test_names_follow_cloudwatch_conventions() -> None:
    """Prometheus names become CamelCase without the prefix or the unit suffix."""
    assert emf_name("chatsite_messages_stored") == "MessagesStored"
    assert emf_name("chatsite_store_latency_seconds") == "StoreLatency"


def test_counters_are_written_as_their_increase_since_the_last_line() -> None:
    """A counter's value in each line is what it gained in the interval, zero when idle."""
    registry = CollectorRegistry()
    stored = Counter("chatsite_messages_stored", "x", registry=registry)
    lines: list[str] = []
    writer = emitter(registry, lines)
    stored.inc(3)
    writer.flush()
    stored.inc(2)
    writer.flush()
    writer.flush()
    values = [json.loads(line)["MessagesStored"] for line in lines]
    assert values == [3, 2, 0]
    document = json.loads(lines[0])
    assert document["Service"] == "chat-test"
    assert document["_aws"]["CloudWatchMetrics"][0] == {
        "Namespace": "Chatsite",
        "Dimensions": [["Service"]],
        "Metrics": [{"Name": "MessagesStored", "Unit": "Count"}],
    }
    assert isinstance(document["_aws"]["Timestamp"], int)


def test_labelled_counters_are_summed_and_split_by_their_label() -> None:
    """Errors by code: one total under Service, and a line per code that changed, with Code as dimension."""
    registry = CollectorRegistry()
    errors = Counter("chatsite_errors", "x", ["code"], registry=registry)
    lines: list[str] = []
    errors.labels(code="internal_error").inc()
    errors.labels(code="invalid_json").inc(4)
    emitter(registry, lines).flush()
    documents = by_dimension(lines)
    assert documents[""]["Errors"] == 5
    assert documents["internal_error"]["Errors"] == 1
    assert documents["invalid_json"]["Errors"] == 4
    assert documents["invalid_json"]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Service", "Code"]]


def test_gauges_are_their_value_and_histograms_their_mean_in_milliseconds() -> None:
    """An open-connections gauge is written as is; a latency histogram as the interval's mean in ms."""
    registry = CollectorRegistry()
    gauge = Gauge("chatsite_connections_open", "x", registry=registry)
    latency = Histogram("chatsite_store_latency_seconds", "x", ["operation"], registry=registry)
    lines: list[str] = []
    writer = emitter(registry, lines)
    gauge.set(7)
    latency.labels(operation="get_room").observe(0.002)
    latency.labels(operation="append_message").observe(0.010)
    writer.flush()
    base = by_dimension(lines)[""]
    assert base["ConnectionsOpen"] == 7
    assert base["StoreLatency"] == 6.0
    units = {m["Name"]: m["Unit"] for m in base["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units["StoreLatency"] == "Milliseconds"
    lines.clear()
    writer.flush()
    # No observation in this interval: no latency value rather than a misleading zero.
    assert "StoreLatency" not in by_dimension(lines)[""]


def test_histograms_also_write_their_p99_from_the_buckets_of_the_interval() -> None:
    """99 fast calls and one slow one: p99 is the bucket bound holding the 99th; the next interval forgets them."""
    registry = CollectorRegistry()
    latency = Histogram(
        "chatsite_store_latency_seconds", "x", ["operation"], buckets=(0.005, 0.05, 0.5), registry=registry
    )
    lines: list[str] = []
    writer = emitter(registry, lines)
    for _ in range(98):
        latency.labels(operation="get_room").observe(0.001)
    latency.labels(operation="append_message").observe(0.02)
    latency.labels(operation="append_message").observe(0.4)
    writer.flush()
    base = by_dimension(lines)[""]
    assert base["StoreLatencyP99"] == 50.0  # the 99th of 100 is the 0.02 s call: bucket <= 50 ms
    units = {m["Name"]: m["Unit"] for m in base["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units["StoreLatencyP99"] == "Milliseconds"
    lines.clear()
    for _ in range(10):
        latency.labels(operation="get_room").observe(2.0)  # past the last bucket
    writer.flush()
    assert by_dimension(lines)[""]["StoreLatencyP99"] == 500.0  # reported as the last finite bound
    lines.clear()
    writer.flush()
    assert "StoreLatencyP99" not in by_dimension(lines).get("", {})
