"""Safe by default: no public secret key without DEBUG, no demo password in production."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from pytest_django.fixtures import Settings

from accounts.demo import refuse_demo_accounts
from tests.fixtures.bare_process import run


def test_debug_off_without_a_secret_key_refuses_to_start(tmp_path: Path) -> None:
    """DJANGO_DEBUG=0 outside production, with no DJANGO_SECRET_KEY, stops with a message naming it."""
    refused = run(tmp_path, "manage.py", "check", DJANGO_DEBUG="0")
    assert refused.returncode != 0
    assert "DJANGO_SECRET_KEY is required when DJANGO_DEBUG=0" in refused.stderr


def test_the_embedded_default_and_a_keyed_debug_off_run_still_start(tmp_path: Path) -> None:
    """`make run`'s environment (nothing set) and DEBUG off with a key of its own both start."""
    assert run(tmp_path, "manage.py", "check").returncode == 0
    keyed = run(tmp_path, "manage.py", "check", DJANGO_DEBUG="0", DJANGO_SECRET_KEY=secrets.token_urlsafe(50))
    assert keyed.returncode == 0, keyed.stderr


@pytest.mark.django_db
def test_a_demo_account_with_the_published_password_is_refused(settings: Settings) -> None:
    """alice with the demo password stops production start-up, naming her; a password of her own does not."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    alice = get_user_model().objects.create_user("alice", password="chatsite-demo")
    get_user_model().objects.create_user("carol", password="chatsite-demo")  # not a demo account
    with pytest.raises(ImproperlyConfigured, match="alice"):
        refuse_demo_accounts()
    alice.set_password("her-own-Passw0rd-now")
    alice.save()
    refuse_demo_accounts()


def test_production_start_up_refuses_a_database_that_make_run_seeded(tmp_path: Path) -> None:
    """A database with make run's demo accounts: the production ASGI application refuses to load, and says why."""
    database = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    seeded = run(tmp_path, "manage.py", "migrate", "--noinput", "-v0", DATABASE_URL=database)
    assert seeded.returncode == 0, seeded.stderr
    demo = run(tmp_path, "manage.py", "ensure_demo_users", DATABASE_URL=database)
    assert demo.returncode == 0, demo.stderr
    production = {
        "CHATSITE_ENV": "production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "chat.example.com",
        "DATABASE_URL": database,
        "REDIS_URL": "redis://127.0.0.1:1/0",
    }
    started = run(tmp_path, "-c", "import chatsite.asgi", **production)
    assert started.returncode != 0
    assert "demo account(s) alice, bob still have the published demo password" in started.stderr
