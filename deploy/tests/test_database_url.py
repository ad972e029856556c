"""DATABASE_URL: libpq options in the query string reach the connection; anything else is refused."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db.utils import ConnectionHandler

from chatsite.dburl import database_from_url

ADMIN_URL = os.environ.get("POSTGRES_TEST_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def postgres() -> Iterator[str]:
    """A reachable PostgreSQL URL (with no query string), or a skip that says why."""
    try:
        psycopg.connect(ADMIN_URL, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {ADMIN_URL} ({exc.__class__.__name__}); set POSTGRES_TEST_URL")
    yield ADMIN_URL


def _connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    """Connect with exactly the parameters Django's PostgreSQL backend derives from the entry.

    (pytest-django forbids Django's own connections outside a django_db test; the parameters
    are the part under test, and psycopg is what Django would hand them to.)
    """
    wrapper = ConnectionHandler({"default": database_from_url(url)})["default"]
    return psycopg.connect(**wrapper.get_connection_params())


def test_libpq_options_in_the_url_reach_the_postgresql_connection(postgres: str) -> None:
    """application_name and sslmode=disable from the URL are what the server sees."""
    name = f"chatsite-{uuid.uuid4().hex[:8]}"
    with _connect(f"{postgres}?sslmode=disable&application_name={name}&connect_timeout=3") as connection:
        assert connection.execute("SHOW application_name").fetchone() == (name,)
        assert connection.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (False,)


def test_sslmode_require_is_enforced_not_dropped(postgres: str) -> None:
    """?sslmode=require against a server without TLS refuses to connect instead of connecting in the clear."""
    with psycopg.connect(postgres, connect_timeout=3) as admin:
        ssl_on = admin.execute("SHOW ssl").fetchone() == ("on",)
    if ssl_on:
        pytest.skip("this PostgreSQL serves TLS; the test needs one that does not")
    with pytest.raises(psycopg.OperationalError, match="SSL"):
        _connect(f"{postgres}?sslmode=require&connect_timeout=3").close()


def test_an_rds_style_url_keeps_every_option() -> None:
    """verify-full with the RDS CA bundle and the quoted password come through exactly."""
    entry = database_from_url(
        "postgres://chatsite:p%40ss%2Fw0rd@db.example.internal:5432/chatsite"
        "?sslmode=verify-full&sslrootcert=/etc/ssl/rds-global-bundle.pem&target_session_attrs=read-write"
    )
    assert entry["PASSWORD"] == "p@ss/w0rd"
    assert entry["HOST"] == "db.example.internal"
    assert entry["OPTIONS"] == {
        "sslmode": "verify-full",
        "sslrootcert": "/etc/ssl/rds-global-bundle.pem",
        "target_session_attrs": "read-write",
    }


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgres://u@h/db?ssl_mode=require", "'ssl_mode' is not a libpq connection option"),
        ("postgres://u@h/db?sslmode=verify_full", "sslmode must be one of"),
        ("postgres://u@h/db?sslmode=require&sslmode=disable", "'sslmode' is given twice"),
        ("sqlite:////tmp/db.sqlite3?mode=ro", "sqlite URLs take no options"),
        ("mysql://u@h/db", "scheme 'mysql' is not supported"),
    ],
)
def test_an_option_that_cannot_be_honoured_stops_start_up(url: str, message: str) -> None:
    """A misspelt or unsupported option is an error naming it, never silently ignored."""
    with pytest.raises(ImproperlyConfigured, match=message):
        database_from_url(url)
