"""Room events stored from synchronous code reach the channel layer (issue 14).

A sync caller with no event loop (a management command, a script, admin under WSGI) reaches
an async service through asgiref's async_to_sync, which runs it on a loop of its own and
cancels whatever is left on that loop when the call returns. The service queues its events
in a publisher task (chat.broadcast.room_event_soon), so they used to be cancelled with the
loop, unpublished. Each test listens on the real Redis pub/sub channel of the room's group.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from chat import broadcast, services
from chat.storage import get_store
from chat.tests.test_consumer import new_message
from tests.fixtures.servers import base_env, manage_shell

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


@pytest.fixture
def pubsub_layer(settings: Any, redis_url: str) -> str:
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "chat.layers.PubSubChannelLayer", "CONFIG": {"hosts": [redis_url]}}
    }
    return redis_url


@contextlib.contextmanager
def listening(redis_url: str, room_id: str) -> Iterator[redis.client.PubSub]:
    """A subscriber to the Redis channel that carries the room group's events."""
    client = redis.Redis.from_url(redis_url)
    subscriber = client.pubsub(ignore_subscribe_messages=True)
    subscriber.psubscribe(f"*{broadcast.room_group(room_id)}")
    assert subscriber.get_message(timeout=5) is None  # the subscription is confirmed (and skipped)
    try:
        yield subscriber
    finally:
        subscriber.close()
        client.close()


def published(subscriber: redis.client.PubSub, count: int, *, wait_each: float = 10.0) -> int:
    """How many of `count` expected events arrived (each within `wait_each` s)."""
    for got in range(count):
        if subscriber.get_message(timeout=wait_each) is None:
            return got
    return count


def test_an_async_service_called_from_sync_code_publishes_every_event(pubsub_layer: str) -> None:
    """Three messages stored through async_to_sync (no outer loop) reach the room's group, all three."""
    services.room_create(room_id="sync-async")
    with listening(pubsub_layer, "sync-async") as subscriber:
        for n in range(1, 4):
            async_to_sync(services.room_change)(
                get_store().append_message,
                new=new_message("sync-async", f"from a command {n}", seq_hint=n),
                stored=lambda result: [result.message],
            )
        assert broadcast.drain_publish_thread(10)
        assert published(subscriber, 3) == 3


def test_a_sync_services_room_change_is_published_without_an_event_loop(pubsub_layer: str) -> None:
    """room_change_sync (moderation, commands) outside any loop publishes each event once."""
    services.room_create(room_id="sync-sync")
    with listening(pubsub_layer, "sync-sync") as subscriber:
        for n in range(1, 3):
            services.room_change_sync(
                get_store().append_message,
                new=new_message("sync-sync", f"by a moderator {n}", seq_hint=n),
                stored=lambda result: [result.message],
            )
        assert broadcast.drain_publish_thread(10)
        assert published(subscriber, 2) == 2
        assert subscriber.get_message(timeout=0.5) is None  # and nothing twice
    assert get_channel_layer() is not None


COMMAND = """
from asgiref.sync import async_to_sync
from chat import services
from chat.storage import get_store
from chat.tests.test_consumer import new_message
services.room_create(room_id="sync-exit")
async_to_sync(services.room_change)(
    get_store().append_message, new=new_message("sync-exit", "then exit", seq_hint=1), stored=lambda r: [r.message]
)
print("STORED", flush=True)
"""


def test_a_command_that_exits_right_after_its_change_still_publishes_it(
    pubsub_layer: str, migrated_db: Path, tmp_path: Path
) -> None:
    """A process that stores a change and exits at once (a management command) publishes it before it exits."""
    (tmp_path / "db.sqlite3").write_bytes(migrated_db.read_bytes())
    env = base_env(tmp_path, REDIS_URL=pubsub_layer, CHANNEL_LAYER="pubsub")
    with listening(pubsub_layer, "sync-exit") as subscriber:
        done = manage_shell(env, COMMAND, timeout=60)
        assert done.returncode == 0 and "STORED" in done.stdout, done.stderr[-2000:]
        message = subscriber.get_message(timeout=5)
    assert message is not None, "the command exited without publishing its change"
    assert b"then exit" in message["data"]
