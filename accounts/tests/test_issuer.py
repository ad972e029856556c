"""The built-in issuer: its key on disk, Cognito-shaped tokens, refresh tokens; claims to users."""

from __future__ import annotations

import stat
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from pytest_django.fixtures import Settings as SettingsWrapper

from accounts import issuer
from accounts.models import ExternalIdentity, RefreshToken
from accounts.tokens import Rejection, StaticKeySet, TokenPolicy, TokenRejected, VerifiedToken, verify_token
from accounts.users import is_moderator, user_for_token

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
BUILTIN = TokenPolicy(issuer=issuer.BUILTIN_ISSUER, client_id=issuer.BUILTIN_CLIENT_ID)


@pytest.fixture(autouse=True)
def fast_hasher(settings: SettingsWrapper) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def key_file(tmp_path: Path, settings: SettingsWrapper) -> Path:
    path = tmp_path / "data" / "auth-signing-key.pem"
    settings.AUTH_SIGNING_KEY_FILE = path
    return path


def verify(token: str, key: issuer.SigningKey, *, now: datetime = NOW) -> VerifiedToken:
    return verify_token(token, keys=StaticKeySet(key.jwks()), policy=BUILTIN, now=now.timestamp())


# --- the key ------------------------------------------------------------------------------------


def test_key_is_created_on_first_use_private_to_the_owner(key_file: Path) -> None:
    """The first use creates an RSA key file readable by its owner only; later uses load it."""
    assert not key_file.exists()
    first = issuer.signing_key()
    assert key_file.exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    issuer.reset_key_cache()
    assert issuer.load_or_create_key(key_file).kid == first.kid


def test_processes_racing_to_create_the_key_agree_on_one(tmp_path: Path) -> None:
    """Several processes starting at once on one data directory end up with the same key."""
    path = tmp_path / "key.pem"
    kids: list[str] = []
    barrier = threading.Barrier(4)

    def create() -> None:
        barrier.wait()
        kids.append(issuer.load_or_create_key(path).kid)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(kids) == 4 and len(set(kids)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["key.pem"]  # no temporary files left


def test_default_key_lives_in_the_git_ignored_data_dir() -> None:
    """By default the key sits under DATA_DIR, which git ignores: it can never be committed."""
    default = Path(settings.DATA_DIR) / "auth-signing-key.pem"
    assert default.parent == Path(settings.DATA_DIR)
    if Path(settings.DATA_DIR).resolve().is_relative_to(ROOT):
        relative = (Path(settings.DATA_DIR).resolve() / default.name).relative_to(ROOT)
        ignored = subprocess.run(["git", "check-ignore", "-q", str(relative)], cwd=ROOT, check=False)
        assert ignored.returncode == 0


def test_jwks_publishes_only_the_public_half() -> None:
    """The JWKS names the key by its thumbprint and carries no private parameter."""
    key = issuer.SigningKey.generate()
    (jwk,) = key.jwks()["keys"]
    assert jwk["kid"] == key.kid and jwk["alg"] == "RS256" and jwk["use"] == "sig"
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)
    assert issuer.SigningKey.generate().kid != key.kid


# --- minted tokens ------------------------------------------------------------------------------


def test_minted_tokens_are_cognito_shaped_and_verify() -> None:
    """Built-in ID and access tokens carry Cognito's claims and pass the same verifier."""
    key = issuer.SigningKey.generate()
    id_token, access_token = issuer.mint(
        key,
        subject="sub-1",
        username="alice",
        groups=["moderators"],
        email="a@example.com",
        lifetime=3600,
        now=int(NOW.timestamp()),
    )
    id_verified, access_verified = verify(id_token, key), verify(access_token, key)
    assert id_verified.claims["aud"] == "chatsite" and "client_id" not in id_verified.claims
    assert access_verified.claims["client_id"] == "chatsite" and "aud" not in access_verified.claims
    assert (id_verified.username, access_verified.username) == ("alice", "alice")
    assert id_verified.groups == ("moderators",) and id_verified.claims["email"] == "a@example.com"
    assert id_verified.expires_at == int(NOW.timestamp()) + 3600
    assert id_verified.claims["origin_jti"] == access_verified.claims["origin_jti"]


