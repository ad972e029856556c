"""The suite's moto server (tests/fixtures/moto_process.py) backs up the items a transaction
touches instead of whole tables; a cancelled TransactWriteItems must still change nothing.

Every DynamoDB test that sends a retry, a rival sender or a stale proposal relies on it: the
store reads "cancelled" as "nothing of this attempt was written".
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError


@pytest.fixture
def dynamodb(aws_env: dict[str, str]) -> Any:
    return boto3.client("dynamodb", endpoint_url=aws_env["AWS_ENDPOINT_URL"], region_name=aws_env["AWS_REGION"])


@pytest.fixture(params=["hash", "hash-and-range"])
def table(request: pytest.FixtureRequest, dynamodb: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """A table of its own, keyed by `pk` (and `sk`), and a function from a name to an item's key."""
    name = f"moto-process-{uuid.uuid4().hex[:10]}"
    keys = [{"AttributeName": "pk", "KeyType": "HASH"}]
    attributes = [{"AttributeName": "pk", "AttributeType": "S"}]
    if request.param == "hash-and-range":
        keys.append({"AttributeName": "sk", "KeyType": "RANGE"})
        attributes.append({"AttributeName": "sk", "AttributeType": "N"})
    dynamodb.create_table(
        TableName=name, KeySchema=keys, AttributeDefinitions=attributes, BillingMode="PAY_PER_REQUEST"
    )
    with_range = request.param == "hash-and-range"
    yield name, {"with_range": with_range}
    dynamodb.delete_table(TableName=name)


def key(name: str, *, with_range: bool) -> dict[str, Any]:
    # Two range keys under one hash key, so that putting one back must leave its sibling be.
    return {"pk": {"S": "room"}, "sk": {"N": name}} if with_range else {"pk": {"S": name}}


def everything(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    items = dynamodb.scan(TableName=table, ConsistentRead=True)["Items"]
    return sorted(items, key=lambda item: (item["pk"]["S"], item.get("sk", {}).get("N", "")))


def test_a_cancelled_transaction_leaves_every_item_as_it_was(dynamodb: Any, table: tuple[str, dict[str, Any]]) -> None:
    """An update, a put, a delete and a put over an existing item, all applied by moto before
    the last item's condition fails: afterwards the table holds exactly what it held before."""
    name, shape = table
    k = lambda n: key(n, **shape)  # noqa: E731
    for n, text in (("1", "updated one"), ("2", "deleted one"), ("3", "replaced one"), ("4", "checked one")):
        dynamodb.put_item(TableName=name, Item={**k(n), "text": {"S": text}, "count": {"N": "1"}})
    before = everything(dynamodb, name)

    with pytest.raises(ClientError) as cancelled:
        dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": name,
                        "Key": k("1"),
                        "UpdateExpression": "SET #c = #c + :one, #t = :t",
                        "ExpressionAttributeNames": {"#c": "count", "#t": "text"},
                        "ExpressionAttributeValues": {":one": {"N": "1"}, ":t": {"S": "changed"}},
                    }
                },
                {"Delete": {"TableName": name, "Key": k("2")}},
                {"Put": {"TableName": name, "Item": {**k("3"), "text": {"S": "overwritten"}}}},
                {"Put": {"TableName": name, "Item": {**k("5"), "text": {"S": "new"}}}},
                {
                    "ConditionCheck": {
                        "TableName": name,
                        "Key": k("4"),
                        "ConditionExpression": "#c = :two",
                        "ExpressionAttributeNames": {"#c": "count"},
                        "ExpressionAttributeValues": {":two": {"N": "2"}},
                    }
                },
            ]
        )
    error = cancelled.value.response
    assert error["Error"]["Code"] == "TransactionCanceledException"
    assert [reason["Code"] for reason in error["CancellationReasons"]] == ["None"] * 4 + ["ConditionalCheckFailed"]
    assert everything(dynamodb, name) == before


def test_a_committed_transaction_is_kept_whole(dynamodb: Any, table: tuple[str, dict[str, Any]]) -> None:
    name, shape = table
    k = lambda n: key(n, **shape)  # noqa: E731
    dynamodb.put_item(TableName=name, Item={**k("1"), "count": {"N": "1"}})
    dynamodb.transact_write_items(
        TransactItems=[
            {
                "Update": {
                    "TableName": name,
                    "Key": k("1"),
                    "UpdateExpression": "SET #c = #c + :one",
                    "ConditionExpression": "#c = :one",
                    "ExpressionAttributeNames": {"#c": "count"},
                    "ExpressionAttributeValues": {":one": {"N": "1"}},
                }
            },
            {"Put": {"TableName": name, "Item": {**k("2"), "count": {"N": "7"}}}},
        ]
    )
    assert [item["count"]["N"] for item in everything(dynamodb, name)] == ["2", "7"]
