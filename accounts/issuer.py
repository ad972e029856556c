"""The built-in issuer: Chatsite signs Cognito-shaped tokens when no Cognito is configured.

Its keys come from one of three places (`key_ring`):

- AUTH_SIGNING_KEYS_SECRET: a Secrets Manager secret shared by every task, re-read every
  AUTH_SIGNING_KEYS_MAX_AGE seconds and whenever a token names a key this process has not
  seen, so a key rotated in the secret reaches every host without a restart;
- AUTH_SIGNING_KEYS: the same text in the environment (ECS injects a secret this way);
- neither: on first use an RSA key is created in a file under settings.DATA_DIR
  (AUTH_SIGNING_KEY_FILE, mode 0600, never in the repo; `*.pem` and `var/` are git-ignored),
  which is right for one host only: a second host would make its own and refuse the
  first's tokens.

The shared text is one PEM private key, or JSON {"current": PEM, "previous": [PEM...],
"next": [PEM...]}: the current key signs; previous and next keys only verify, all are
published at /.well-known/jwks.json. Rotation (docs/auth.md): add the new key as "next"
(wait until every host has it), make it "current" with the old one "previous", and drop the
old one once the tokens it signed have expired. Tokens carry the claims Cognito puts in its
own. They are verified by `accounts.tokens.verify_token`, the same function that
verifies Cognito's: one code path for both.

Refresh tokens are opaque random strings; only their SHA-256 is stored, so a database leak
does not leak usable refresh tokens.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils.crypto import salted_hmac

from accounts.models import ExternalIdentity, RefreshToken
from accounts.tokens import ALGORITHM, TokenSet
from chatsite.aws_secrets import secret_text

# The iss of built-in tokens. Not a URL: nothing should ever try to fetch keys from it.
BUILTIN_ISSUER: Final = "urn:chatsite:builtin"
BUILTIN_CLIENT_ID: Final = "chatsite"
# The claim that ties a built-in token to the password it was issued under: a password change
# revokes every token issued before it (accounts.revocation), with no table of revoked tokens.
CREDENTIAL_CLAIM: Final = "chatsite:credential"
KEY_BITS: Final = 2048  # what Cognito uses


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class SigningKey:
    private_key: rsa.RSAPrivateKey
    kid: str

    @classmethod
    def from_private_key(cls, private_key: rsa.RSAPrivateKey) -> SigningKey:
        numbers = private_key.public_key().public_numbers()
        # RFC 7638 thumbprint: a kid that changes exactly when the key does.
        canonical = json.dumps(
            {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)}, separators=(",", ":")
        )
        kid = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
        return cls(private_key=private_key, kid=kid)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls.from_private_key(rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS))

    def public_jwk(self) -> dict[str, str]:
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "kid": self.kid,
            "use": "sig",
            "alg": ALGORITHM,
            "n": _b64url_uint(numbers.n),
            "e": _b64url_uint(numbers.e),
        }

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk()]}

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.private_key, algorithm=ALGORITHM, headers={"kid": self.kid})


def load_or_create_key(path: Path) -> SigningKey:
    """The key in `path`, created (0600) if the file does not exist yet.

    Several daphne processes may start at once on one data directory: each writes its own
    candidate to a private temporary file and links it into place; the first link wins and
    everyone reads the winner.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        candidate = SigningKey.generate()
        pem = candidate.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process won the race: use its key
        finally:
            tmp.unlink(missing_ok=True)
    private_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise ValueError(f"{path} does not hold an RSA private key")
    return SigningKey.from_private_key(private_key)


@cache
def _key_at(path: str) -> SigningKey:
    return load_or_create_key(Path(path))


@dataclass(frozen=True)
class KeyRing:
    """The key that signs, and the keys that only verify (the previous one until its tokens
    have expired; the next one, so every host knows it before any host signs with it)."""

    current: SigningKey
    verify_only: tuple[SigningKey, ...] = ()

    def jwks(self) -> dict[str, Any]:
        keys = [self.current, *(k for k in self.verify_only if k.kid != self.current.kid)]
        return {"keys": [k.public_jwk() for k in keys]}


def _private_key(pem: str, where: str) -> SigningKey:
    try:
        key = serialization.load_pem_private_key(pem.strip().encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"{where}: not a PEM private key without a passphrase ({exc})") from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < KEY_BITS:
        raise ImproperlyConfigured(f"{where}: the signing key must be RSA of at least {KEY_BITS} bits")
    return SigningKey.from_private_key(key)


_PEM_END = "-----END PRIVATE KEY-----"


