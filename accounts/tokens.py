"""Verifying JWTs: one pure function for Cognito's tokens and the built-in issuer's.

`verify_token` follows AWS's documented steps for Cognito user pool tokens, with PyJWT for
the signature (no hand-written crypto):

1. the token is three base64url segments, at most MAX_TOKEN_CHARS long;
2. the header says RS256 (fixed here, never taken from settings or the token) and names a
   `kid`; `jku`, `x5u` and an embedded `jwk` are never read;
3. the key with that `kid` comes from the configured JWKS (a `KeySource`), never from the
   token itself;
4. the signature verifies;
5. `iss` equals the configured issuer exactly; `token_use` is one the policy accepts; an ID
   token's `aud` and an access token's `client_id` equal the app client id;
6. `exp`, `nbf` and `iat` hold at `now`, give or take the policy's leeway.

Every rejection is a `TokenRejected` with a stable `Rejection` reason and a detail that is
safe to log: it never contains the token. The function does no I/O of its own and reads no
clock: keys and time are passed in, so every case is tested in microseconds.

`JwksKeySet` is the key source: a JWKS fetched through an injectable fetcher, cached, and
fetched again for an unknown `kid` at most once per `min_refetch_interval` (10 s), so a
flood of made-up key ids cannot turn into a flood of requests to the JWKS endpoint.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Final, Protocol

import jwt
from jwt import PyJWK, PyJWKClient

log = logging.getLogger(__name__)

ALGORITHM: Final = "RS256"
# Cognito's tokens are a few KiB even with many groups; anything far larger is not one.
MAX_TOKEN_CHARS: Final = 16 * 1024
MAX_KID_CHARS: Final = 256
# The last second of the year 9999 (UTC): the latest time a datetime holds.
MAX_TIMESTAMP: Final = 253_402_300_799
_SEGMENT: Final = re.compile(r"^[A-Za-z0-9_-]*$")
TOKEN_USES: Final = frozenset({"id", "access"})


class Rejection(StrEnum):
    """Why a token was refused. Logged, and named in error frames; never renamed."""

    MALFORMED = "malformed"
    TOO_LARGE = "too_large"
    ALGORITHM = "algorithm_not_allowed"
    MISSING_KID = "missing_kid"
    UNKNOWN_KID = "unknown_kid"
    KEYS_UNAVAILABLE = "keys_unavailable"
    BAD_SIGNATURE = "bad_signature"
    WRONG_ISSUER = "wrong_issuer"
    WRONG_TOKEN_USE = "wrong_token_use"  # noqa: S105 - a reason, not a secret
    WRONG_AUDIENCE = "wrong_audience"
    WRONG_CLIENT_ID = "wrong_client_id"
    MISSING_CLAIM = "missing_claim"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    ISSUED_IN_FUTURE = "issued_in_future"
    # After verification: the token is sound but names nobody Chatsite can let in.
    UNKNOWN_USER = "unknown_user"
    USER_INACTIVE = "user_inactive"
    # A built-in token issued under a password the user has since changed (accounts.revocation).
    REVOKED = "revoked"


class TokenRejected(Exception):
    """A token that must not be trusted. `detail` is safe to log; the token is never in it."""

    def __init__(self, reason: Rejection, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    """What a token must say to be accepted: one issuer, one app client, some token uses."""

    issuer: str
    client_id: str
    token_uses: frozenset[str] = TOKEN_USES
    leeway: float = 5.0

    def __post_init__(self) -> None:
        if not self.issuer or not self.client_id:
            raise ValueError("a token policy needs an issuer and a client id")
        if not self.token_uses or not self.token_uses <= TOKEN_USES:
            raise ValueError(f"token uses must be a non-empty subset of {sorted(TOKEN_USES)}")
        if not 0 <= self.leeway <= 300:
            raise ValueError("leeway must be between 0 and 300 seconds")


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    subject: str
    issuer: str
    token_use: str
    username: str | None
    groups: tuple[str, ...]
    expires_at: int
    claims: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class TokenSet:
    """Tokens in the shape of Cognito's InitiateAuth AuthenticationResult."""

    id_token: str
    access_token: str
    expires_in: int
    refresh_token: str | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "IdToken": self.id_token,
            "AccessToken": self.access_token,
            "ExpiresIn": self.expires_in,
            "TokenType": "Bearer",
        }
        if self.refresh_token is not None:
            body["RefreshToken"] = self.refresh_token
        return body


