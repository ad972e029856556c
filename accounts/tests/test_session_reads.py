"""A session's reads written out: the engine (accounts.session_store) and the signed-in user
(accounts.sessions.signed_in_user). Each must answer exactly as Django's own engine and
`get_user` answer, on SQLite and on PostgreSQL: the signed-in pages and every socket's
identity depend on them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, get_user, get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.sessions.backends import db
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import session_store
from accounts.sessions import signed_in_user
from tests.fixtures.postgres import module_postgres

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "sqlite":
        yield "sqlite"
        return
    with module_postgres(request, ("django_session", "auth_")):
        yield "postgresql"


def test_the_settings_name_this_engine() -> None:
    assert settings.SESSION_ENGINE == "accounts.session_store"


def test_a_session_written_by_djangos_engine_reads_the_same_in_one_query(database: str) -> None:
    """Sessions from before the switch (Django's engine) keep signing people in: same table,
    same encoding; the read is one statement."""
    theirs = db.SessionStore()
    theirs.update({"answer": 42, "text": "naïve ✓", "nested": {"list": [1, 2]}})
    theirs.set_expiry(3600)
    theirs.save()
    ours = session_store.SessionStore(theirs.session_key)
    with CaptureQueriesContext(connection) as queries:
        loaded = ours.load()
    assert (
        loaded
        == db.SessionStore(theirs.session_key).load()
        == {
            "answer": 42,
            "text": "naïve ✓",
            "nested": {"list": [1, 2]},
            "_session_expiry": 3600,
        }
    )
    assert len(queries) == 1
    assert ours.session_key == theirs.session_key


def test_an_expired_session_reads_empty_and_forgets_its_key(database: str) -> None:
    """As Django's: past its expire_date a session is nobody's, and saving it makes a new key
    rather than reviving the old row."""
    store = session_store.SessionStore()
    store["user"] = "x"
    store.save()
    key = store.session_key
    Session.objects.filter(session_key=key).update(expire_date=timezone.now() - timedelta(seconds=1))
    expired = session_store.SessionStore(key)
    assert expired.load() == {}
    assert expired.session_key is None
    assert db.SessionStore(key).load() == {}  # Django's engine agrees
    expired["user"] = "y"
    expired.save()
    assert expired.session_key not in (None, key)


def test_an_unknown_or_tampered_key_reads_empty(database: str) -> None:
    assert session_store.SessionStore("no-such-session-key-000000000000").load() == {}
    store = session_store.SessionStore()
    store["a"] = 1
    store.save()
    Session.objects.filter(session_key=store.session_key).update(session_data="not:signed")
    assert session_store.SessionStore(store.session_key).load() == {}


def test_a_signed_in_page_stays_signed_in_and_signing_out_ends_the_session(database: str) -> None:
    """The whole path a user takes: sign in, a page knows them, sign out, it no longer does."""
    get_user_model().objects.create_user(username="alice", password="pw-for-alice-1")
    client = Client()
    assert client.login(username="alice", password="pw-for-alice-1")
    key = client.cookies["sessionid"].value
    assert session_store.SessionStore(key).load()["_auth_user_id"]
    assert client.get("/").status_code == 200
    client.logout()
    assert not Session.objects.filter(session_key=key).exists()
    assert session_store.SessionStore(key).load() == {}


def _signed_in(username: str = "bob") -> tuple[Any, str]:
    user = get_user_model().objects.create_user(username=username, password=f"pw-for-{username}-1")
    client = Client()
    client.force_login(user)
    return user, client.cookies["sessionid"].value


def _read(key: str) -> tuple[Any, Any]:
    """(signed_in_user's answer, Django's get_user's) for fresh reads of the session."""
    ours = signed_in_user(SimpleNamespace(session=session_store.SessionStore(key)))
    theirs = get_user(SimpleNamespace(session=session_store.SessionStore(key)))
    return ours, theirs


def test_the_signed_in_user_is_djangos_in_two_queries_and_saves_as_a_loaded_row(database: str) -> None:
    """The common case: the session's user, read with the session in two statements; the
    instance is a loaded row (saving it updates, never inserts)."""
    user, key = _signed_in()
    holder = SimpleNamespace(session=session_store.SessionStore(key))
    with CaptureQueriesContext(connection) as queries:
        ours = signed_in_user(holder)
    assert len(queries) == 2, [q["sql"] for q in queries]
    theirs = get_user(SimpleNamespace(session=session_store.SessionStore(key)))
    assert ours.pk == theirs.pk == user.pk
    assert {f.attname: getattr(ours, f.attname) for f in user._meta.concrete_fields} == {
        f.attname: getattr(theirs, f.attname) for f in user._meta.concrete_fields
    }
    assert not ours._state.adding and ours._state.db == "default"
    # Read written out: Django's backend read (an ORM query built on every call) is not used.
    with mock.patch.object(ModelBackend, "get_user", side_effect=AssertionError("the ORM's read")):
        assert signed_in_user(SimpleNamespace(session=session_store.SessionStore(key))).pk == user.pk
    ours.first_name = "Robert"
    ours.save(update_fields=["first_name"])
    assert get_user_model().objects.get(pk=user.pk).first_name == "Robert"


def test_a_changed_password_an_inactive_or_a_deleted_user_signs_nobody_in(database: str) -> None:
    user, key = _signed_in("carol")
    user.set_password("a-new-password-2")
    user.save()
    assert [u.is_authenticated for u in _read(key)] == [False, False]
    user, key = _signed_in("dave")
    user.is_active = False
    user.save()
    assert [u.is_authenticated for u in _read(key)] == [False, False]
    user, key = _signed_in("erin")
    user.delete()
    assert [u.is_authenticated for u in _read(key)] == [False, False]


def test_a_session_whose_hash_is_under_a_rotated_secret_stays_signed_in_and_is_rehashed(database: str) -> None:
    """SECRET_KEY rotated with the old one in SECRET_KEY_FALLBACKS: Django keeps the session
    and rewrites its hash under the new key (and cycles the key): the same here."""
    user, key = _signed_in("frank")
    old = settings.SECRET_KEY
    with override_settings(SECRET_KEY="a-new-secret-key-" + "n" * 40, SECRET_KEY_FALLBACKS=[old]):
        session = session_store.SessionStore(key)
        found = signed_in_user(SimpleNamespace(session=session))
        assert found.pk == user.pk
        assert session[HASH_SESSION_KEY] == user.get_session_auth_hash()
        assert session.session_key != key


def test_a_session_signed_in_with_a_backend_no_longer_configured_signs_nobody_in(database: str) -> None:
    _, key = _signed_in("grace")
    with override_settings(AUTHENTICATION_BACKENDS=["django.contrib.auth.backends.AllowAllUsersModelBackend"]):
        assert [u.is_authenticated for u in _read(key)] == [False, False]
