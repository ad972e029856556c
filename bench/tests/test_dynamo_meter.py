"""bench.dynamo_meter bills by AWS's rules: item sizes, and index writes by what a write touches."""

from __future__ import annotations

from typing import Any

from bench.dynamo_meter import DynamoMeter, item_size, value_size
from chat.storage import schema


def test_item_size_counts_names_and_values() -> None:
    """Names and values in bytes: strings as UTF-8, numbers by digit pairs, maps with overhead."""
    assert value_size({"S": "héllo"}) == 6
    assert value_size({"N": "12345"}) == 4  # 3 digit pairs, rounded up, plus one
    assert value_size({"BOOL": True}) == 1
    assert value_size({"M": {"a": {"N": "1"}}}) == 3 + 1 + 1 + 2
    assert item_size({"id": {"S": "abc"}, "ttl": {"N": "1796317094"}}) == 2 + 3 + 3 + 6
    assert item_size(None) == 0


class NoEvents:
    class meta:
        class events:
            @staticmethod
            def register(*args: Any) -> None: ...


def test_index_writes_follow_what_the_write_touches() -> None:
    """A connection row's ttl moving writes both of its indexes (they project every attribute);
    a room's lastSeq moving writes no keys-only index, and a sparse index only for items in it."""
    names = schema.TableNames.with_prefix("t-")
    meter = DynamoMeter(NoEvents(), tables=names)
    row = {"connectionId": {"S": "c1"}, "userId": {"S": "u1"}, "instanceId": {"S": "i1"}, "ttl": {"N": "100"}}
    assert meter._index_units(names.connections, row, {**row, "ttl": {"N": "200"}}) == 2
    assert meter._index_units(names.connections, None, row) == 2
    assert meter._index_units(names.connections, row, row) == 0
    room = {"roomId": {"S": "r"}, "lastSeq": {"N": "1"}, "createdBy": {"S": "u"}, "createdAt": {"S": "t"}}
    assert meter._index_units(names.rooms, room, {**room, "lastSeq": {"N": "2"}}) == 0  # creator index: keys only
    public = {**room, "listing": {"S": "public"}}
    assert meter._index_units(names.rooms, public, {**public, "lastSeq": {"N": "2"}}) == 1
