"""Input at the edges that used to become server errors or forged log lines."""

from __future__ import annotations

import io
import logging
import logging.config
import time
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client
from pytest_django.fixtures import Settings

from accounts import issuer
from accounts.tokens import Rejection, StaticKeySet, TokenPolicy, TokenRejected, verify_token
from chatsite.asgi import application

WAIT = 5.0
YEAR_10000 = 253_402_300_800  # one second past the last second of 9999


@pytest.fixture
def key_file(tmp_path: Path, settings: Settings) -> Path:
    settings.AUTH_SIGNING_KEY_FILE = tmp_path / "key.pem"
    return settings.AUTH_SIGNING_KEY_FILE  # type: ignore[no-any-return]


def _far_token(user: Any) -> str:
    now = int(time.time())
    _, access = issuer.mint(
        issuer.signing_key(),
        subject=issuer.subject_for(user),
        username=user.get_username(),
        groups=[],
        email=None,
        lifetime=YEAR_10000 + 10**6 - now,
        now=now,
    )
    return access


def test_an_exp_past_the_year_9999_is_a_malformed_token(key_file: Path) -> None:
    """The verifier refuses an issuer-signed token whose exp no datetime can hold."""
    key = issuer.signing_key()
    _, access = issuer.mint(key, subject="s", username="u", groups=[], email=None, lifetime=YEAR_10000 - 1000, now=1000)
    policy = TokenPolicy(issuer=issuer.BUILTIN_ISSUER, client_id=issuer.BUILTIN_CLIENT_ID)
    with pytest.raises(TokenRejected) as rejected:
        verify_token(access, keys=StaticKeySet(key.jwks()), policy=policy, now=time.time())
    assert rejected.value.reason == Rejection.MALFORMED


@pytest.mark.django_db(transaction=True)
async def test_a_far_future_token_is_invalid_token_on_the_api_and_the_socket(key_file: Path) -> None:
    """Such a token is 401 invalid_token on /api/auth/me and closes a socket's authenticate with 4401."""
    user = await get_user_model().objects.acreate(username="timetraveller")
    token = await sync_to_async(_far_token)(user)
    response = await sync_to_async(Client().get)("/api/auth/me", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401 and response.json()["error"] == "invalid_token"

    comm = WebsocketCommunicator(
        application, "/ws/", headers=[(b"host", b"127.0.0.1"), (b"origin", b"http://127.0.0.1")]
    )
    connected, _ = await comm.connect(timeout=WAIT)
    assert connected
    await comm.send_json_to({"action": "authenticate", "token": token})
    assert await comm.receive_output(timeout=WAIT) == {"type": "websocket.close", "code": 4401}
    await comm.disconnect(timeout=WAIT)


@pytest.mark.django_db
def test_a_very_long_app_path_is_404(client: Client, settings: Settings, tmp_path: Path) -> None:
    """/app/ with a path the file system cannot name (or over 1,024 characters) is 404, not 500."""
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "index.html").write_text("<!doctype html>")
    settings.FRONTEND_DIST = dist
    settings.STATIC_ROOT = tmp_path / "collected"
    for path in ("a" * 5000, "b" * 300, "assets/" + "c" * 300 + ".js", "d/" * 600):
        assert client.get("/app/" + path).status_code == 404, path[:20]
    assert client.get("/app/some/page").status_code == 200  # an app route still gets the app


@pytest.mark.django_db
def test_a_newline_in_a_path_cannot_forge_a_plain_log_line(client: Client) -> None:
    """The plain log format escapes control characters: one request is one line, whatever its path."""
    stream = io.StringIO()
    config = django_settings.LOGGING["formatters"]["plain"]
    formatter = logging.config.DictConfigurator({}).configure_formatter(dict(config))
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    request_log = logging.getLogger("chatsite.request")
    request_log.addHandler(handler)
    try:
        client.get("/nope%0A2026-01-01 INFO chatsite.request GET /admin/ 200%0D%00")
    finally:
        request_log.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert "\\n2026-01-01 INFO chatsite.request GET /admin/ 200\\r\\x00 404" in lines[0]
