"""Accounts data: who a token's `sub` is, and the built-in issuer's refresh tokens."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ExternalIdentity(models.Model):
    """A token subject (`iss` + `sub`) linked to a Django user.

    `sub` is the identity: a username can change in Cognito (preferred_username) but the
    subject cannot, so the link is by (issuer, subject) and the username is only copied.
    The built-in issuer gives each of its users a subject here too, so one lookup serves
    both issuers.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="external_identities")
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="unique_issuer_subject"),
            # One subject per user and issuer: a new sub is a new person, never a takeover.
            models.UniqueConstraint(fields=["issuer", "user"], name="unique_issuer_user"),
        ]

    def __str__(self) -> str:
        return f"{self.issuer} {self.subject} -> {self.user_id}"


class RefreshToken(models.Model):
    """A built-in refresh token. Only its SHA-256 is stored; the token itself is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="refresh_tokens")
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"refresh token of {self.user_id} until {self.expires_at:%Y-%m-%d}"


class SessionCutoff(models.Model):
    """ "Sign out everywhere": every session signed in before `at` is over (accounts.sessions).

    A row per user who ever used it, rather than a scan of the session store: the store has no
    index by user, and a cache or signed-cookie engine has nothing to scan at all.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="session_cutoff"
    )
    at = models.DateTimeField()

    def __str__(self) -> str:
        return f"sessions of {self.user_id} before {self.at:%Y-%m-%d %H:%M:%S}"
