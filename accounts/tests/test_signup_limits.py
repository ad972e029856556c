"""Sign-up: look-alike usernames are refused, and sign-ups per address are limited."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from pytest_django.fixtures import Settings

from accounts import throttle
from accounts.confusables import lookalike, skeleton

pytestmark = pytest.mark.django_db
PASSWORD = "sign-up-Passw0rd-long"


@pytest.fixture(autouse=True)
def fresh_counts(settings: Settings) -> Iterator[None]:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.REDIS_URL = ""
    throttle._counts = None
    yield
    throttle._counts = None


def signup(client: Client, username: str, address: str = "10.1.1.1") -> Any:
    data = {"username": username, "password1": PASSWORD, "password2": PASSWORD}
    return client.post("/accounts/signup/", data, REMOTE_ADDR=address)


@pytest.mark.parametrize(
    "name",
    [
        "\u0430lice",  # Cyrillic a
        "aIice",  # capital I for l
        "\u0251lice",  # Latin alpha
        "a1ice",
    ],
)
def test_a_username_that_looks_like_an_existing_one_is_refused(client: Client, name: str) -> None:
    """Sign-up refuses a name whose Unicode skeleton is an existing user's; no account is made."""
    get_user_model().objects.create_user("alice", password=PASSWORD)
    response = signup(client, name)
    assert response.status_code == 200
    assert b"looks too much like an existing one" in response.content
    assert not get_user_model().objects.filter(username=name).exists()


def test_the_skeleton_is_uts39s_with_many_character_prototypes() -> None:
    """NFD, confusables.txt's prototypes (one character may stand for several), NFD: the standard's skeleton."""
    assert skeleton("m") == skeleton("rn") == "rn"
    assert skeleton("\u01c5") == skeleton("D\u017e") == skeleton("Dz\u030c")  # ǅ, Dž and D z caron: one
    # (Sign-up never meets ǅ or full-width letters: Django's username field applies NFKC first.)
    assert lookalike("\u01c5emal", ["D\u017eemal"]) == "D\u017eemal"
    assert skeleton("\uff41\uff4c\uff49\uff43\uff45") == skeleton("alice")  # full-width letters
    assert skeleton(skeleton("pa\u0443pal")) == skeleton("pa\u0443pal")  # idempotent, as the standard's
    assert skeleton("bob2") != skeleton("bob")


@pytest.mark.parametrize(
    ("name", "existing"),
    [
        ("rnary", "mary"),  # r n for m
        ("mary", "rnary"),
        ("\u0430l\u0456\u0441\u0435", "alice"),  # Cyrillic a, i, c, e among Latin letters
        ("\u0391\u039d\u039d\u0391", "anna"),  # Greek capitals
        ("\u03bf\u0440\u0435n", "open"),  # Greek o, Cyrillic r and e
        ("c1ark", "clark"),
    ],
)
def test_a_lookalike_of_many_characters_or_scripts_is_refused(client: Client, name: str, existing: str) -> None:
    """Sign-up refuses names that read as an existing one through multi-character prototypes and mixed scripts."""
    get_user_model().objects.create_user(existing, password=PASSWORD)
    assert lookalike(name, [existing]) == existing
    response = signup(client, name)
    assert response.status_code == 200
    assert b"looks too much like an existing one" in response.content
    assert not get_user_model().objects.filter(username=name).exists()


def test_distinct_names_are_not_lookalikes(client: Client) -> None:
    """Different names pass: alicia next to alice, bob2 next to bob."""
    get_user_model().objects.create_user("alice", password=PASSWORD)
    assert signup(client, "alicia").status_code == 302
    assert lookalike("bob2", ["bob"]) is None
    assert lookalike("b0b", ["bob"]) == "bob"


def test_sign_ups_per_address_are_limited(client: Client, settings: Settings) -> None:
    """After AUTH_SIGNUPS_PER_ADDRESS accounts from one address, the next is 429 with Retry-After."""
    settings.AUTH_SIGNUPS_PER_ADDRESS = "2/3600"
    assert [signup(Client(), f"user{n}").status_code for n in range(2)] == [302, 302]
    refused = signup(client, "user2")
    assert refused.status_code == 429
    assert 3590 <= int(refused["Retry-After"]) <= 3600
    assert b"Too many new accounts from this address" in refused.content
    assert not get_user_model().objects.filter(username="user2").exists()
    assert signup(client, "user3", address="10.1.1.2").status_code == 302


def test_sign_ups_per_address_default_on_in_production_only() -> None:
    """The setting's default: 10 an hour in production; off in development (tests sign up many users)."""
    import subprocess
    import sys

    code = "from django.conf import settings; print(settings.AUTH_SIGNUPS_PER_ADDRESS)"
    out = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        env={"DJANGO_SETTINGS_MODULE": "chatsite.settings", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "off"
