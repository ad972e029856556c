"""manage.py create_dynamodb_tables against a moto server process."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from chat.storage import schema
from chat.storage.dynamodb import DynamoDBClient, DynamoDBStore, make_client
from tests.fixtures.aws import MotoServer


@pytest.fixture
def client(aws_env: dict[str, str]) -> DynamoDBClient:
    return make_client(region=aws_env["AWS_REGION"])


@pytest.fixture
def names(client: DynamoDBClient) -> Iterator[schema.TableNames]:
    """Table names of this test only, in the settings; the tables go at the end."""
    names = schema.TableNames.with_prefix(f"cmd-{uuid.uuid4().hex[:10]}-")
    with override_settings(
        DYNAMODB_CONNECTIONS_TABLE=names.connections,
        DYNAMODB_MESSAGES_TABLE=names.messages,
        DYNAMODB_ROOMS_TABLE=names.rooms,
    ):
        yield names
    existing = set(client.list_tables()["TableNames"])
    for table in schema.TABLES:
        if names.of(table) in existing:
            client.delete_table(TableName=names.of(table))


def run() -> str:
    out = io.StringIO()
    call_command("create_dynamodb_tables", stdout=out)
    return out.getvalue()


def indexes(client: DynamoDBClient, name: str) -> dict[str, list[tuple[str, str]]]:
    table = client.describe_table(TableName=name)["Table"]
    return {
        index["IndexName"]: [(k["AttributeName"], k["KeyType"]) for k in index["KeySchema"]]
        for index in table.get("GlobalSecondaryIndexes", [])
    }


def ttl_of(client: DynamoDBClient, name: str) -> tuple[Any, Any]:
    description = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    return description.get("TimeToLiveStatus"), description.get("AttributeName")


def test_creates_the_tables_indexes_and_ttl_and_says_so(
    client: DynamoDBClient, names: schema.TableNames, moto_server: MotoServer
) -> None:
    """The command creates Connections, Messages and Rooms with their keys, indexes and TTL on `ttl`."""
    out = run()
    for name in (names.connections, names.messages, names.rooms):
        assert f"created table {name}" in out
        assert client.describe_table(TableName=name)["Table"]["TableStatus"] == "ACTIVE"
    assert f"enabled TTL on {names.messages}.ttl" in out

    assert indexes(client, names.connections) == {
        "UserIdIndex": [("userId", "HASH")],
        "InstanceIdIndex": [("instanceId", "HASH")],
    }
    assert indexes(client, names.messages) == {
        "RoomIdTimestampIndex": [("roomId", "HASH"), ("timestamp", "RANGE")],
        "RoomSeqIndex": [("roomId", "HASH"), ("seq", "RANGE")],
        "ReplyIndex": [("replyToId", "HASH"), ("seq", "RANGE")],
    }
    assert indexes(client, names.rooms) == {
        "RoomMembersIndex": [("memberRoomId", "HASH"), ("memberUserId", "RANGE")],
        "UserRoomsIndex": [("memberUserId", "HASH"), ("memberRoomId", "RANGE")],
        "PublicRoomsIndex": [("listing", "HASH"), ("roomId", "RANGE")],
        "RoomCreatorIndex": [("createdBy", "HASH"), ("createdAt", "RANGE")],
    }
    keys = {
        name: client.describe_table(TableName=name)["Table"]["KeySchema"]
        for name in (names.connections, names.messages, names.rooms)
    }
    assert keys == {
        names.connections: [{"AttributeName": "connectionId", "KeyType": "HASH"}],
        names.messages: [{"AttributeName": "messageId", "KeyType": "HASH"}],
        names.rooms: [{"AttributeName": "roomId", "KeyType": "HASH"}],
    }
    assert ttl_of(client, names.connections) == ("ENABLED", "ttl")
    assert ttl_of(client, names.messages) == ("ENABLED", "ttl")


def test_a_second_run_changes_nothing(client: DynamoDBClient, names: schema.TableNames) -> None:
    """Run twice, the command reports the tables as present and does nothing else."""
    run()
    client.put_item(TableName=names.rooms, Item={"roomId": {"S": "kept"}})
    out = run()
    assert "created" not in out and "enabled TTL" not in out
    assert out.strip().endswith("nothing to do")
    assert f"table {names.messages} (Messages) exists" in out
    assert "Item" in client.get_item(TableName=names.rooms, Key={"roomId": {"S": "kept"}})


def test_tables_of_the_origin_design_get_the_missing_indexes(client: DynamoDBClient, names: schema.TableNames) -> None:
    """Origin-design tables (no seq or instance index) keep their items and gain the indexes Chatsite needs."""
    origin_messages = {
        **schema.create_table_request(schema.MESSAGES, names.messages),
        "AttributeDefinitions": [
            {"AttributeName": "messageId", "AttributeType": "S"},
            {"AttributeName": "roomId", "AttributeType": "S"},
            {"AttributeName": "timestamp", "AttributeType": "S"},
        ],
        "GlobalSecondaryIndexes": [schema.create_index_request(schema.MESSAGES.index("RoomIdTimestampIndex"))],
    }
    client.create_table(**origin_messages)
    client.put_item(TableName=names.messages, Item={"messageId": {"S": "old"}, "roomId": {"S": "general"}})
    out = run()
    assert f"created index RoomSeqIndex on {names.messages}" in out
    assert f"created index ReplyIndex on {names.messages}" in out  # a table of before threads, too
    assert f"created index InstanceIdIndex on {names.connections}" not in out  # that table was new
    assert set(indexes(client, names.messages)) == {"RoomIdTimestampIndex", "RoomSeqIndex", "ReplyIndex"}
    assert "Item" in client.get_item(TableName=names.messages, Key={"messageId": {"S": "old"}})


def test_member_sets_of_the_first_design_become_membership_items(
    client: DynamoDBClient, names: schema.TableNames
) -> None:
    """A Rooms table of the first design (members as a set on the room item) gains the member
    indexes, each member an item of its own, and the set goes; a second run moves nothing."""
    first_design = schema.create_table_request(schema.ROOMS, names.rooms)
    first_design.pop("GlobalSecondaryIndexes")
    first_design["AttributeDefinitions"] = [{"AttributeName": "roomId", "AttributeType": "S"}]
    client.create_table(**first_design)
    client.put_item(
        TableName=names.rooms,
        Item={
            "roomId": {"S": "plans"},
            "name": {"S": "Plans"},
            "createdAt": {"S": "2026-01-01T00:00:00.000000Z"},
            "lastSeq": {"N": "0"},
            "private": {"BOOL": True},
            "members": {"SS": ["7", "9"]},
        },
    )
    out = run()
    assert f"created index UserRoomsIndex on {names.rooms}" in out
    assert "moved 2 members" in out
    store = DynamoDBStore(client=client, tables=names)
    assert store.room_members("plans") == ["7", "9"]
    assert store.is_member(room_id="plans", user_id="9")
    assert [m.room_id for m in store.rooms_of_user("7")] == ["plans"]
    assert "members" not in client.get_item(TableName=names.rooms, Key={"roomId": {"S": "plans"}})["Item"]
    assert [r.room_id for r in store.list_rooms()] == ["plans"]
    assert "moved" not in run()


def test_rooms_stored_before_the_listing_indexes_are_listed_once(
    client: DynamoDBClient, names: schema.TableNames
) -> None:
    """A Rooms table without PublicRoomsIndex and RoomCreatorIndex gains them; its public
    rooms and private rooms (not DMs) are listed so browsing and moderators find them, and
    its rooms count for their creators' quota; a second run lists nothing more."""
    newer = {"PublicRoomsIndex", "RoomCreatorIndex"}
    older = schema.create_table_request(schema.ROOMS, names.rooms)
    older["GlobalSecondaryIndexes"] = [i for i in older["GlobalSecondaryIndexes"] if i["IndexName"] not in newer]
    older["AttributeDefinitions"] = [
        a for a in older["AttributeDefinitions"] if a["AttributeName"] not in {"listing", "createdBy", "createdAt"}
    ]
    client.create_table(**older)

    def room(room_id: str, **extra: Any) -> None:
        item = {"roomId": {"S": room_id}, "name": {"S": room_id}, "createdAt": {"S": "2026-01-01T00:00:00.000000Z"}}
        client.put_item(TableName=names.rooms, Item={**item, "lastSeq": {"N": "0"}, **extra})

    room("open", createdBy={"S": "u-alice"})
    room("closed", private={"BOOL": True})
    room("dm-x", private={"BOOL": True}, direct={"BOOL": True})
    out = run()
    assert f"created index PublicRoomsIndex on {names.rooms}" in out
    assert f"created index RoomCreatorIndex on {names.rooms}" in out
    assert "listed 2 rooms" in out
    store = DynamoDBStore(client=client, tables=names)
    assert [r.room_id for r in store.public_rooms()] == ["open"]
    assert [r.room_id for r in store.private_rooms()] == ["closed"]
    since = datetime(2025, 12, 31, tzinfo=UTC)
    assert store.room_creation_times(created_by="u-alice", since=since) == [datetime(2026, 1, 1, tzinfo=UTC)]
    assert "listed" not in run()


def test_a_table_with_another_key_is_an_error(client: DynamoDBClient, names: schema.TableNames) -> None:
    """A table of the right name but another primary key stops the command; it is never altered."""
    client.create_table(
        TableName=names.rooms,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with pytest.raises(CommandError, match=names.rooms):
        run()


@pytest.mark.usefixtures("aws_env")
def test_a_missing_table_name_is_named() -> None:
    """Without DYNAMODB_ROOMS_TABLE the command fails and names the variable."""
    with (
        override_settings(DYNAMODB_CONNECTIONS_TABLE="c", DYNAMODB_MESSAGES_TABLE="m", DYNAMODB_ROOMS_TABLE=""),
        pytest.raises(CommandError, match="DYNAMODB_ROOMS_TABLE"),
    ):
        run()
