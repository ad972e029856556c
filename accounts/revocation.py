"""Access that ends: one path from every way a user's access ends to their tokens and sockets.

Django admin, the sign-out view, `manage.py` and code all end access by changing the user
(`is_active`, `set_password`, delete) or by `logout()`, so the receivers here hang on
Django's own signals rather than on each caller:

- sign-out of a session: that session's sockets close with 4401; sign-out of a token client
  (POST /api/auth/revoke): its refresh token is revoked, the built-in tokens it gave are
  refused, and the sockets they opened close with 4401;
- a password change: every refresh token of the user is revoked, and every socket closes
  with 4401 (a session made before the change no longer authenticates, and built-in access
  tokens carry a fingerprint of the password they were issued under: accounts.users);
- deactivation: every refresh token is revoked, every socket closes with 4403;
- deletion: (refresh tokens go with the user) every socket closes with 4403.

The revocation is written here; closing sockets is the chat's business, so this module only
sends `access_revoked` once the change is committed, and chat.access turns it into a close
on every process. Accounts never imports chat.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any, Final

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import Signal

from accounts import issuer

log = logging.getLogger(__name__)

# Close codes the chat uses (chat.protocol.CloseCode), named here for the reasons below.
SESSION_ENDED: Final = 4401
ACCOUNT_DISABLED: Final = 4403

# Sent after commit with `revocation=Revocation`: chat.access closes the sockets it names.
access_revoked = Signal()


@dataclass(frozen=True, slots=True)
class Revocation:
    user_id: str
    reason: str  # signed_out, signed_out_everywhere, password_changed, deactivated, deleted
    close_code: int
    session: str | None = None  # a session digest: only that session's sockets
    token_origin: str | None = None  # a refresh token's digest: only sockets of tokens it gave


def session_digest(session_key: str) -> str:
    """What names a session outside the session store (in events, over Redis): never the key itself."""
    return hashlib.sha256(session_key.encode()).hexdigest()[:32]


def _announce(revocation: Revocation) -> None:
    def send() -> None:
        log.info("access revoked user=%s reason=%s", revocation.user_id, revocation.reason)
        access_revoked.send(sender=Revocation, revocation=revocation)

    transaction.on_commit(send)


def on_logged_out(*, request: Any, user: Any, **kwargs: Any) -> None:
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if user is None or not session_key:
        return
    _announce(
        Revocation(
            user_id=str(user.pk), reason="signed_out", close_code=SESSION_ENDED, session=session_digest(session_key)
        )
    )


def on_user_saved(*, instance: Any, created: bool, **kwargs: Any) -> None:
    if created:
        return
    if not instance.is_active:
        issuer.revoke_user_refresh_tokens(instance.pk)
        _announce(Revocation(user_id=str(instance.pk), reason="deactivated", close_code=ACCOUNT_DISABLED))
    elif getattr(instance, "_password", None) is not None:
        # set_password() was called and this save stores the new hash (AbstractBaseUser
        # clears `_password` after the save that follows it).
        issuer.revoke_user_refresh_tokens(instance.pk)
        _announce(Revocation(user_id=str(instance.pk), reason="password_changed", close_code=SESSION_ENDED))


def refresh_token_signed_out(*, user_id: Any, digest: str) -> None:
    """A token client signed out (its refresh token revoked): close the sockets its tokens opened."""
    _announce(Revocation(user_id=str(user_id), reason="signed_out", close_code=SESSION_ENDED, token_origin=digest))


def signed_out_everywhere(*, user_id: Any) -> None:
    """The user signed out everywhere (accounts.sessions): every socket of theirs closes with 4401."""
    _announce(Revocation(user_id=str(user_id), reason="signed_out_everywhere", close_code=SESSION_ENDED))


def on_user_deleted(*, instance: Any, **kwargs: Any) -> None:
    _announce(Revocation(user_id=str(instance.pk), reason="deleted", close_code=ACCOUNT_DISABLED))


def connect() -> None:
    """Hang the receivers on Django's signals (AccountsConfig.ready)."""
    user_model = get_user_model()
    user_logged_out.connect(on_logged_out, dispatch_uid="accounts.revocation.logged_out")
    post_save.connect(on_user_saved, sender=user_model, dispatch_uid="accounts.revocation.user_saved")
    post_delete.connect(on_user_deleted, sender=user_model, dispatch_uid="accounts.revocation.user_deleted")
