"""Fixtures shared by chat's tests: the storage backend a test runs on."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from pytest_django.fixtures import Settings

from chat.storage import get_store, schema
from chat.storage.dynamodb import ensure_tables, make_client


@pytest.fixture(params=["local", "dynamodb"])
def storage_backend(request: pytest.FixtureRequest, settings: Settings) -> Iterator[str]:
    """Run the test on each storage backend: the local ORM store, and DynamoDB on a moto
    server (tables of the test's own, deleted afterwards)."""
    if request.param == "local":
        yield "local"
        return
    aws_env: dict[str, str] = request.getfixturevalue("aws_env")
    client = make_client(region=aws_env["AWS_REGION"])
    names = schema.TableNames.with_prefix(f"t-{uuid.uuid4().hex[:10]}-")
    ensure_tables(client, names, poll_seconds=0.05)
    settings.CHAT_STORAGE_BACKEND = "dynamodb"
    settings.DYNAMODB_CONNECTIONS_TABLE = names.connections
    settings.DYNAMODB_MESSAGES_TABLE = names.messages
    settings.DYNAMODB_ROOMS_TABLE = names.rooms
    get_store.cache_clear()
    try:
        yield "dynamodb"
    finally:
        for table in schema.TABLES:
            client.delete_table(TableName=names.of(table))
        get_store.cache_clear()
