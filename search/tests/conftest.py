"""Fixtures for search: the database the index runs on and the store the messages live in.

`backend` runs a test three ways: SQLite (FTS5) with the local store, PostgreSQL with the
local store, and SQLite with messages in DynamoDB (moto) — the index then a derived copy in
the SQL database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from pytest_django.fixtures import Settings

from chat.storage import get_store, schema
from chat.storage.dynamodb import ensure_tables, make_client
from tests.fixtures.postgres import module_postgres


@pytest.fixture(params=["sqlite", "postgresql", "dynamodb"])
def backend(request: pytest.FixtureRequest, settings: Settings, db: None) -> Iterator[str]:
    if request.param == "sqlite":
        yield "sqlite"
    elif request.param == "postgresql":
        with module_postgres(request, ("chat_", "search_", "auth_user")):
            yield "postgresql"
    else:
        aws_env: dict[str, str] = request.getfixturevalue("aws_env")
        client = make_client(region=aws_env["AWS_REGION"])
        names = schema.TableNames.with_prefix(f"s-{uuid.uuid4().hex[:10]}-")
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
