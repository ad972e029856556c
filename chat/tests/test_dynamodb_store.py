"""What only the DynamoDB backend has to get right: pages, seq races, failed transactions, settings.

The shared behaviour of both backends is in test_storage_contract.py; these tests use the
session's moto server process (requests one at a time, so moto's transactions hold).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from accounts.identity import Identity
from chat import services
from chat.errors import ChatError, ErrorCode
from chat.records import ReplyRef
from chat.storage import get_store, schema
from chat.storage.base import ConnectionRecord, NewMessage
from chat.storage.dynamodb import AppendContention, DynamoDBClient, DynamoDBStore, ensure_tables, make_client

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture
def client(aws_env: dict[str, str]) -> DynamoDBClient:
    return make_client(region=aws_env["AWS_REGION"])


@pytest.fixture
def names(client: DynamoDBClient) -> Iterator[schema.TableNames]:
    names = schema.TableNames.with_prefix(f"store-{uuid.uuid4().hex[:10]}-")
    ensure_tables(client, names, poll_seconds=0.05)
    yield names
    existing = set(client.list_tables()["TableNames"])
    for table in schema.TABLES:
        if names.of(table) in existing:
            client.delete_table(TableName=names.of(table))


@pytest.fixture
def store(client: DynamoDBClient, names: schema.TableNames) -> DynamoDBStore:
    store = DynamoDBStore(client=client, tables=names)
    store.ensure_room(room_id="lobby", name="Lobby", created_by=None, now=NOW)
    return store


def new_message(text: str, *, client_message_id: str | None = None) -> NewMessage:
    return NewMessage(
        room_id="lobby",
        user_id="u-alice",
        username="alice",
        text=text,
        connection_id="conn-1",
        client_message_id=client_message_id,
        timestamp=NOW,
        ttl_seconds=30 * 86_400,
    )


def count_calls(client: DynamoDBClient, operation: str) -> list[str]:
    calls: list[str] = []

    def count(**kwargs: Any) -> None:
        calls.append(operation)

    client.meta.events.register(f"before-call.dynamodb.{operation}", count)
    return calls


def test_history_larger_than_one_response_is_read_across_pages(store: DynamoDBStore, client: DynamoDBClient) -> None:
    """A replay of more than 1 MB of messages from the index follows LastEvaluatedKey and returns them in order."""
    store.recent_window = 0  # every seq from RoomSeqIndex
    big = "\N{GRINNING FACE}" * 4000  # 16 KB of UTF-8: 70 of them pass DynamoDB's 1 MB response limit
    for n in range(70):
        store.append_message(new_message(f"{n:02d}{big}"))
    queries = count_calls(client, "Query")
    messages = store.messages_after(room_id="lobby", after_seq=0, limit=500, now=NOW)
    assert [m.seq for m in messages] == list(range(1, 71))
    assert messages[-1].text == f"69{big}"
    assert len(queries) >= 2


def test_messages_the_index_has_not_caught_up_with_are_still_read(store: DynamoDBStore, client: DynamoDBClient) -> None:
    """A replay or gap fill right after a send gets the new message even while RoomSeqIndex lags behind."""
    for text in ("one", "two", "three"):
        store.append_message(new_message(text))

    def index_lags(parsed: dict[str, Any], **kwargs: Any) -> None:
        parsed["Items"] = [item for item in parsed.get("Items", []) if item["seq"]["N"] != "3"]
        parsed["Count"] = len(parsed["Items"])

    client.meta.events.register("after-call.dynamodb.Query", index_lags)
    assert [m.text for m in store.messages_after(room_id="lobby", after_seq=2, limit=1, now=NOW)] == ["three"]
    assert [m.seq for m in store.messages_before(room_id="lobby", before_seq=None, limit=5, now=NOW)] == [1, 2, 3]
    store.recent_window = 0  # an index-only read would have shown the hole
    assert [m.seq for m in store.messages_before(room_id="lobby", before_seq=None, limit=5, now=NOW)] == [1, 2]


def test_a_sender_that_loses_the_race_for_a_seq_takes_the_next(
    store: DynamoDBStore, client: DynamoDBClient, names: schema.TableNames, aws_env: dict[str, str]
) -> None:
    """When another sender takes the seq between our read and our write, we retry and take the next one."""
    rival = DynamoDBStore(client=make_client(region=aws_env["AWS_REGION"]), tables=names)
    interfere = [True]

    def rival_sends_first(**kwargs: Any) -> None:
        if interfere:
            interfere.pop()
            rival.append_message(new_message("rival"))

    client.meta.events.register("before-call.dynamodb.TransactWriteItems", rival_sends_first)
    result = store.append_message(new_message("mine", client_message_id="c1"))
    assert (result.created, result.message.seq) == (True, 2)
    stored = store.messages_after(room_id="lobby", after_seq=0, limit=10, now=NOW)
    assert [(m.seq, m.text) for m in stored] == [(1, "rival"), (2, "mine")]


def test_a_room_contended_past_the_bound_fails_and_stores_nothing(
    client: DynamoDBClient, names: schema.TableNames, aws_env: dict[str, str]
) -> None:
    """If every attempt loses the seq race, the send fails (retryable upstream) and stores no message of ours."""
    store = DynamoDBStore(client=client, tables=names, max_append_attempts=3)
    store.ensure_room(room_id="lobby", name="Lobby", created_by=None, now=NOW)
    rival = DynamoDBStore(client=make_client(region=aws_env["AWS_REGION"]), tables=names)

    def rival_always_sends_first(**kwargs: Any) -> None:
        rival.append_message(new_message("rival"))

    client.meta.events.register("before-call.dynamodb.TransactWriteItems", rival_always_sends_first)
    with pytest.raises(AppendContention):
        store.append_message(new_message("mine", client_message_id="c1"))
    stored = store.messages_after(room_id="lobby", after_seq=0, limit=10, now=NOW)
    assert [m.text for m in stored] == ["rival", "rival", "rival"]
    room = store.get_room("lobby")
    assert room is not None and room.last_seq == 3


def test_a_failed_write_moves_no_seq(store: DynamoDBStore, client: DynamoDBClient, names: schema.TableNames) -> None:
    """When the message cannot be written (its table is gone), the room's seq does not move either."""
    store.append_message(new_message("first"))
    client.delete_table(TableName=names.messages)
    with pytest.raises(Exception, match="ResourceNotFound"):
        store.append_message(new_message("lost"))
    room = store.get_room("lobby")
    assert room is not None and room.last_seq == 1


