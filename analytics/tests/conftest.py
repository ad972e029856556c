"""Fixtures of the analytics tests: an owned clock, and the chat on either storage backend."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from django.test import override_settings

from chat.storage import schema
from chat.storage.dynamodb import ensure_tables, make_client


class Clock:
    """The services' clock, moved by the test (every service reads chat.services.utcnow)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    owned = Clock(datetime(2026, 10, 5, tzinfo=UTC))
    monkeypatch.setattr("chat.services.utcnow", owned)
    return owned


@pytest.fixture(params=["local", "dynamodb"])
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """The chat's messages in Django's database or in DynamoDB (moto); rollups in Django's either way."""
    if request.param == "local":
        with override_settings(CHAT_STORAGE_BACKEND="local"):
            yield "local"
        return
    env = request.getfixturevalue("aws_env")
    client = make_client(region=env["AWS_REGION"])
    names = schema.TableNames.with_prefix(f"analytics-{uuid.uuid4().hex[:10]}-")
    ensure_tables(client, names, poll_seconds=0.05)
    with override_settings(
        CHAT_STORAGE_BACKEND="dynamodb",
        DYNAMODB_CONNECTIONS_TABLE=names.connections,
        DYNAMODB_MESSAGES_TABLE=names.messages,
        DYNAMODB_ROOMS_TABLE=names.rooms,
    ):
        yield "dynamodb"
    for table in schema.TABLES:
        client.delete_table(TableName=names.of(table))
