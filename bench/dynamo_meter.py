"""Counts what a boto3 DynamoDB client asks of DynamoDB: requests per operation, and the
read and write capacity units AWS would bill for them.

Attached to a client's own event system (botocore's `before-parameter-build` and
`after-call` events), so it sees exactly the calls Chatsite makes, retries by botocore
included once each (a retry is one more request on the wire, but botocore emits these
events once per API call: retries are not in the counts).

Capacity units are computed here, not read from the answers: moto returns a fixed
ConsumedCapacity whatever the item size, and not for every operation. The rules applied
(AWS's, for on-demand and provisioned tables alike):

- Item size: attribute names plus values (strings as UTF-8 bytes, numbers about one byte per
  two digits plus one, booleans one byte, lists and maps three bytes plus their contents).
- Write: ceil(size / 1 KB) per item written, the larger of the item before and after the
  write; twice that inside TransactWriteItems. Each global secondary index the item is in,
  before or after, costs one more write of ceil(size / 1 KB) when the write touches it (any
  change of the item for an index projecting every attribute, a change of its keys for a
  keys-only one), two when the item moves within the index (its index key changes).
- Read: ceil(size / 4 KB) per item read by GetItem or BatchGetItem, at least one unit per
  item asked for; Query and Scan: ceil(total size of the items returned / 4 KB) per request,
  at least one (the items a FilterExpression drops are not seen here, so a filtered read is
  under-counted). Halved for eventually consistent reads (every index read is one);
  twice for TransactGetItems.

To know the size of the item before and after each write, the meter reads it with a second
client of its own (uncounted, strongly consistent) around every write. That is the bench's
cost, not Chatsite's.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from chat.storage import schema

WRITE_OPS = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
READ_OPS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"})


def value_size(value: dict[str, Any]) -> int:
    """Bytes of one attribute value in DynamoDB's wire format ({"S": "x"}, {"N": "3"}, ...)."""
    (kind, inner), *_ = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "N":
        digits = str(inner).lstrip("-").replace(".", "").lstrip("0") or "0"
        return math.ceil(len(digits) / 2) + 1
    if kind == "B":
        return len(inner)
    if kind in {"BOOL", "NULL"}:
        return 1
    if kind in {"SS", "NS", "BS"}:
        return sum(value_size({kind[0]: v}) for v in inner)
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + value_size(v) for k, v in inner.items())
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: dict[str, Any] | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


@dataclass
class Tally:
    """What one stretch of work cost: requests by operation, units by kind."""

    requests: Counter[str] = field(default_factory=Counter)
    rcu: float = 0.0
    wcu: float = 0.0  # base tables
    gsi_wcu: float = 0.0  # global secondary indexes

    @property
    def reads(self) -> int:
        return sum(n for op, n in self.requests.items() if op in READ_OPS)

    @property
    def writes(self) -> int:
        return sum(n for op, n in self.requests.items() if op in WRITE_OPS)

    def per(self, count: float) -> dict[str, Any]:
        """Each figure divided by `count` (messages, sockets, socket-hours)."""
        return {
            "requests": {op: round(n / count, 3) for op, n in sorted(self.requests.items())},
            "read_requests": round(self.reads / count, 3),
            "write_requests": round(self.writes / count, 3),
            "rcu": round(self.rcu / count, 3),
            "wcu": round(self.wcu / count, 3),
            "gsi_wcu": round(self.gsi_wcu / count, 3),
        }