@pytest.mark.django_db  # a send checks the sender's mutes, which live in Django's database
async def test_a_send_while_dynamodb_fails_gets_a_retryable_error(
    client: DynamoDBClient, names: schema.TableNames
) -> None:
    """Through the services, a DynamoDB failure reaches the sender as a retryable storage_unavailable error."""
    with override_settings(
        CHAT_STORAGE_BACKEND="dynamodb",
        DYNAMODB_CONNECTIONS_TABLE=names.connections,
        DYNAMODB_MESSAGES_TABLE=names.messages,
        DYNAMODB_ROOMS_TABLE=names.rooms,
    ):
        assert isinstance(get_store(), DynamoDBStore)
        services.room_create(room_id="lobby")
        client.delete_table(TableName=names.messages)
        with pytest.raises(ChatError) as failure:
            await services.message_send(
                identity=Identity(user_id="u-alice", username="alice"),
                connection_id="conn-1",
                room_id="lobby",
                text="hi",
                client_message_id="c1",
            )
        room = get_store().get_room("lobby")
    assert (failure.value.code, failure.value.retryable) == (ErrorCode.STORAGE_UNAVAILABLE, True)
    assert room is not None and room.last_seq == 0


@pytest.mark.usefixtures("aws_env")
def test_from_settings_uses_the_configured_tables(names: schema.TableNames) -> None:
    """The store built from settings talks to the tables DYNAMODB_*_TABLE name."""
    with override_settings(
        DYNAMODB_CONNECTIONS_TABLE=names.connections,
        DYNAMODB_MESSAGES_TABLE=names.messages,
        DYNAMODB_ROOMS_TABLE=names.rooms,
    ):
        store = DynamoDBStore.from_settings()
    store.ensure_room(room_id="lobby", name="Lobby", created_by=None, now=NOW)
    assert [r.room_id for r in store.list_rooms()] == ["lobby"]
    with (
        override_settings(DYNAMODB_MESSAGES_TABLE=""),
        pytest.raises(ImproperlyConfigured, match="DYNAMODB_MESSAGES_TABLE"),
    ):
        DynamoDBStore.from_settings()


