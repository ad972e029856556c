"""Claims to user: the one place a verified token becomes a Django user.

- `sub` is the identity. A token is linked to a user by (iss, sub) through
  ExternalIdentity; a username is only copied from the claims, so a renamed or recreated
  Cognito user can never take over someone else's account.
- The username comes from `cognito:username` (ID tokens), `username` (access tokens) or
  `preferred_username`; a name already taken by another user gets a suffix from the sub.
- Cognito users are created on first sight, with an unusable password (they sign in
  through Cognito only). Their Cognito groups decide, on every sign-in, whether they are
  staff (COGNITO_STAFF_GROUPS) and moderators (COGNITO_MODERATOR_GROUPS, carried by the
  Django group AUTH_MODERATOR_GROUP).
- Built-in tokens name users that already exist: an unknown subject is refused.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import IntegrityError, connection, transaction

from accounts.issuer import BUILTIN_ISSUER, CREDENTIAL_CLAIM, credential_fingerprint, refresh_token_revoked
from accounts.models import ExternalIdentity, SessionCutoff
from accounts.tokens import Rejection, TokenRejected, VerifiedToken

USERNAME_MAX = 150


def user_for_token(verified: VerifiedToken) -> Any:
    """The active user a verified token speaks for. Raises TokenRejected."""
    if verified.issuer == BUILTIN_ISSUER:
        link = (
            ExternalIdentity.objects.select_related("user")
            .filter(issuer=verified.issuer, subject=verified.subject)
            .first()
        )
        if link is None:
            raise TokenRejected(Rejection.UNKNOWN_USER, "no built-in user has this sub")
        user = link.user
        credential = verified.claims.get(CREDENTIAL_CLAIM)
        if credential is not None and credential != credential_fingerprint(user):
            raise TokenRejected(Rejection.REVOKED, f"user {user.pk} changed their password after this token")
        origin = verified.claims.get("origin_jti")
        if isinstance(origin, str) and refresh_token_revoked(origin):
            raise TokenRejected(Rejection.REVOKED, f"user {user.pk} signed this token's sign-in out")
    else:
        user = _cognito_user(verified)
    if not user.is_active:
        raise TokenRejected(Rejection.USER_INACTIVE, f"user {user.pk} is inactive")
    return user


def _base_username(verified: VerifiedToken) -> str:
    name = (verified.username or verified.subject).strip() or verified.subject
    return name[:USERNAME_MAX]


def _free_username(base: str, subject: str, *, exclude_pk: Any = None) -> str:
    user_model = get_user_model()
    taken = user_model.objects.exclude(pk=exclude_pk) if exclude_pk is not None else user_model.objects.all()
    if not taken.filter(username=base).exists():
        return base
    suffix = "-" + subject.replace("-", "")[:8]
    return base[: USERNAME_MAX - len(suffix)] + suffix


def _cognito_user(verified: VerifiedToken) -> Any:
    link = (
        ExternalIdentity.objects.select_related("user").filter(issuer=verified.issuer, subject=verified.subject).first()
    )
    if link is not None:
        user = link.user
    else:
        user = _create_cognito_user(verified)
    _apply_claims(user, verified)
    return user


def _create_cognito_user(verified: VerifiedToken) -> Any:
    user_model = get_user_model()
    for _attempt in range(2):
        try:
            with transaction.atomic():
                user = user_model(username=_free_username(_base_username(verified), verified.subject))
                user.set_unusable_password()
                user.save()
                ExternalIdentity.objects.create(user=user, issuer=verified.issuer, subject=verified.subject)
                return user
        except IntegrityError:
            # Another connection of the same user got here first (or took the name).
            link = (
                ExternalIdentity.objects.select_related("user")
                .filter(issuer=verified.issuer, subject=verified.subject)
                .first()
            )
            if link is not None:
                return link.user
    raise TokenRejected(Rejection.UNKNOWN_USER, "could not create a user for this sub")


def _apply_claims(user: Any, verified: VerifiedToken) -> None:
    """Copy what the token says about the user; write only what changed."""
    changed: list[str] = []
    wanted = _base_username(verified)
    if user.username != wanted and verified.username:
        candidate = _free_username(wanted, verified.subject, exclude_pk=user.pk)
        if candidate != user.username:
            user.username = candidate
            changed.append("username")
    email = verified.claims.get("email")
    from_id_token = verified.token_use == "id"  # noqa: S105 - a claim value
    if from_id_token and isinstance(email, str) and email != user.email:
        user.email = email[:254]
        changed.append("email")
    groups = set(verified.groups)
    is_staff = bool(groups & set(settings.COGNITO_STAFF_GROUPS))
    if user.is_staff != is_staff:
        user.is_staff = is_staff
        changed.append("is_staff")
    if changed:
        user.save(update_fields=changed)

    is_moderator = bool(groups & set(settings.COGNITO_MODERATOR_GROUPS))
    has_group = user.groups.filter(name=settings.AUTH_MODERATOR_GROUP).exists()
    if is_moderator and not has_group:
        group, _ = Group.objects.get_or_create(name=settings.AUTH_MODERATOR_GROUP)
        user.groups.add(group)
    elif has_group and not is_moderator:
        user.groups.remove(*Group.objects.filter(name=settings.AUTH_MODERATOR_GROUP))


def is_moderator(user: Any) -> bool:
    """Moderator rights: a superuser, or a member of AUTH_MODERATOR_GROUP. Staff alone is not enough."""
    if user.is_superuser:
        return True
    return bool(user.groups.filter(name=settings.AUTH_MODERATOR_GROUP).exists())


def is_bot(user: Any) -> bool:
    """A bot account: a member of AUTH_BOT_GROUP (exempt from rate limits, with no other rights)."""
    return bool(user.groups.filter(name=settings.AUTH_BOT_GROUP).exists())


def standing(user: Any) -> tuple[float | None, bool, bool]:
    """(the user's last "sign out everywhere" as epoch seconds or None, is_moderator, is_bot)
    in one query: a session socket's open needs all three, and the cutoff and the roles were
    a query each (docs/performance.md, "Connecting"). Plain SQL: the same query through the
    ORM (a join and two Exists annotations) cost more CPU to compile than the query it saved."""
    user_groups = get_user_model().groups.through._meta.db_table
    groups = Group._meta.db_table
    cutoffs = SessionCutoff._meta.db_table
    # Only table names (from the models) are formatted in; every value is a bound parameter.
    member = (
        f"EXISTS (SELECT 1 FROM {user_groups} ug JOIN {groups} g ON g.id = ug.group_id"  # noqa: S608
        " WHERE ug.user_id = %s AND g.name = %s)"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT (SELECT at FROM {cutoffs} WHERE user_id = %s), {member}, {member}",  # noqa: S608
            [user.pk, user.pk, settings.AUTH_MODERATOR_GROUP, user.pk, settings.AUTH_BOT_GROUP],
        )
        at, moderator, bot = cursor.fetchone()
    cutoff = _epoch(at) if at is not None else None
    return cutoff, user.is_superuser or bool(moderator), bool(bot)


def _epoch(at: Any) -> float:
    """A timestamp column as epoch seconds: a datetime (PostgreSQL), or text on SQLite."""
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return float(at.timestamp())


def roles(user: Any) -> tuple[bool, bool]:
    """(is_moderator, is_bot): a token socket's identity needs both on every open. The query
    is `standing`'s (its cutoff costs nothing more), so the group rule is written once."""
    _, moderator, bot = standing(user)
    return moderator, bot