# --- keys -----------------------------------------------------------------------------


class UnknownKey(LookupError):
    pass


class KeysUnavailable(Exception):
    pass


class KeySource(Protocol):
    def key_for(self, kid: str) -> PyJWK:
        """The RS256 public key with this kid. Raises UnknownKey or KeysUnavailable."""
        ...


Fetcher = Callable[[], Mapping[str, Any]]


def http_fetcher(url: str, *, timeout: float = 5.0) -> Fetcher:
    """Fetch a JWKS over HTTP(S) with PyJWT's client (no redirects, http/https only).

    PyJWKClient's own cache is off: `JwksKeySet` caches, with an injectable clock and a
    limit that also covers failed fetches.
    """
    client = PyJWKClient(url, cache_jwk_set=False, timeout=timeout)

    def fetch() -> Mapping[str, Any]:
        data = client.fetch_data()
        if not isinstance(data, dict):
            raise ValueError("the JWKS endpoint did not return a JSON object")
        return data

    return fetch


def parse_jwks(data: Mapping[str, Any]) -> dict[str, PyJWK]:
    """The usable signing keys of a JWKS by kid: RSA keys for RS256 only.

    An `oct` (HMAC) or EC key in the set is skipped, so no key can be used with another
    algorithm than the one fixed here.
    """
    raw_keys = data.get("keys")
    if not isinstance(raw_keys, list):
        raise ValueError("a JWKS needs a 'keys' list")
    keys: dict[str, PyJWK] = {}
    for raw in raw_keys:
        if not isinstance(raw, dict) or raw.get("kty") != "RSA":
            continue
        kid = raw.get("kid")
        if not isinstance(kid, str) or not kid or raw.get("use", "sig") != "sig":
            continue
        if raw.get("alg", ALGORITHM) != ALGORITHM:
            continue
        try:
            keys[kid] = PyJWK(raw, algorithm=ALGORITHM)
        except jwt.PyJWTError:
            continue
    return keys


