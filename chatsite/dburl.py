"""DATABASE_URL to Django's DATABASES entry, libpq options included.

A URL such as ``postgres://u:p@host/db?sslmode=verify-full&sslrootcert=/etc/rds.pem`` must
connect with exactly those options: dropping the query string would silently connect
without TLS verification (or without TLS). So every query parameter is either a libpq
connection keyword, handed to psycopg through OPTIONS, or an error that names it.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import ParseResult, parse_qsl, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

# libpq's connection keywords that make sense in a URL's query string (PostgreSQL 17,
# "Parameter Key Words"); host, port, dbname, user and password come from the URL itself.
LIBPQ_OPTIONS: Final = frozenset(
    {
        "application_name",
        "channel_binding",
        "client_encoding",
        "connect_timeout",
        "gssencmode",
        "keepalives",
        "keepalives_count",
        "keepalives_idle",
        "keepalives_interval",
        "load_balance_hosts",
        "options",
        "passfile",
        "require_auth",
        "service",
        "sslcert",
        "sslcompression",
        "sslcrl",
        "sslcrldir",
        "sslkey",
        "sslmode",
        "sslnegotiation",
        "sslpassword",
        "sslrootcert",
        "sslsni",
        "target_session_attrs",
        "tcp_user_timeout",
    }
)
SSL_MODES: Final = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def database_from_url(url: str, *, password: str = "", password_secret: str = "") -> dict[str, object]:
    """The DATABASES["default"] entry for a postgres:// or sqlite:// URL; ImproperlyConfigured if unusable.

    `password` (DATABASE_PASSWORD) is for a URL without one. `password_secret`
    (DATABASE_PASSWORD_SECRET) names the Secrets Manager secret that holds it instead, read
    when a connection opens: RDS rotates the password it manages, and a password copied into
    the environment at start stops working at the first rotation (`chatsite.db.password`).
    """
    parsed = urlparse(url)
    query = parse_qsl(parsed.query, keep_blank_values=True, strict_parsing=False)
    if parsed.scheme in {"postgres", "postgresql"}:
        given = [
            name
            for name, value in (
                ("a password in DATABASE_URL", parsed.password),
                ("DATABASE_PASSWORD", password),
                ("DATABASE_PASSWORD_SECRET", password_secret),
            )
            if value
        ]
        if len(given) > 1:
            raise ImproperlyConfigured(f"{' and '.join(given)} are both set: keep one")
        if password_secret:
            return {**_postgres(parsed, query, password=""), "PASSWORD_SECRET": password_secret}
        return _postgres(parsed, query, password=password)
    if password_secret:
        raise ImproperlyConfigured("DATABASE_PASSWORD_SECRET is for a postgres:// DATABASE_URL")
    if parsed.scheme == "sqlite":
        if query:
            raise ImproperlyConfigured(
                f"DATABASE_URL: sqlite URLs take no options, got {', '.join(k for k, _ in query)}"
            )
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": unquote(parsed.path) or ":memory:"}
    raise ImproperlyConfigured(f"DATABASE_URL scheme {parsed.scheme!r} is not supported (postgres or sqlite)")


def _postgres(parsed: ParseResult, query: list[tuple[str, str]], *, password: str) -> dict[str, object]:
    return {
        "ENGINE": "chatsite.db.postgresql",
        "NAME": unquote(parsed.path.lstrip("/")),
        "USER": unquote(parsed.username or ""),
        "PASSWORD": unquote(parsed.password or "") or password,
        "HOST": parsed.hostname or "",
        "PORT": str(parsed.port or ""),
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": _libpq_options(query),
    }


def _libpq_options(query: list[tuple[str, str]]) -> dict[str, str]:
    options: dict[str, str] = {}
    for key, value in query:
        if key not in LIBPQ_OPTIONS:
            raise ImproperlyConfigured(
                f"DATABASE_URL: {key!r} is not a libpq connection option (sslmode, sslrootcert, connect_timeout, ...)"
            )
        if key in options:
            raise ImproperlyConfigured(f"DATABASE_URL: {key!r} is given twice")
        options[key] = value
    mode = options.get("sslmode")
    if mode is not None and mode not in SSL_MODES:
        raise ImproperlyConfigured(f"DATABASE_URL: sslmode must be one of {', '.join(SSL_MODES)}, got {mode!r}")
    return options
