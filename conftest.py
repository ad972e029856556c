"""Shared pytest plugins: real servers started on free loopback ports."""

import pytest

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
