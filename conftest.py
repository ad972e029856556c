"""Shared pytest plugins (real servers started on free loopback ports) and fixtures."""

import os
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import SyncToAsync
from hypothesis import settings as hypothesis_settings

# Property tests explore new examples on every developer's run, and in CI run the same ones
# each time (Hypothesis's advice), so a clean clone of main passes or fails the same way
# twice. A new example a developer's run finds becomes an @example of its test.
hypothesis_settings.register_profile("ci", derandomize=True)
if os.environ.get("CI") == "true":
    hypothesis_settings.load_profile("ci")

pytest_plugins = [
    "tests.fixtures.servers",
    "tests.fixtures.aws",
    "tests.fixtures.cognito",
    "tests.fixtures.redis",
    "tests.fixtures.postgres",
]


@pytest.fixture(autouse=True)
def _fresh_fellows() -> None:
    """Each test starts with no one known to share a room (chat.fellows, kept per process):
    a flushed database hands out the same user ids again, to other people."""
    from chat import fellows

    fellows.cache.clear()


@pytest.fixture(autouse=True)
def _sync_thread_settled() -> Iterator[None]:
    """After each test, and before its database is flushed, wait out what is still running on
    Django's sync thread. An in-process test leaves background work behind: the search feed
    gathers a test's last messages for 0.05 s and then indexes them there, in a transaction.
    When the test ends first its loop closes, but a job already handed to the thread runs on,
    and its transaction held SQLite's shared in-memory tables while the flush ran ("database
    table is locked"); the failed flush left the connection out of autocommit, and every later
    test of that worker failed. A test's own loop is gone by now (it is set up after this
    fixture, so torn down before it), so nothing new can be handed over; the database teardown
    comes after (pytest-django's fixtures are set up first)."""
    yield
    SyncToAsync.single_thread_executor.submit(lambda: None).result(timeout=60)


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The name of each function sent off the event loop, in order, from now on: each is a thread
    switch and a wake-up of the loop, which cost more than most queries they carry (issue 22)."""
    seen: list[str] = []
    real = SyncToAsync.__call__

    async def counted(self: SyncToAsync[Any, Any], *args: Any, **kwargs: Any) -> Any:
        seen.append(getattr(self.func, "__qualname__", "?"))
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counted)
    yield seen
