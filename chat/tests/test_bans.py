"""A ban applies everywhere, not only to sockets: no tokens, no room creation, no /api/ call,
and the answer says why and until when (accounts.refusals, chat.moderation.user_ban_refusal)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from accounts import issuer
from chat import moderation, services

pytestmark = pytest.mark.django_db
PASSWORD = "pw-123456789"


@pytest.fixture(autouse=True)
def fast_hasher_and_key(settings: SettingsWrapper, tmp_path: Path) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.AUTH_SIGNING_KEY_FILE = tmp_path / "auth-signing-key.pem"


@pytest.fixture
def mod() -> Any:
    user = get_user_model().objects.create_user("mod", is_staff=True)
    user.groups.add(Group.objects.get_or_create(name=settings.AUTH_MODERATOR_GROUP)[0])
    return user


@pytest.fixture
def bob() -> Any:
    return get_user_model().objects.create_user("bob", password=PASSWORD)


def post_json(client: Client, path: str, body: dict[str, Any], **headers: str) -> Any:
    return client.post(path, json.dumps(body), content_type="application/json", **headers)


def assert_banned(response: Any, *, until: str | None, reason: str) -> None:
    assert response.status_code == 403, response.content
    body = response.json()
    assert body["error"] == "banned"
    assert body["until"] == until
    assert body["reason"] == reason
    assert "banned" in body["message"]


def test_a_banned_user_gets_no_tokens_and_is_told_why_and_until_when(mod: Any, bob: Any) -> None:
    """/api/auth/token with the right password and /api/auth/refresh with a live refresh token answer 403 `banned`."""
    client = Client()
    signed_in = post_json(client, "/api/auth/token", {"username": "bob", "password": PASSWORD}).json()
    ban = moderation.user_ban(moderator=mod, user=bob, reason="spam links", duration=timedelta(days=2))
    assert ban.expires_at is not None
    until = ban.expires_at.isoformat()
    assert_banned(
        post_json(client, "/api/auth/token", {"username": "bob", "password": PASSWORD}),
        until=until,
        reason="spam links",
    )
    assert_banned(
        post_json(client, "/api/auth/refresh", {"refreshToken": signed_in["RefreshToken"]}),
        until=until,
        reason="spam links",
    )
    moderation.user_unban(moderator=mod, user=bob, reason="appeal")
    assert post_json(client, "/api/auth/refresh", {"refreshToken": signed_in["RefreshToken"]}).status_code == 200
    assert post_json(client, "/api/auth/token", {"username": "bob", "password": PASSWORD}).status_code == 200


def test_a_banned_user_calls_no_api_endpoint_by_token_or_session(mod: Any, bob: Any) -> None:
    """A token issued before the ban and the session both get 403 `banned` on /api/; no room is created."""
    tokens = issuer.issue_tokens(bob)
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {tokens.access_token}"}
    browser = Client()
    browser.force_login(bob)
    moderation.user_ban(moderator=mod, user=bob, reason="threats")
    for response in (
        Client().get("/api/auth/me", **bearer),
        Client().get("/api/rooms", **bearer),
        post_json(Client(), "/api/rooms", {"name": "by-token"}, **bearer),
        browser.get("/api/rooms"),
        browser.get("/api/auth/me"),
        post_json(browser, "/api/rooms", {"name": "By page"}),  # the pages' "+ New room" way, by session
    ):
        assert_banned(response, until=None, reason="threats")
    assert [r.room_id for r in services.room_list(identity=None)] == ["general"]
    assert Client().get("/api/auth/me", **{"HTTP_AUTHORIZATION": "Bearer x.y.z"}).status_code == 401  # not banned: bad


def test_other_users_are_not_refused(mod: Any, bob: Any) -> None:
    """Someone else's ban changes nothing for a user."""
    alice = get_user_model().objects.create_user("alice", password=PASSWORD)
    moderation.user_ban(moderator=mod, user=bob, reason="x")
    client = Client()
    client.force_login(alice)
    assert client.get("/api/rooms").status_code == 200
    assert post_json(Client(), "/api/auth/token", {"username": "alice", "password": PASSWORD}).status_code == 200