# --- issuing for users --------------------------------------------------------------------------


@pytest.mark.django_db
def test_sign_in_issues_tokens_for_a_stable_subject(key_file: Path) -> None:
    """A user's tokens always carry the same sub, and the refresh token is stored only hashed."""
    user = get_user_model().objects.create_user("alice", password="pw-123456789")
    first, second = issuer.issue_tokens(user, now=NOW), issuer.issue_tokens(user, now=NOW)
    key = issuer.signing_key()
    assert verify(first.id_token, key).subject == verify(second.access_token, key).subject
    assert first.as_json()["TokenType"] == "Bearer" and first.as_json()["ExpiresIn"] == 3600
    assert first.refresh_token and first.refresh_token != second.refresh_token
    assert not RefreshToken.objects.filter(digest=first.refresh_token).exists()
    assert RefreshToken.objects.filter(user=user).count() == 2


@pytest.mark.django_db
def test_refresh_token_gives_new_tokens_until_revoked_or_expired(key_file: Path) -> None:
    """A refresh token works until it is revoked, expires, or its user is deactivated (which revokes it)."""
    user = get_user_model().objects.create_user("alice", password="pw-123456789")
    tokens = issuer.issue_tokens(user, now=NOW)
    assert tokens.refresh_token is not None
    later = NOW + timedelta(hours=2)
    refreshed = issuer.refresh_tokens(tokens.refresh_token, now=later)
    assert refreshed.refresh_token is None  # like Cognito: the refresh token is reused
    assert verify(refreshed.access_token, issuer.signing_key(), now=later).subject
    with pytest.raises(issuer.InvalidRefreshToken):
        issuer.refresh_tokens(tokens.refresh_token, now=NOW + timedelta(days=31))
    with pytest.raises(issuer.InvalidRefreshToken):
        issuer.refresh_tokens("made-up", now=later)
    user.is_active = False
    user.save()
    with pytest.raises(issuer.InvalidRefreshToken):
        issuer.refresh_tokens(tokens.refresh_token, now=later)
    user.is_active = True
    user.save()
    with pytest.raises(issuer.InvalidRefreshToken):  # deactivation revoked it for good
        issuer.refresh_tokens(tokens.refresh_token, now=later)
    fresh = issuer.issue_tokens(user, now=NOW)
    assert fresh.refresh_token is not None
    assert issuer.revoke_refresh_token(fresh.refresh_token)
    with pytest.raises(issuer.InvalidRefreshToken):
        issuer.refresh_tokens(fresh.refresh_token, now=later)


# --- claims to users ----------------------------------------------------------------------------

POOL = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Pool"


def cognito(sub: str, username: str | None = "carol", groups: tuple[str, ...] = (), **claims: Any) -> VerifiedToken:
    return VerifiedToken(
        subject=sub,
        issuer=POOL,
        token_use=claims.pop("token_use", "id"),
        username=username,
        groups=groups,
        expires_at=0,
        claims=claims,
    )


@pytest.mark.django_db
def test_cognito_user_is_created_once_per_sub() -> None:
    """The first token of a sub creates a user; later tokens of that sub find the same one."""
    first = user_for_token(cognito("sub-carol", email="carol@example.com"))
    again = user_for_token(cognito("sub-carol", token_use="access"))
    assert first.pk == again.pk and again.username == "carol" and again.email == "carol@example.com"
    assert not first.has_usable_password()


