"""The sign-in pages name the demo accounts and their password (issue 20): only while they
still have it, and never in production."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from pytest_django.fixtures import Settings

from accounts import demo

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_cache() -> None:
    demo._demo_password_checked.clear()


def test_no_demo_accounts_no_hint(client: Client) -> None:
    assert demo.sign_in_hint() is None
    assert 'data-testid="demo-hint"' not in client.get("/accounts/login/").content.decode()
    assert client.get("/api/auth/demo").json() == {"accounts": []}


def test_the_demo_accounts_with_their_password_are_named(client: Client, settings: Settings) -> None:
    users = get_user_model().objects
    users.create_user(username="alice", password=settings.DEMO_PASSWORD)
    users.create_user(username="bob", password="a-password-of-his-own")
    page = client.get("/accounts/login/").content.decode()
    assert "Sign in as <strong>alice</strong> with the password <code>" + settings.DEMO_PASSWORD in page
    assert "bob" not in page
    assert client.get("/api/auth/demo").json() == {"accounts": ["alice"], "password": settings.DEMO_PASSWORD}

    alice = users.get(username="alice")
    alice.set_password("changed-by-alice-2026")
    alice.save()
    assert demo.sign_in_hint() is None  # a new hash is checked again


def test_never_in_production(client: Client, settings: Settings) -> None:
    get_user_model().objects.create_user(username="alice", password=settings.DEMO_PASSWORD)
    settings.PRODUCTION = True
    assert demo.sign_in_hint() is None
