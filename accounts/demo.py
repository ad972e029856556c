"""The embedded default's demo accounts, and the production start-up check that refuses them.

`make run` creates alice and bob with a password printed in the README and on the console
(CHATSITE_DEMO_PASSWORD, "chatsite-demo" by default). A database that began under
`make run` and was then put into production would keep them: anyone could sign in as them.
So production start-up looks for them and refuses to run while one still has that password.
"""

from __future__ import annotations

import logging
from typing import Final

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError

log = logging.getLogger(__name__)

DEMO_USERS: Final = ("alice", "bob")
PUBLISHED_PASSWORD: Final = "chatsite-demo"  # noqa: S105 - the published demo password, to refuse it


def accounts_with_demo_password() -> list[str]:
    """The demo accounts that still sign in with the published (or configured) demo password.

    Only the demo names are checked: a password check costs a hash, and these are the
    accounts whose password was published.
    """
    passwords = {PUBLISHED_PASSWORD, settings.DEMO_PASSWORD}
    users = get_user_model().objects.filter(username__in=DEMO_USERS, is_active=True)
    return sorted(
        user.get_username()
        for user in users
        if user.has_usable_password() and any(user.check_password(p) for p in passwords)
    )


def refuse_demo_accounts() -> None:
    """Raise ImproperlyConfigured when a demo account with the demo password exists."""
    try:
        found = accounts_with_demo_password()
    except DatabaseError as exc:
        # Not migrated yet (a first deploy runs migrate after the image starts), or the
        # database is down: /readyz reports that. There is no account to refuse yet.
        log.warning("demo account check skipped: the database did not answer (%s)", type(exc).__name__)
        return
    if found:
        raise ImproperlyConfigured(
            f"refusing to start with CHATSITE_ENV=production: the demo account(s) {', '.join(found)} "
            "still have the published demo password. Delete them, or give them a password of their "
            f"own (manage.py changepassword {found[0]}), then start again."
        )


# (username, password hash) -> whether that hash is the demo password: one hash check per
# account per process, again only when its password changes.
_demo_password_checked: dict[tuple[str, str], bool] = {}


def sign_in_hint() -> dict[str, object] | None:
    """What a sign-in page may say about the demo accounts (issue 20): their names and password,
    only outside production and only for those that still sign in with it; None otherwise."""
    if settings.PRODUCTION:
        return None
    try:
        users = list(get_user_model().objects.filter(username__in=DEMO_USERS, is_active=True))
    except DatabaseError:
        return None
    names = []
    for user in users:
        key = (user.get_username(), user.password)
        if key not in _demo_password_checked:
            _demo_password_checked[key] = user.has_usable_password() and user.check_password(settings.DEMO_PASSWORD)
        if _demo_password_checked[key]:
            names.append(user.get_username())
    return {"accounts": sorted(names), "password": settings.DEMO_PASSWORD} if names else None
