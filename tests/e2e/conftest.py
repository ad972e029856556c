"""End-to-end fixtures: one daphne process per test module, and signed-in users on it.

Tests in a module share the process and keep out of each other's way with a room of their
own (`fresh_room`). Tests that stop or restart a process use `daphne_factory` instead.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.client import ChatClient, create_room
from tests.fixtures.servers import DaphneServer, base_env


def start_module_server(tmp_path_factory: pytest.TempPathFactory, migrated_db: Path, **env: str) -> DaphneServer:
    data_dir = tmp_path_factory.mktemp("e2e")
    shutil.copy(migrated_db, data_dir / "db.sqlite3")
    return DaphneServer(data_dir, base_env(data_dir, **env)).start()


@pytest.fixture(scope="module")
def chat_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, migrated_db: Path
) -> Iterator[DaphneServer]:
    """One Chatsite daphne process on the embedded default, shared by a module's tests.

    A module runs on PostgreSQL as well with `pytestmark = ON_BOTH_DATABASES`.
    """
    database = getattr(request, "param", "sqlite")
    env = {"DATABASE_URL": request.getfixturevalue("postgres_url")} if database == "postgresql" else {}
    server = start_module_server(tmp_path_factory, migrated_db, **env)
    yield server
    server.stop()


# The module's tests run twice: on the embedded default's SQLite and on PostgreSQL, the
# production database (tests/fixtures/postgres.py).
ON_BOTH_DATABASES = pytest.mark.parametrize("chat_server", ["sqlite", "postgresql"], indirect=True, scope="module")


class Accounts:
    """Users signed up once per server; `cookie(name)` is their session Cookie header."""

    def __init__(self, server: DaphneServer) -> None:
        self.server = server
        self._cookies: dict[str, str] = {}

    def cookie(self, username: str) -> str:
        if username not in self._cookies:
            self._cookies[username] = self.server.signup(username)
        return self._cookies[username]


@pytest.fixture(scope="module")
def accounts(chat_server: DaphneServer) -> Accounts:
    return Accounts(chat_server)


@pytest.fixture
def fresh_room(chat_server: DaphneServer, accounts: Accounts) -> Callable[[], str]:
    """Create a new room on the module's server (through the room list page) and return its id."""

    def make() -> str:
        return create_room(chat_server.base_url, accounts.cookie("roomkeeper"), f"e2e-{uuid.uuid4().hex[:12]}")

    return make


Connect = Callable[[str], Awaitable[ChatClient]]


@pytest.fixture
async def connect(chat_server: DaphneServer, accounts: Accounts) -> AsyncIterator[Connect]:
    """Open a signed-in client for a user; every client is closed after the test."""
    opened: list[ChatClient] = []

    async def open_client(username: str) -> ChatClient:
        cookie = await asyncio.to_thread(accounts.cookie, username)
        client = await ChatClient.connect(chat_server.ws_url, cookie=cookie, origin=chat_server.origin)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        await client.close()


@pytest.fixture
async def room(fresh_room: Callable[[], str]) -> str:
    """A new room of this test's own on the module's server."""
    return await asyncio.to_thread(fresh_room)
