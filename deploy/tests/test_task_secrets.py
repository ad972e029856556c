"""Secrets injected beside the URLs (as ECS does from Secrets Manager): DATABASE_PASSWORD and REDIS_PASSWORD."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
import redis
from django.core.exceptions import ImproperlyConfigured

from chatsite.dburl import database_from_url
from tests.fixtures.redis import RedisServer
from tests.fixtures.servers import DaphneServer

pytestmark = pytest.mark.timeout(120)


def test_database_password_fills_a_url_without_one() -> None:
    """The RDS-managed password arrives alone; the URL around it is plain configuration."""
    entry = database_from_url("postgres://chatsite@db.internal:5432/chatsite?sslmode=verify-full", password="s3cr:t@")
    assert entry["PASSWORD"] == "s3cr:t@"
    assert entry["USER"] == "chatsite"
    assert entry["OPTIONS"] == {"sslmode": "verify-full"}
    with pytest.raises(ImproperlyConfigured, match="keep one"):
        database_from_url("postgres://chatsite:other@db.internal/chatsite", password="s3cr:t@")


def _readyz(server: DaphneServer) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(server.base_url + "/readyz", timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_redis_password_opens_a_redis_that_requires_auth(
    daphne_factory: Callable[..., DaphneServer], redis_factory: Callable[[], RedisServer]
) -> None:
    """With REDIS_PASSWORD the channel layer reaches a Redis with AUTH; without it, /readyz names the layer."""
    server = redis_factory()
    password = "an-auth-token-0123456789abcdef"
    redis.Redis.from_url(server.url).config_set("requirepass", password)
    # A budget no busy machine reaches: the test is about reaching Redis, not about time.
    patient = {"CHAT_READY_CHECK_TIMEOUT_SECONDS": "30"}
    with_password = daphne_factory(REDIS_URL=server.url, REDIS_PASSWORD=password, **patient)
    status, body = _readyz(with_password)
    assert status == 200, body
    without = daphne_factory(REDIS_URL=server.url, **patient)
    status, body = _readyz(without)
    assert status == 503 and body["checks"]["channelLayer"]["ok"] is False, body
    redis.Redis.from_url(server.url, password=password).config_set("requirepass", "")