def test_a_thread_is_one_index_query_of_its_replies(store: DynamoDBStore, client: DynamoDBClient) -> None:
    """The replies to a message are read from ReplyIndex by the root's id: no scan, and none
    of the room's other messages, however many were sent since the root."""
    root = store.append_message(new_message("question")).message
    quote = ReplyRef(message_id=root.message_id, seq=root.seq, username="alice", excerpt="question")
    answers = []
    for n in range(30):
        store.append_message(new_message(f"chatter {n}"))
        if n % 10 == 9:
            answers.append(store.append_message(replace(new_message(f"answer {n}"), reply_to=quote)).message)
    requests: list[dict[str, Any]] = []
    client.meta.events.register(
        "before-parameter-build.dynamodb.*", lambda params, model, **kw: requests.append({"op": model.name, **params})
    )
    thread = store.replies(room_id="lobby", message_id=root.message_id, limit=50, now=NOW)
    assert [m.message_id for m in thread] == [m.message_id for m in answers]
    assert [r["op"] for r in requests] == ["Query"]
    assert requests[0]["IndexName"] == schema.REPLY_INDEX
    assert store.replies(room_id="lobby", message_id=root.message_id, limit=2, now=NOW) == thread[:2]
    assert store.replies(room_id="other", message_id=root.message_id, limit=50, now=NOW) == []


class Throttling:
    """The store's client, but each batch call leaves everything after the first request
    unprocessed, as a throttled table answers, until `rounds` such answers were given."""

    def __init__(self, client: DynamoDBClient, rounds: int) -> None:
        self.client = client
        self.rounds = rounds
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def _throttled(self, operation: str, leftover: str, first: Any, rest: Any, request: dict[str, Any]) -> Any:
        self.calls.append(operation)
        ((table, asked),) = request.items()
        done, left = first(asked), rest(asked)
        if self.rounds <= 0 or not left:
            return getattr(self.client, operation)(RequestItems=request)
        self.rounds -= 1
        response = getattr(self.client, operation)(RequestItems={table: done})
        response[leftover] = {table: left}
        return response

    def batch_get_item(self, *, RequestItems: dict[str, Any]) -> Any:
        return self._throttled(
            "batch_get_item",
            "UnprocessedKeys",
            lambda a: {**a, "Keys": a["Keys"][:1]},
            lambda a: {**a, "Keys": a["Keys"][1:]} if a["Keys"][1:] else None,
            RequestItems,
        )

    def batch_write_item(self, *, RequestItems: dict[str, Any]) -> Any:
        return self._throttled("batch_write_item", "UnprocessedItems", lambda a: a[:1], lambda a: a[1:], RequestItems)


def test_what_a_throttled_batch_leaves_unprocessed_is_asked_again_and_too_many_rounds_fail(
    store: DynamoDBStore, client: DynamoDBClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BatchGetItem and BatchWriteItem answer part of a request and return the rest as
    unprocessed when throttled: the store asks again for the rest only, and gives up with an
    error (never a silent partial answer) after its bounded rounds."""
    monkeypatch.setattr("chat.storage.dynamodb._backoff", lambda attempt: None)
    for n in range(3):
        store.ensure_room(room_id=f"room-{n}", name=f"Room {n}", created_by=None, now=NOW)
    throttled = Throttling(client, rounds=2)
    store.client = throttled
    rooms = store.get_rooms(["room-0", "room-1", "room-2"])
    assert sorted(r.room_id for r in rooms) == ["room-0", "room-1", "room-2"]
    assert throttled.calls == ["batch_get_item"] * 3  # one, then one round for each leftover

    ttl = int(NOW.timestamp()) + 3600
    for n in range(3):
        store.save_connection(
            ConnectionRecord(
                connection_id=f"c{n}", user_id="u-1", username="one", connected_at=NOW, ttl=ttl, instance_id="i1"
            )
        )
    throttled.rounds, throttled.calls = 2, []
    store.delete_connections(["c0", "c1", "c2"])
    assert throttled.calls == ["batch_write_item"] * 3
    assert store.connections_on_instance(instance_id="i1", now=NOW) == []

    throttled.rounds = 100
    with pytest.raises(RuntimeError, match="UnprocessedKeys left after"):
        store.get_rooms([f"room-{n % 3}-{n}" for n in range(20)])
