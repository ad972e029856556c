"""Sign-in throttling: failures per account and per address, 429 with Retry-After, no hashing.

Every sign-in path (/api/auth/token, /api/auth/refresh, /accounts/login/) is driven through
Django's test client. The hasher is a real one that counts its work, so "a throttled
attempt never reaches the hasher" is measured, not assumed. Windows run on the test's clock
in-process, and on Redis's own clock when Redis holds the counts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from io import StringIO
from typing import Any, ClassVar

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import MD5PasswordHasher
from django.core.management import call_command
from django.test import Client
from pytest_django.fixtures import Settings

from accounts import throttle
from tests.fixtures.clock import Clock

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-test-Passw0rd"


class CountingHasher(MD5PasswordHasher):
    """A real (fast) hasher that counts how often a password is hashed."""

    algorithm = "counting_md5"
    calls: ClassVar[int] = 0

    def encode(self, password: str, salt: str) -> str:
        CountingHasher.calls += 1
        return super().encode(password, salt)


@pytest.fixture
def clock(settings: Settings) -> Iterator[Clock]:
    """In-process counts on the test's clock; the account limit 3 per 600 s, the address's off."""
    settings.PASSWORD_HASHERS = ["accounts.tests.test_signin_throttle.CountingHasher"]
    settings.REDIS_URL = ""
    settings.AUTH_SIGNIN_FAILURES_PER_ACCOUNT = "3/600"
    settings.AUTH_SIGNIN_FAILURES_PER_ADDRESS = "off"
    fake = Clock()
    throttle._counts = throttle.Counts(clock=fake)
    get_user_model().objects.create_user("alice", password=PASSWORD)
    get_user_model().objects.create_user("bob", password=PASSWORD)
    yield fake
    throttle._counts = None


def token(client: Client, username: str, password: str, address: str = "10.0.0.1") -> Any:
    return client.post(
        "/api/auth/token",
        json.dumps({"username": username, "password": password}),
        content_type="application/json",
        REMOTE_ADDR=address,
    )


def test_an_account_is_throttled_after_its_failures_and_a_right_password_waits_for_the_window(
    client: Client, clock: Clock
) -> None:
    """After 3 wrong passwords, alice's right one gets 429 + Retry-After, unhashed, until the window ends."""
    assert [token(client, "alice", "wrong").status_code for _ in range(3)] == [401, 401, 401]
    hashed = CountingHasher.calls
    refused = token(client, "alice", PASSWORD, address="10.9.9.9")  # from anywhere
    assert refused.status_code == 429
    assert refused.json()["error"] == "too_many_attempts"
    assert 590 <= int(refused["Retry-After"]) <= 600
    assert CountingHasher.calls == hashed, "a throttled attempt reached the password hasher"
    assert token(client, "bob", PASSWORD).status_code == 200  # another account is not held up

    clock.now += 599
    assert token(client, "alice", PASSWORD).status_code == 429
    clock.now += 2
    assert token(client, "alice", PASSWORD).status_code == 200


def test_a_success_forgives_the_accounts_failures(client: Client, clock: Clock) -> None:
    """Two failures, a success, two failures: never throttled (only failures in a row count)."""
    codes = [token(client, "alice", p).status_code for p in ["x", "y", PASSWORD, "x", "y", PASSWORD]]
    assert codes == [401, 401, 200, 401, 401, 200]


def test_an_address_is_throttled_across_usernames(client: Client, clock: Clock, settings: Settings) -> None:
    """One address guessing many usernames is stopped by the per-address limit; others are not."""
    settings.AUTH_SIGNIN_FAILURES_PER_ADDRESS = "4/600"
    codes = [token(client, f"user{n}", "guess").status_code for n in range(4)]
    assert codes == [401] * 4
    assert token(client, "alice", PASSWORD).status_code == 429
    assert token(client, "alice", PASSWORD, address="10.0.0.2").status_code == 200


def test_refresh_failures_are_throttled_per_address(client: Client, clock: Clock, settings: Settings) -> None:
    """Made-up refresh tokens count against the address: the fourth try is 429."""
    settings.AUTH_SIGNIN_FAILURES_PER_ADDRESS = "3/600"

    def refresh() -> Any:
        body = json.dumps({"refreshToken": "made-up"})
        return client.post("/api/auth/refresh", body, content_type="application/json", REMOTE_ADDR="10.0.0.1")

    assert [refresh().status_code for _ in range(3)] == [401, 401, 401]
    refused = refresh()
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0


def test_the_login_page_is_throttled_with_a_form_error(client: Client, clock: Clock) -> None:
    """/accounts/login/ answers 429 with a form error and Retry-After, and hashes nothing."""

    def login(password: str) -> Any:
        return client.post("/accounts/login/", {"username": "alice", "password": password}, REMOTE_ADDR="10.0.0.1")

    assert [login("wrong").status_code for _ in range(3)] == [200, 200, 200]
    hashed = CountingHasher.calls
    refused = login(PASSWORD)
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert b"Too many failed sign-ins" in refused.content
    assert CountingHasher.calls == hashed
    assert "_auth_user_id" not in client.session


def test_an_operator_unlocks_an_account(client: Client, clock: Clock) -> None:
    """manage.py unlock_signin alice lets alice sign in again at once."""
    for _ in range(3):
        token(client, "alice", "wrong")
    assert token(client, "alice", PASSWORD).status_code == 429
    out = StringIO()
    call_command("unlock_signin", "alice", stdout=out, stderr=StringIO())
    assert "Unlocked account 'alice'" in out.getvalue()
    assert token(client, "alice", PASSWORD).status_code == 200


def test_counts_in_redis_are_shared_by_every_process(redis_url: str, settings: Settings, client: Client) -> None:
    """With REDIS_URL, failures counted by one process throttle the account in another."""
    settings.AUTH_SIGNIN_FAILURES_PER_ACCOUNT = "3/600"
    settings.AUTH_SIGNIN_FAILURES_PER_ADDRESS = "off"
    settings.PASSWORD_HASHERS = ["accounts.tests.test_signin_throttle.CountingHasher"]
    get_user_model().objects.create_user("carol-redis", password=PASSWORD)
    settings.REDIS_URL = redis_url
    call_command("unlock_signin", "carol-redis", stdout=StringIO(), stderr=StringIO())
    one, other = throttle.Counts(redis_url=redis_url), throttle.Counts(redis_url=redis_url)
    window = throttle.Window(3, 600)
    key = throttle.account_key("carol-redis")
    for _ in range(3):
        one.add(key, window)
    assert 590 < other.blocked_for(key, window) <= 600
    throttle._counts = other  # this process's view: throttled by the other's count
    try:
        assert token(client, "carol-redis", PASSWORD).status_code == 429
        call_command("unlock_signin", "carol-redis", stdout=StringIO(), stderr=StringIO())
        assert token(client, "carol-redis", PASSWORD).status_code == 200
    finally:
        throttle._counts = None