def parse_key_ring(text: str, *, source: str = "AUTH_SIGNING_KEYS") -> KeyRing:
    """A key ring from one PEM private key or {"current": PEM, "previous": [...], "next": [...]}."""
    text = text.strip()
    if not text.startswith("{"):
        blocks = [block + _PEM_END for block in text.split(_PEM_END) if block.strip()]
        if len(blocks) != 1:
            raise ImproperlyConfigured(f"{source}: one PEM key, or JSON with current/previous/next keys")
        return KeyRing(current=_private_key(blocks[0], source))
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"{source}: not valid JSON ({exc.msg})") from None
    unknown = set(document) - {"current", "previous", "next"} if isinstance(document, dict) else {"?"}
    if unknown or not isinstance(document.get("current"), str):
        raise ImproperlyConfigured(f'{source}: JSON must be {{"current": PEM, "previous": [PEM], "next": [PEM]}}')
    others: list[SigningKey] = []
    for field in ("previous", "next"):
        pems = document.get(field, [])
        if not isinstance(pems, list) or not all(isinstance(p, str) for p in pems):
            raise ImproperlyConfigured(f"{source}: {field!r} must be a list of PEM strings")
        others += [_private_key(pem, f"{source} {field}[{i}]") for i, pem in enumerate(pems)]
    return KeyRing(current=_private_key(document["current"], f"{source} current"), verify_only=tuple(others))


@cache
def _parsed_ring(text: str) -> KeyRing:
    return parse_key_ring(text)


_ring_lock = threading.Lock()
_ring: tuple[float, KeyRing] | None = None


def key_ring(*, fresh: bool = False) -> KeyRing:
    """This process's key ring: from the shared secret (re-read after AUTH_SIGNING_KEYS_MAX_AGE
    seconds, or at once with `fresh`), from AUTH_SIGNING_KEYS, or from the local key file."""
    global _ring
    if settings.AUTH_SIGNING_KEYS:
        return _parsed_ring(settings.AUTH_SIGNING_KEYS)
    secret_id = settings.AUTH_SIGNING_KEYS_SECRET
    if not secret_id:
        return KeyRing(current=_key_at(str(settings.AUTH_SIGNING_KEY_FILE)))
    with _ring_lock:
        now = time.monotonic()
        if fresh or _ring is None or now - _ring[0] >= settings.AUTH_SIGNING_KEYS_MAX_AGE:
            try:
                _ring = (now, parse_key_ring(secret_text(secret_id), source="AUTH_SIGNING_KEYS_SECRET"))
            except Exception:
                if _ring is None:
                    raise  # no key at all: sign-in fails with a clear error, nothing is signed
                # Keep signing and verifying with the keys held; try again at the next use.
                _ring = (now - settings.AUTH_SIGNING_KEYS_MAX_AGE, _ring[1])
        return _ring[1]


def signing_key() -> SigningKey:
    """The key that signs this process's tokens now (see `key_ring`)."""
    return key_ring().current


def reset_key_cache() -> None:
    global _ring
    _key_at.cache_clear()
    _parsed_ring.cache_clear()
    _ring = None


# --- minting (pure) --------------------------------------------------------------------


def mint(
    key: SigningKey,
    *,
    subject: str,
    username: str,
    groups: list[str],
    email: str | None,
    lifetime: int,
    now: int,
    auth_time: int | None = None,
    origin_jti: str | None = None,
    credential: str | None = None,
) -> tuple[str, str]:
    """An ID token and an access token with the claims Cognito uses (and `credential_fingerprint`)."""
    origin_jti = origin_jti or str(uuid.uuid4())
    common: dict[str, Any] = {
        "iss": BUILTIN_ISSUER,
        "sub": subject,
        "iat": now,
        "auth_time": auth_time or now,
        "exp": now + lifetime,
        "origin_jti": origin_jti,
        "event_id": str(uuid.uuid4()),
    }
    if groups:
        common["cognito:groups"] = groups
    if credential is not None:
        common[CREDENTIAL_CLAIM] = credential
    id_claims = {
        **common,
        "jti": str(uuid.uuid4()),
        "token_use": "id",
        "aud": BUILTIN_CLIENT_ID,
        "cognito:username": username,
    }
    if email:
        id_claims["email"] = email
    access_claims = {
        **common,
        "jti": str(uuid.uuid4()),
        "token_use": "access",
        "client_id": BUILTIN_CLIENT_ID,
        "username": username,
        "scope": "aws.cognito.signin.user.admin",
    }
    return key.sign(id_claims), key.sign(access_claims)


# --- issuing for built-in accounts (database) ------------------------------------------


class InvalidRefreshToken(Exception):
    pass


def _digest(refresh_token: str) -> str:
    return hashlib.sha256(refresh_token.encode()).hexdigest()