class DynamoMeter:
    """Attach to a boto3 DynamoDB client; `take()` returns the tally since the last take."""

    def __init__(self, client: Any, *, tables: schema.TableNames, shadow: Any | None = None) -> None:
        self.client = client
        self.shadow = shadow  # None: count requests only, no capacity units
        self._tables = {tables.of(t): t for t in schema.TABLES}
        self._lock = threading.Lock()
        self._tally = Tally()
        events = client.meta.events
        events.register("before-parameter-build.dynamodb", self._before)
        events.register("after-call.dynamodb", self._after)

    def detach(self) -> None:
        events = self.client.meta.events
        events.unregister("before-parameter-build.dynamodb", self._before)
        events.unregister("after-call.dynamodb", self._after)

    def take(self) -> Tally:
        with self._lock:
            tally, self._tally = self._tally, Tally()
        return tally

    # Hooks ----------------------------------------------------------------------------------

    def _before(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        context["meter_params"] = params
        if self.shadow is not None and model.name in WRITE_OPS:
            context["meter_before"] = [(w, self._image(w)) for w in self._written(model.name, params)]

    def _after(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        op = model.name
        params: dict[str, Any] = context.get("meter_params", {})
        failed = "Error" in parsed
        rcu = wcu = gsi = 0.0
        if self.shadow is not None and not failed:
            if op in READ_OPS:
                rcu = self._read_units(op, params, parsed)
            elif op in WRITE_OPS:
                factor = 2 if op == "TransactWriteItems" else 1
                for written, before in context.get("meter_before", []):
                    after = self._image(written)
                    size = max(item_size(before), item_size(after))
                    wcu += factor * max(1, math.ceil(size / 1024))
                    gsi += self._index_units(written[0], before, after)
        with self._lock:
            self._tally.requests[op] += 1
            self._tally.rcu += rcu
            self._tally.wcu += wcu
            self._tally.gsi_wcu += gsi

    # Units --------------------------------------------------------------------------------------

    def _key(self, table: str, item: dict[str, Any]) -> dict[str, Any]:
        name = self._tables[table].hash_key.name
        return {name: item[name]}

    def _written(self, op: str, params: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """(table, key) of every item a write request touches."""
        if op == "PutItem":
            return [(params["TableName"], self._key(params["TableName"], params["Item"]))]
        if op in {"UpdateItem", "DeleteItem"}:
            return [(params["TableName"], params["Key"])]
        if op == "BatchWriteItem":
            found = []
            for table, requests in params["RequestItems"].items():
                for request in requests:
                    if "PutRequest" in request:
                        found.append((table, self._key(table, request["PutRequest"]["Item"])))
                    else:
                        found.append((table, request["DeleteRequest"]["Key"]))
            return found
        found = []
        for entry in params["TransactItems"]:
            (kind, body), *_ = entry.items()
            if kind == "ConditionCheck":
                continue
            key = self._key(body["TableName"], body["Item"]) if kind == "Put" else body["Key"]
            found.append((body["TableName"], key))
        return found

    def _image(self, written: tuple[str, dict[str, Any]]) -> dict[str, Any] | None:
        table, key = written
        assert self.shadow is not None
        item: dict[str, Any] | None = self.shadow.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        return item

    def _index_units(self, table: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> float:
        if before == after:
            return 0.0
        units = 0.0
        size = max(item_size(before), item_size(after))
        per_write = max(1, math.ceil(size / 1024))
        for index in self._tables[table].indexes:
            names = [k.name for k in (index.hash_key, index.range_key) if k is not None]

            def keys(item: dict[str, Any] | None, names: list[str] = names) -> tuple[Any, ...] | None:
                if not item or any(n not in item for n in names):
                    return None
                return tuple(str(item[n]) for n in names)

            was, now = keys(before), keys(after)
            if was is None and now is None:
                continue
            if was is not None and now is not None and was != now:
                units += 2 * per_write  # out of one place in the index, into another
            elif was != now or not index.keys_only:
                units += per_write
        return units

    def _read_units(self, op: str, params: dict[str, Any], parsed: dict[str, Any]) -> float:
        if op == "GetItem":
            size = item_size(parsed.get("Item"))
            return max(1, math.ceil(size / 4096)) * (1.0 if params.get("ConsistentRead") else 0.5)
        if op == "BatchGetItem":
            units = 0.0
            for table, request in params["RequestItems"].items():
                factor = 1.0 if request.get("ConsistentRead") else 0.5
                found = parsed.get("Responses", {}).get(table, [])
                sizes = [item_size(item) for item in found]
                missing = len(request["Keys"]) - len(found)
                units += factor * (sum(max(1, math.ceil(s / 4096)) for s in sizes) + max(0, missing))
            return units
        if op == "TransactGetItems":
            sizes = [item_size(r.get("Item")) for r in parsed.get("Responses", [])]
            return 2.0 * sum(max(1, math.ceil(s / 4096)) for s in sizes)
        size = sum(item_size(item) for item in parsed.get("Items", []))
        consistent = params.get("ConsistentRead") and "IndexName" not in params
        return max(1, math.ceil(size / 4096)) * (1.0 if consistent else 0.5)
