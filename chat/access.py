"""Access that ended, applied to open sockets: accounts decides, the chat closes.

accounts.revocation sends `access_revoked` once a sign-out, a password change, a
deactivation or a deletion is committed; a change of a user's groups (the moderator group
taken away in admin, or by a Cognito sign-in's claims) is a lost role. Both go to the user's
group through chat.broadcast, next to the ban, so they reach every socket of the user on
every process (chat.fanout), which closes (4401, 4403) or leaves the rooms it may no longer
read (the `left` frame). Receivers are connected by ChatConfig.ready.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import m2m_changed, post_init, post_save

from accounts.revocation import Revocation, access_revoked
from chat import broadcast

log = logging.getLogger(__name__)


def on_access_revoked(*, revocation: Revocation, **kwargs: Any) -> None:
    async_to_sync(broadcast.user_access_ended)(
        revocation.user_id,
        close_code=revocation.close_code,
        session=revocation.session,
        token_origin=revocation.token_origin,
    )


def on_groups_changed(*, instance: Any, action: str, reverse: bool, pk_set: set[Any] | None, **kwargs: Any) -> None:
    """A user left a group (or a group lost users): their open sockets check their rooms again."""
    if action not in ("post_remove", "post_clear"):
        return
    user_ids = [str(pk) for pk in pk_set or ()] if reverse else [str(instance.pk)]
    if reverse and action == "post_clear":
        return  # a group emptied in one statement: no ids to hand (its members re-check on the next tick)

    def send() -> None:
        for user_id in user_ids:
            async_to_sync(broadcast.user_roles_changed)(user_id)

    transaction.on_commit(send)


_WAS_SUPERUSER = "_chatsite_was_superuser"


def on_user_loaded(*, instance: Any, **kwargs: Any) -> None:
    """Remember whether a user was a superuser (a moderator by that alone) when loaded."""
    setattr(instance, _WAS_SUPERUSER, bool(getattr(instance, "is_superuser", False)))


def on_user_saved(*, instance: Any, created: bool, **kwargs: Any) -> None:
    """A superuser who is one no longer lost the moderator rights that came with it."""
    if created or not getattr(instance, _WAS_SUPERUSER, False) or instance.is_superuser:
        return
    setattr(instance, _WAS_SUPERUSER, False)
    user_id = str(instance.pk)
    transaction.on_commit(lambda: async_to_sync(broadcast.user_roles_changed)(user_id))


def connect() -> None:
    access_revoked.connect(on_access_revoked, dispatch_uid="chat.access.revoked")
    user_model = get_user_model()
    m2m_changed.connect(on_groups_changed, sender=user_model.groups.through, dispatch_uid="chat.access.groups_changed")
    post_init.connect(on_user_loaded, sender=user_model, dispatch_uid="chat.access.user_loaded")
    post_save.connect(on_user_saved, sender=user_model, dispatch_uid="chat.access.user_saved")
