"""A session socket's identity (accounts.identity): who, with which roles, and whether the
session outlived a "sign out everywhere"; read in as few queries as the rule allows, since
every socket opened pays for each (issue 22, goal 1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.identity import _session_identity, _session_store
from accounts.models import SessionCutoff

pytestmark = pytest.mark.django_db


def _signed_in(username: str, **fields: Any) -> tuple[Any, str]:
    user = get_user_model().objects.create_user(username=username, **fields)
    client = Client()
    client.force_login(user)
    return user, client.cookies["sessionid"].value


def _identity(session_key: str) -> Any:
    return _session_identity(SimpleNamespace(session=_session_store(session_key)))


def test_the_identity_is_read_in_three_queries_the_session_the_user_and_the_cutoff_with_the_roles() -> None:
    """The cutoff and the roles come back in one query (they were two): session, user, standing."""
    _, key = _signed_in("alice")
    with CaptureQueriesContext(connection) as queries:
        identity = _identity(key)
    assert identity is not None and identity.username == "alice"
    assert len(queries) == 3, [q["sql"] for q in queries]


@pytest.mark.parametrize(
    ("groups", "superuser", "expected"),
    [
        ((), False, (False, False)),
        (("moderators",), False, (True, False)),
        (("bots",), False, (False, True)),
        (("moderators", "bots", "other"), False, (True, True)),
        (("other",), True, (True, False)),
    ],
)
def test_roles_come_from_the_groups_and_a_superuser_is_a_moderator(
    groups: tuple[str, ...], superuser: bool, expected: tuple[bool, bool]
) -> None:
    """Moderator: a superuser or a member of AUTH_MODERATOR_GROUP; bot: a member of AUTH_BOT_GROUP."""
    assert (settings.AUTH_MODERATOR_GROUP, settings.AUTH_BOT_GROUP) == ("moderators", "bots")
    user, key = _signed_in("carol", is_superuser=superuser)
    for name in groups:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    identity = _identity(key)
    assert identity is not None
    assert (identity.is_moderator, identity.is_bot) == expected


def test_a_session_from_before_a_sign_out_everywhere_names_nobody_and_is_flushed() -> None:
    """A cutoff after the session signed in ends it: no identity, and the session row is gone."""
    user, key = _signed_in("bob")
    SessionCutoff.objects.create(user=user, at=datetime.now(UTC) + timedelta(seconds=1))
    assert _identity(key) is None
    assert not _session_store(key).exists(key)


def test_a_session_signed_in_after_the_cutoff_still_signs_in() -> None:
    """An older cutoff leaves a newer session alone."""
    user = get_user_model().objects.create_user(username="dave")
    SessionCutoff.objects.create(user=user, at=datetime.now(UTC) - timedelta(hours=1))
    client = Client()
    client.force_login(user)  # stamps the session's sign-in time (accounts.sessions.stamp)
    identity = _identity(client.cookies["sessionid"].value)
    assert identity is not None and identity.user_id == str(user.pk)


def test_an_inactive_user_names_nobody() -> None:
    """A deactivated account's session signs nobody in."""
    user, key = _signed_in("erin")
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert _identity(key) is None