def subject_for(user: AbstractBaseUser) -> str:
    """The built-in `sub` of a user: a random UUID made once and kept."""
    link, _ = ExternalIdentity.objects.get_or_create(
        issuer=BUILTIN_ISSUER, user_id=user.pk, defaults={"subject": str(uuid.uuid4())}
    )
    return link.subject


def credential_fingerprint(user: Any) -> str:
    """A keyed digest of the user's password hash: changes exactly when the password does, and
    tells the token's holder nothing about it (as Django's session auth hash)."""
    return salted_hmac("accounts.issuer.credential", user.password, algorithm="sha256").hexdigest()[:22]


def _mint_for(
    user: Any, *, now: datetime, refresh_token: str | None, origin: str, auth_time: int | None = None
) -> TokenSet:
    """ID and access tokens whose `origin_jti` is their refresh token's digest (as Cognito links
    tokens to the sign-in they came from): revoking that refresh token revokes them too."""
    lifetime = settings.AUTH_TOKEN_LIFETIME
    id_token, access_token = mint(
        signing_key(),
        subject=subject_for(user),
        username=user.get_username(),
        groups=sorted(user.groups.values_list("name", flat=True)),
        email=user.email or None,
        lifetime=lifetime,
        now=int(now.timestamp()),
        auth_time=auth_time,
        origin_jti=origin,
        credential=credential_fingerprint(user),
    )
    return TokenSet(id_token=id_token, access_token=access_token, expires_in=lifetime, refresh_token=refresh_token)


def issue_tokens(user: Any, *, now: datetime | None = None) -> TokenSet:
    """Sign-in: ID, access and refresh tokens for an authenticated built-in user."""
    now = now or datetime.now(UTC)
    refresh_token = secrets.token_urlsafe(48)
    with transaction.atomic():
        RefreshToken.objects.create(
            user=user,
            digest=_digest(refresh_token),
            created_at=now,
            expires_at=now + timedelta(seconds=settings.AUTH_REFRESH_TOKEN_LIFETIME),
        )
        return _mint_for(user, now=now, refresh_token=refresh_token, origin=_digest(refresh_token))


def refresh_tokens(refresh_token: str, *, now: datetime | None = None) -> TokenSet:
    """New ID and access tokens for a live refresh token (like Cognito, no new refresh token)."""
    now = now or datetime.now(UTC)
    row = _live_refresh_token(refresh_token, now=now)
    return _mint_for(
        row.user, now=now, refresh_token=None, origin=row.digest, auth_time=int(row.created_at.timestamp())
    )


def refresh_token_owner(refresh_token: str, *, now: datetime | None = None) -> Any:
    """The active user a live refresh token belongs to. Raises InvalidRefreshToken."""
    return _live_refresh_token(refresh_token, now=now or datetime.now(UTC)).user


def _live_refresh_token(refresh_token: str, *, now: datetime) -> RefreshToken:
    row = (
        RefreshToken.objects.select_related("user")
        .filter(digest=_digest(refresh_token), revoked_at__isnull=True, expires_at__gt=now)
        .first()
    )
    if row is None or not row.user.is_active:
        raise InvalidRefreshToken("refresh token is unknown, expired, revoked or its user is inactive")
    return row


def revoke_refresh_token(refresh_token: str, *, now: datetime | None = None) -> bool:
    return bool(
        RefreshToken.objects.filter(digest=_digest(refresh_token), revoked_at__isnull=True).update(
            revoked_at=now or datetime.now(UTC)
        )
    )


def revoke_user_refresh_tokens(user_id: Any, *, now: datetime | None = None) -> int:
    """Revoke every live refresh token of a user (a password change, a deactivation, sign-out everywhere)."""
    return RefreshToken.objects.filter(user_id=user_id, revoked_at__isnull=True).update(
        revoked_at=now or datetime.now(UTC)
    )


def refresh_token_revoked(origin: str) -> bool:
    """Whether the refresh token a built-in token came from (its `origin_jti`) has been revoked.
    False for an origin that is no refresh token's digest (tokens minted before the link)."""
    return RefreshToken.objects.filter(digest=origin, revoked_at__isnull=False).exists()


def revoke_refresh_token_of(refresh_token: str, *, now: datetime | None = None) -> tuple[Any, str] | None:
    """Sign a token client out: revoke one live refresh token; its (user id, digest), or None."""
    digest = _digest(refresh_token)
    row = RefreshToken.objects.filter(digest=digest, revoked_at__isnull=True).first()
    if row is None or not revoke_refresh_token(refresh_token, now=now):
        return None
    return row.user_id, digest
