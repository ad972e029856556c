"""Sessions that end everywhere at once ("sign out everywhere").

Django ends one session at a time (`logout`) or all of them only with a new password. A user
who left a session open on a borrowed computer needs the third way without changing their
password: every session signed in before the moment they asked is over, on every page and
every socket, and every refresh token of theirs is revoked.

A session records when it signed in (`SIGNED_IN_AT`, set on `user_logged_in`); the user's
`SessionCutoff` records when they last signed out everywhere. `session_user` is Django's
`get_user` plus that comparison, and it is the one check every session reader uses: the
pages (`SessionCutoffMiddleware`), a socket's handshake and the keeper's re-check
(accounts.identity). A session from before this rule existed has no stamp and counts as
signed in at the epoch: it ends at the first cutoff too.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any, Final

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user, get_user_model, logout
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import AnonymousUser, UserManager
from django.contrib.auth.signals import user_logged_in
from django.db import connection, transaction
from django.http import HttpRequest
from django.utils.crypto import constant_time_compare

from accounts import issuer, revocation
from accounts.models import SessionCutoff
from chatsite.db import rows

SIGNED_IN_AT: Final = "_chatsite_signed_in_at"  # epoch seconds, a float (sessions serialise JSON)


def stamp(*, request: Any, user: Any, **kwargs: Any) -> None:
    """user_logged_in: the session remembers when it signed in (after Django cycled its key)."""
    session = getattr(request, "session", None)
    if session is not None:
        session[SIGNED_IN_AT] = datetime.now(UTC).timestamp()


def _cutoff(user_id: Any) -> float | None:
    at = SessionCutoff.objects.filter(user_id=user_id).values_list("at", flat=True).first()
    return at.timestamp() if at is not None else None


def current(session: Any, user: Any) -> bool:
    """Whether this signed-in user's session began after their last "sign out everywhere"."""
    return began_after(session, _cutoff(user.pk))


def began_after(session: Any, cutoff: float | None) -> bool:
    """Whether a session began after this cutoff (epoch seconds; None: the user never signed
    out everywhere). For a reader that has the cutoff already (accounts.identity)."""
    return cutoff is None or float(session.get(SIGNED_IN_AT, 0.0)) > cutoff


_MODEL_BACKEND: Final = "django.contrib.auth.backends.ModelBackend"


@functools.cache
def _user_columns(model: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The user model's concrete fields: (names for chatsite.db.rows, attnames for from_db)."""
    fields = model._meta.concrete_fields
    return tuple(f.name for f in fields), tuple(f.attname for f in fields)


def signed_in_user(request: Any) -> Any:
    """Django's `get_user(request)`, its common case read in one statement written out.

    Every socket a signed-in page opens asks this, and the keeper asks it again for every
    session socket of a process (accounts.identity.live_sessions); through the ORM the user's
    read cost more CPU to build than to run (docs/performance.md, "A session's reads written
    out"). The case taken here is exactly the one where Django's answer is that user: the
    session names a user signed in with Django's ModelBackend, which is configured, of a
    model read by Django's own UserManager (no filtering manager); the row exists and may
    authenticate (`user_can_authenticate`); the session's hash is the user's under the
    current SECRET_KEY. Any other case (no user, another backend, a changed password, a
    hash under a fallback key, which Django rotates) is Django's own `get_user`, unchanged."""
    session = request.session
    try:
        user_id, backend_path, session_hash = (
            session[SESSION_KEY],
            session[BACKEND_SESSION_KEY],
            session[HASH_SESSION_KEY],
        )
    except KeyError:
        return get_user(request)
    model = get_user_model()
    if (
        backend_path != _MODEL_BACKEND
        or backend_path not in settings.AUTHENTICATION_BACKENDS
        or not session_hash
        or type(model._default_manager) is not UserManager  # another manager may filter its users
    ):
        return get_user(request)
    pk = model._meta.pk
    names, attnames = _user_columns(model)
    found = rows.select(
        model,
        names,
        where=f"{rows.column(model, pk.name)} = %s",
        params=[pk.get_db_prep_value(pk.to_python(user_id), connection)],
    )
    if not found:
        return get_user(request)
    user = model.from_db(connection.alias, list(attnames), list(found[0].values()))
    if not ModelBackend().user_can_authenticate(user) or not constant_time_compare(
        session_hash, user.get_session_auth_hash()
    ):
        return get_user(request)
    return user


def session_user(request: Any) -> Any:
    """Django's session user, or AnonymousUser when the session predates a sign-out everywhere
    (the session is flushed then, as Django flushes one whose password hash went stale)."""
    user = signed_in_user(request)
    if user.is_authenticated and not current(request.session, user):
        request.session.flush()
        return AnonymousUser()
    return user


@transaction.atomic
def sign_out_everywhere(request: HttpRequest) -> int:
    """End every session and refresh token of the signed-in user; their sockets close with 4401
    on every process. This request's session ends too. How many refresh tokens were revoked."""
    user = request.user
    assert user.is_authenticated
    SessionCutoff.objects.update_or_create(user=user, defaults={"at": datetime.now(UTC)})
    revoked = issuer.revoke_user_refresh_tokens(user.pk)
    revocation.signed_out_everywhere(user_id=user.pk)
    if getattr(request, "session", None) is not None:
        logout(request)
    return revoked


class SessionCutoffMiddleware:
    """After AuthenticationMiddleware: a page's user is nobody when the session is cut off."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        user = getattr(request, "user", None)
        # Only a session user: a Bearer token's user (/api/) is checked by its refresh token.
        if user is not None and user.is_authenticated and request.session.session_key:
            if not current(request.session, user):
                request.session.flush()
                request.user = AnonymousUser()
        return self.get_response(request)


def connect() -> None:
    user_logged_in.connect(stamp, dispatch_uid="accounts.sessions.stamp")
