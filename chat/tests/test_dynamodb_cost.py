"""What Chatsite asks of DynamoDB, in requests counted at the boto3 level against moto
(issue 22.4; bench.dynamo_cost measures the same with capacity units, docs/performance.md).

Upper bounds that failed before the cuts: a message sent cost four requests (three
strongly consistent reads and the transaction), now two; an idle socket cost one write a
minute (60 an hour), now one an hour and its process's one beat a minute.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from accounts.identity import Identity
from bench.dynamo_meter import DynamoMeter
from chat import services
from chat.storage import get_store
from chat.storage.base import NewMessage
from chat.storage.dynamodb import DynamoDBStore, make_client
from chat.tests.test_heartbeat import keeper_with

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(120),
    pytest.mark.parametrize("storage_backend", ["dynamodb"], indirect=True),
]

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def dynamo() -> DynamoDBStore:
    store = get_store()
    assert isinstance(store, DynamoDBStore)
    return store


def meter() -> DynamoMeter:
    store = dynamo()
    return DynamoMeter(store.client, tables=store.tables)


async def test_a_message_sent_costs_one_read_and_one_transaction(storage_backend: str) -> None:
    """Sending a message is one read of the room (the checks and the seq share it) and one
    transaction: no read of the room again, no read of the clientMessageId first."""
    await sync_to_async(services.room_create)(room_id="lobby", name="Lobby")
    alice = Identity(user_id="u-alice", username="alice")
    counting = meter()
    sent = 5
    for n in range(sent):
        message = await services.message_send(
            identity=alice, connection_id="conn-1", room_id="lobby", text=f"hi {n}", client_message_id=f"c{n}"
        )
        assert message.seq == n + 1
    tally = counting.take()
    counting.detach()
    assert tally.requests == Counter({"GetItem": sent, "TransactWriteItems": sent})
    assert sum(tally.requests.values()) <= 2 * sent  # four per message before issue 22.4


async def test_a_retried_client_message_id_is_found_by_the_transaction(storage_backend: str) -> None:
    """With no read of the key first, a retry is still stored once: the transaction's
    condition on the key refuses it and the original comes back."""
    await sync_to_async(services.room_create)(room_id="lobby", name="Lobby")
    alice = Identity(user_id="u-alice", username="alice")
    first = await services.message_send(
        identity=alice, connection_id="conn-1", room_id="lobby", text="hi", client_message_id="c1"
    )
    again = await services.message_send(
        identity=alice, connection_id="conn-2", room_id="lobby", text="hi (retried)", client_message_id="c1"
    )
    assert again == first
    room = await sync_to_async(dynamo().get_room)("lobby")
    assert room is not None and room.last_seq == 1


def test_a_stale_last_seq_proposed_by_the_sender_costs_one_retry(storage_backend: str) -> None:
    """A lastSeq read before another sender's message is only a proposal: the write's
    condition refuses it, the room is read again and the message takes the next seq."""
    store = dynamo()
    store.ensure_room(room_id="lobby", name="Lobby", created_by=None, now=NOW)
    rival = DynamoDBStore(client=make_client(region="us-east-1"), tables=store.tables)
    new = NewMessage(
        room_id="lobby",
        user_id="u-alice",
        username="alice",
        text="mine",
        connection_id="conn-1",
        client_message_id="c1",
        timestamp=NOW,
        ttl_seconds=3600,
    )
    rival.append_message(replace(new, user_id="u-bob", username="bob", text="rival"))
    counting = meter()
    result = store.append_message(replace(new, last_seq=0))  # read before the rival's message
    tally = counting.take()
    counting.detach()
    assert (result.created, result.message.seq) == (True, 2)
    assert tally.requests == Counter({"TransactWriteItems": 2, "GetItem": 1})
    stored = store.messages_after(room_id="lobby", after_seq=0, limit=10, now=NOW)
    assert [(m.seq, m.text) for m in stored] == [(1, "rival"), (2, "mine")]


async def test_an_idle_hour_costs_a_write_per_socket_and_a_beat_per_heartbeat(storage_backend: str) -> None:
    """An hour of heartbeats over 20 idle sockets (on a clock the test drives): the process
    beats once a heartbeat, and each row is written once; it was one write per row a heartbeat."""
    settings.CHAT_MAX_SOCKETS_PER_USER = 0
    alice = Identity(user_id="u-alice", username="alice")
    records = [await services.connection_open(identity=alice) for _ in range(20)]
    registry = await keeper_with(records)  # the test ticks the keeper itself
    start = time.time()
    await registry.tick(now=start)  # the process's first beat, as its first socket starts it
    counting = meter()
    heartbeat = settings.CHAT_CONNECTION_HEARTBEAT_SECONDS
    ticks = int(3600 / heartbeat)
    for i in range(1, ticks + 1):
        await registry.tick(now=start + i * heartbeat)
    tally = counting.take()
    counting.detach()
    assert tally.reads == 0
    assert tally.requests["UpdateItem"] <= ticks + len(records)  # 60 x 20 = 1,200 before issue 22.4
    assert tally.writes == tally.requests["UpdateItem"]
