"""Shared pytest plugins: real servers started on free loopback ports."""

pytest_plugins = [
    "tests.fixtures.servers",
    "tests.fixtures.aws",
    "tests.fixtures.cognito",
    "tests.fixtures.redis",
    "tests.fixtures.postgres",
]
