"""Fixtures shared by chat's tests: the storage backend a test runs on, and signed-in sockets."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
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


OpenSocket = Callable[[bytes], Awaitable[WebsocketCommunicator]]


def session_cookie(username: str) -> bytes:
    """Create a user, sign them in and return their session Cookie header. Synchronous."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    user = get_user_model().objects.create_user(username=username)
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


@pytest.fixture
async def session_sockets() -> AsyncIterator[OpenSocket]:
    """Open sockets through the real ASGI application with a session Cookie header (and an
    allowed Origin); close them all and flush the channel layer afterwards."""
    from chatsite.asgi import application

    opened: list[WebsocketCommunicator] = []

    async def open_socket(cookie: bytes) -> WebsocketCommunicator:
        comm = WebsocketCommunicator(
            application,
            "/ws/",
            headers=[(b"host", b"127.0.0.1"), (b"origin", b"http://127.0.0.1"), (b"cookie", cookie)],
        )
        opened.append(comm)
        connected, _ = await comm.connect(timeout=5.0)
        assert connected
        return comm

    yield open_socket
    for comm in opened:
        await comm.disconnect(timeout=5.0)
    layer = get_channel_layer()
    assert layer is not None
    await layer.flush()  # type: ignore[attr-defined]