class JwksKeySet:
    """A JWKS, cached; fetched at most once per `min_refetch_interval` seconds, whatever happens.

    - The first lookup fetches the set.
    - An unknown kid fetches it again (a key rotation) unless the last fetch attempt was
      less than `min_refetch_interval` ago; then the kid is simply unknown.
    - A set older than `max_age` is fetched again on the next lookup, under the same limit.
    - A failed fetch keeps the keys already held and also counts against the limit, so an
      endpoint that is down is not hammered either.

    Fetches run on a thread of their own, one at a time; lookups that need the fetch wait for
    it until `wait` seconds after it started, then fail (KeysUnavailable: the token is
    refused, the client may retry). A slow endpoint once held every caller's thread behind this set's
    lock for the whole fetch, and with them the thread pool that /readyz and the DynamoDB
    store share (issue 24).
    """

    # Fetches by outcome, over every key set of the process (the chatsite_jwks_fetches metric).
    fetch_totals: ClassVar[dict[str, int]] = {"ok": 0, "failed": 0}

    def __init__(
        self,
        fetch: Fetcher,
        *,
        min_refetch_interval: float = 10.0,
        max_age: float = 3600.0,
        wait: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._min_refetch_interval = min_refetch_interval
        self._max_age = max_age
        self._wait = wait
        self._clock = clock
        self._lock = threading.Lock()  # held for bookkeeping only, never across a fetch
        self._fetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jwks-fetch")
        self._in_flight: Future[None] | None = None
        self._deadline = 0.0  # when lookups stop waiting for the fetch in flight (time.monotonic)
        self._keys: dict[str, PyJWK] | None = None
        self._fetched_at = 0.0
        self._last_attempt: float | None = None
        self._last_error = "never fetched"
        self.fetches = 0

    def key_for(self, kid: str) -> PyJWK:
        with self._lock:
            now = self._clock()
            key = self._keys.get(kid) if self._keys is not None else None
            stale = self._keys is None or now - self._fetched_at >= self._max_age
            pending = self._start_fetch(now) if stale or key is None else None
        if key is not None and not stale:
            return key
        if pending is not None:
            try:
                # The deadline is the fetch's, not this lookup's: past it, lookups fail at
                # once instead of queueing up for another `wait` each.
                pending.result(timeout=max(0.0, self._deadline - time.monotonic()))
            except FutureTimeout:
                if key is None:
                    raise KeysUnavailable(f"JWKS fetch still running after {self._wait:g} s") from None
                # A slow refresh of a stale set: answer from it, as after a failed refresh.
        with self._lock:
            key = self._keys.get(kid) if self._keys is not None else None
            if key is not None:
                return key
            if self._keys is None:
                raise KeysUnavailable(self._last_error)
            raise UnknownKey(kid)

    def _start_fetch(self, now: float) -> Future[None] | None:
        """The fetch to wait for: the one in flight, a new one, or None (the limit says no). Hold the lock."""
        if self._in_flight is not None and not self._in_flight.done():
            return self._in_flight
        if self._last_attempt is not None and now - self._last_attempt < self._min_refetch_interval:
            return None
        self._last_attempt = now
        self.fetches += 1
        self._in_flight = self._fetcher.submit(self._refetch, now)
        self._deadline = time.monotonic() + self._wait
        return self._in_flight

    def _refetch(self, now: float) -> None:
        try:
            keys = parse_jwks(self._fetch())
        except Exception as exc:
            with self._lock:
                JwksKeySet.fetch_totals["failed"] += 1
                self._last_error = f"JWKS fetch failed: {type(exc).__name__}"
                held = len(self._keys or {})
            log.warning("%s (keeping %d cached keys)", self._last_error, held)
            return
        with self._lock:
            JwksKeySet.fetch_totals["ok"] += 1
            self._keys = keys
            self._fetched_at = now


class StaticKeySet:
    """A fixed set of keys (tests, and keys held in memory)."""

    def __init__(self, jwks: Mapping[str, Any]) -> None:
        self._keys = parse_jwks(jwks)

    def key_for(self, kid: str) -> PyJWK:
        try:
            return self._keys[kid]
        except KeyError:
            raise UnknownKey(kid) from None


# --- verification ---------------------------------------------------------------------


def _shown(value: Any) -> str:
    """A claim value for a log line: short, quoted, never a whole token."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _header(segment: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        header = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        raise TokenRejected(Rejection.MALFORMED, "the header is not base64url JSON") from None
    if not isinstance(header, dict):
        raise TokenRejected(Rejection.MALFORMED, "the header is not a JSON object")
    return header


def verify_token(token: str, *, keys: KeySource, policy: TokenPolicy, now: float) -> VerifiedToken:
    """Verify a Cognito-shaped JWT; return its identity or raise TokenRejected. `now`: epoch seconds."""
    if not isinstance(token, str) or not token:
        raise TokenRejected(Rejection.MALFORMED, "no token")
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenRejected(Rejection.TOO_LARGE, f"{len(token)} characters, at most {MAX_TOKEN_CHARS}")
    segments = token.split(".")
    if len(segments) != 3 or not all(_SEGMENT.match(s) for s in segments):
        raise TokenRejected(Rejection.MALFORMED, f"{len(segments)} segments, or not base64url")

    header = _header(segments[0])
    alg = header.get("alg")
    if alg != ALGORITHM:
        raise TokenRejected(Rejection.ALGORITHM, f"alg {_shown(alg)}, only {ALGORITHM} is accepted")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > MAX_KID_CHARS:
        raise TokenRejected(Rejection.MISSING_KID, "the header has no usable kid")
    if not segments[2]:
        raise TokenRejected(Rejection.BAD_SIGNATURE, "the signature is empty")

    try:
        key = keys.key_for(kid)
    except UnknownKey:
        raise TokenRejected(Rejection.UNKNOWN_KID, f"kid {_shown(kid)} is not in the JWKS") from None
    except KeysUnavailable as exc:
        raise TokenRejected(Rejection.KEYS_UNAVAILABLE, str(exc)) from None

    try:
        claims = jwt.decode(
            token,
            key=key.key,
            algorithms=[ALGORITHM],
            # Only the signature here; the claims are checked below against `now`.
            options={
                "verify_signature": True,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "verify_iss": False,
                "verify_sub": False,
                "verify_jti": False,
            },
        )
    except jwt.InvalidSignatureError:
        raise TokenRejected(Rejection.BAD_SIGNATURE, f"the signature does not match key {_shown(kid)}") from None
    except jwt.PyJWTError as exc:
        raise TokenRejected(Rejection.MALFORMED, f"cannot be decoded ({type(exc).__name__})") from None

    return _check_claims(claims, policy=policy, now=now)


def _check_claims(claims: dict[str, Any], *, policy: TokenPolicy, now: float) -> VerifiedToken:
    iss = claims.get("iss")
    if iss != policy.issuer:
        # Exact equality: a prefix, a suffix or a trailing slash is another issuer.
        raise TokenRejected(Rejection.WRONG_ISSUER, f"iss {_shown(iss)} is not the configured issuer")

    token_use = claims.get("token_use")
    if not isinstance(token_use, str) or token_use not in policy.token_uses:
        raise TokenRejected(
            Rejection.WRONG_TOKEN_USE,
            f"token_use {_shown(token_use)}, expected {' or '.join(sorted(policy.token_uses))}",
        )
    if token_use == "id":  # noqa: S105 - a claim value
        # Cognito ID tokens carry the app client id as a plain string in aud.
        if claims.get("aud") != policy.client_id:
            raise TokenRejected(Rejection.WRONG_AUDIENCE, f"aud {_shown(claims.get('aud'))} is not the app client")
    elif claims.get("client_id") != policy.client_id:
        # Access tokens have no aud; their app client is client_id.
        raise TokenRejected(
            Rejection.WRONG_CLIENT_ID, f"client_id {_shown(claims.get('client_id'))} is not the app client"
        )

    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 255:
        raise TokenRejected(Rejection.MISSING_CLAIM, "no usable sub")
    for name in ("exp", "iat"):
        if not _is_number(claims.get(name)):
            raise TokenRejected(Rejection.MISSING_CLAIM, f"no numeric {name}")
    exp, iat, nbf = claims["exp"], claims["iat"], claims.get("nbf")
    if exp > MAX_TIMESTAMP:
        # A datetime cannot hold it: the socket's expiry timer and the authenticated frame
        # would crash on a token the issuer signed. No token lives that long.
        raise TokenRejected(Rejection.MALFORMED, "exp is past the year 9999")
    if now >= exp + policy.leeway:
        raise TokenRejected(Rejection.EXPIRED, f"expired {int(now - exp)} s ago")
    if nbf is not None:
        if not _is_number(nbf):
            raise TokenRejected(Rejection.MALFORMED, "nbf is not a number")
        if now + policy.leeway < nbf:
            raise TokenRejected(Rejection.NOT_YET_VALID, f"valid in {int(nbf - now)} s")
    if iat > now + policy.leeway:
        raise TokenRejected(Rejection.ISSUED_IN_FUTURE, f"issued {int(iat - now)} s in the future")

    raw_groups = claims.get("cognito:groups")
    groups = tuple(g for g in raw_groups if isinstance(g, str)) if isinstance(raw_groups, list) else ()
    username = None
    # ID tokens name the user in cognito:username, access tokens in username.
    for name in ("cognito:username", "username", "preferred_username"):
        value = claims.get(name)
        if isinstance(value, str) and value:
            username = value
            break
    return VerifiedToken(
        subject=sub,
        issuer=iss,
        token_use=token_use,
        username=username,
        groups=groups,
        expires_at=int(exp),
        claims=claims,
    )
