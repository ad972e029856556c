"""The configured verifier: which issuer, which keys and which rules, chosen once from settings.

With Cognito configured, tokens come from the user pool and its keys from COGNITO_JWKS_URL
(the pool's URL on AWS by default). Without it, the built-in issuer signs them and its
keys are read in-process. Either way `accounts.tokens.verify_token` decides.

Every rejection is logged here, with its reason and never the token: WebSocket, Bearer and
sign-in pages all come through `verify` and `user_for`. A flood is sampled: at most 10
lines per route and reason every 10 s, then the count of the others.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from accounts import issuer
from accounts.cognito import CognitoConfig
from accounts.tokens import (
    JwksKeySet,
    KeySource,
    TokenPolicy,
    TokenRejected,
    VerifiedToken,
    http_fetcher,
    verify_token,
)
from accounts.users import user_for_token
from chatsite.ops import logs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verifier:
    keys: KeySource
    policy: TokenPolicy


_lock = threading.Lock()
_verifier: Verifier | None = None


# Token verification off the event loop, on threads of its own: a flood of tokens, or a
# lookup waiting for a JWKS fetch (at most AUTH_JWKS_WAIT), takes at most these threads,
# never the default pool that /readyz and the DynamoDB store calls use (issue 24).
VERIFY_THREADS = 4
_verify_executor: ThreadPoolExecutor | None = None


def verify_executor() -> ThreadPoolExecutor:
    global _verify_executor
    with _lock:
        if _verify_executor is None:
            _verify_executor = ThreadPoolExecutor(max_workers=VERIFY_THREADS, thread_name_prefix="token-verify")
        return _verify_executor


def _build() -> Verifier:
    interval, max_age = float(settings.AUTH_JWKS_REFETCH_INTERVAL), float(settings.AUTH_JWKS_MAX_AGE)
    wait = float(settings.AUTH_JWKS_WAIT)
    uses = frozenset(settings.AUTH_TOKEN_USES)
    leeway = float(settings.AUTH_TOKEN_LEEWAY)
    config = CognitoConfig.from_settings()
    if config is not None:
        return Verifier(
            keys=JwksKeySet(http_fetcher(config.keys_url), min_refetch_interval=interval, max_age=max_age, wait=wait),
            policy=TokenPolicy(issuer=config.issuer, client_id=config.client_id, token_uses=uses, leeway=leeway),
        )
    return Verifier(
        # An unknown kid re-reads the shared secret (at most once per interval): a key
        # another host has just started signing with verifies here at once.
        keys=JwksKeySet(
            lambda: issuer.key_ring(fresh=True).jwks(), min_refetch_interval=interval, max_age=max_age, wait=wait
        ),
        policy=TokenPolicy(
            issuer=issuer.BUILTIN_ISSUER, client_id=issuer.BUILTIN_CLIENT_ID, token_uses=uses, leeway=leeway
        ),
    )


def verifier() -> Verifier:
    global _verifier
    with _lock:
        if _verifier is None:
            _verifier = _build()
        return _verifier


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    """override_settings in tests: rebuild from the new settings on next use."""
    global _verifier
    if setting.startswith(("COGNITO_", "AUTH_")):
        with _lock:
            _verifier = None
        issuer.reset_key_cache()


# At most 10 lines per reason and route every 10 s, then the count of the others: a flood of
# bad tokens must not cost a log line each (chatsite.ops.logs.Sampled).
_rejections = logs.Sampled(log, interval=10.0)


def log_rejection(error: TokenRejected, *, via: str, client: str | None) -> None:
    _rejections.warning(
        f"{via}:{error.reason.value}",
        "token rejected via=%s reason=%s client=%s: %s",
        via,
        error.reason.value,
        client or "-",
        error.detail,
    )


def verify(token: str, *, via: str, client: str | None = None, now: float | None = None) -> VerifiedToken:
    """Verify a token against the configured issuer. Raises TokenRejected (logged)."""
    current = verifier()
    try:
        return verify_token(token, keys=current.keys, policy=current.policy, now=time.time() if now is None else now)
    except TokenRejected as error:
        log_rejection(error, via=via, client=client)
        raise


def user_for(verified: VerifiedToken, *, via: str, client: str | None = None) -> Any:
    """The user of a verified token (created or updated from Cognito's claims). Raises TokenRejected (logged)."""
    try:
        return user_for_token(verified)
    except TokenRejected as error:
        log_rejection(error, via=via, client=client)
        raise