@pytest.mark.django_db
def test_a_new_sub_with_a_taken_username_never_takes_over_the_account() -> None:
    """sub is the identity: a second Cognito user named like an existing one gets a new account."""
    local = get_user_model().objects.create_user("carol", password="pw-123456789", is_staff=True)
    other = user_for_token(cognito("sub-impostor"))
    assert other.pk != local.pk
    assert other.username.startswith("carol-") and other.username != "carol"


@pytest.mark.django_db
def test_renamed_cognito_user_keeps_the_account() -> None:
    """A changed username is copied onto the same account."""
    user = user_for_token(cognito("sub-x", username="old-name"))
    renamed = user_for_token(cognito("sub-x", username="new-name"))
    assert renamed.pk == user.pk and renamed.username == "new-name"


@pytest.mark.django_db
def test_cognito_groups_grant_and_revoke_staff_and_moderator(settings: SettingsWrapper) -> None:
    """Group membership decides staff and moderator rights at every sign-in, both ways."""
    settings.COGNITO_STAFF_GROUPS = ["admins"]
    settings.COGNITO_MODERATOR_GROUPS = ["moderators"]
    user = user_for_token(cognito("sub-m", groups=("admins", "moderators")))
    assert user.is_staff and is_moderator(user)
    user = user_for_token(cognito("sub-m", groups=("admins",)))
    assert user.is_staff and not is_moderator(user)
    user = user_for_token(cognito("sub-m"))
    assert not user.is_staff and not is_moderator(user)


@pytest.mark.django_db
def test_staff_alone_is_not_a_moderator() -> None:
    """Moderator rights come from the moderators group (or superuser), not from is_staff."""
    staff = get_user_model().objects.create_user("sam", is_staff=True)
    assert not is_moderator(staff)
    staff.groups.add(Group.objects.create(name=settings.AUTH_MODERATOR_GROUP))
    assert is_moderator(staff)
    assert is_moderator(get_user_model().objects.create_superuser("root", password="pw-123456789"))


@pytest.mark.django_db
def test_built_in_tokens_name_existing_users_only(key_file: Path) -> None:
    """A built-in token for a sub no user has is refused, never turned into a new account."""
    user = get_user_model().objects.create_user("alice", password="pw-123456789")
    tokens = issuer.issue_tokens(user, now=NOW)
    verified = verify(tokens.id_token, issuer.signing_key())
    assert user_for_token(verified).pk == user.pk
    ExternalIdentity.objects.filter(user=user).delete()
    with pytest.raises(TokenRejected) as info:
        user_for_token(verified)
    assert info.value.reason is Rejection.UNKNOWN_USER


@pytest.mark.django_db
def test_inactive_users_are_refused() -> None:
    """A deactivated account's token is refused even though the token itself is sound."""
    user = user_for_token(cognito("sub-z"))
    user.is_active = False
    user.save()
    with pytest.raises(TokenRejected) as info:
        user_for_token(cognito("sub-z"))
    assert info.value.reason is Rejection.USER_INACTIVE


@pytest.mark.django_db
def test_a_password_change_revokes_built_in_tokens_issued_before_it(key_file: Path) -> None:
    """Tokens issued under the old password are refused as revoked, and so is its refresh token; new ones work."""
    user = get_user_model().objects.create_user("alice", password="pw-123456789")
    before = issuer.issue_tokens(user, now=NOW)
    assert user_for_token(verify(before.access_token, issuer.signing_key())).pk == user.pk
    user.set_password("another-pw-987654321")
    user.save()
    for token in (before.id_token, before.access_token):
        with pytest.raises(TokenRejected) as info:
            user_for_token(verify(token, issuer.signing_key()))
        assert info.value.reason is Rejection.REVOKED
    assert before.refresh_token is not None
    with pytest.raises(issuer.InvalidRefreshToken):
        issuer.refresh_tokens(before.refresh_token, now=NOW)
    after = issuer.issue_tokens(user, now=NOW)
    assert user_for_token(verify(after.access_token, issuer.signing_key())).pk == user.pk
