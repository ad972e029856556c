"""Sign-in throttling: failed sign-ins counted per account and per client address.

Every password guess costs the server a password hash (PBKDF2: a few hundred milliseconds of
CPU), and an account's password is worth guessing. So failures are counted in fixed windows:
AUTH_SIGNIN_FAILURES_PER_ACCOUNT failures for one username, or
AUTH_SIGNIN_FAILURES_PER_ADDRESS for one client address, and further attempts are refused
with 429 and Retry-After until the window that holds them ends. A refused attempt is
decided before any password is looked at: it never reaches the hasher, and a correct password
is refused too (otherwise the refusal itself would tell a guesser when they got it right).

The counts live in Redis when REDIS_URL is set, so every daphne process shares them (and
Redis's clock runs the windows); otherwise in this process. A Redis that does not answer
falls back to this process's counts for a few seconds: sign-in must not stop with Redis,
and the limits still hold per process. `manage.py unlock_signin` clears an account's or an
address's count (docs/auth.md, "Sign-in throttling").
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from django.conf import settings
from django.core.signals import setting_changed
from django.http import HttpRequest

from chat.ratelimit import parse_rate

log = logging.getLogger(__name__)

KEY_PREFIX: Final = "chatsite:signin:"
REDIS_TIMEOUT_SECONDS: Final = 0.5
REDIS_RETRY_AFTER_SECONDS: Final = 5.0
MAX_LOCAL_KEYS: Final = 100_000


@dataclass(frozen=True, slots=True)
class Window:
    """At most `count` failures in a window of `seconds` (a setting "<count>/<seconds>")."""

    count: int
    seconds: int

    @classmethod
    def parse(cls, spec: str) -> Window | None:
        """ "5/900" is 5 failures per 900 seconds; "off" is no limit. Raises ValueError."""
        rate = parse_rate(spec)  # the rate limits' syntax, one parser for both
        return None if rate is None else cls(rate.count, max(1, math.ceil(rate.seconds)))


def account_key(username: str) -> str:
    # Hashed: a username can be long and hold anything; the key must not.
    return "account:" + hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def address_key(address: str) -> str:
    return "address:" + address[:64]


class Counts:
    """Failure counts by key, in fixed windows: in Redis when configured, else in this process."""

    def __init__(self, redis_url: str = "", clock: Callable[[], float] = time.monotonic) -> None:
        self.redis_url = redis_url
        self.clock = clock
        self._local: dict[str, tuple[int, float]] = {}  # key -> (failures, window end)
        self._lock = threading.Lock()
        self._redis: Any = None
        self._redis_down_until = 0.0

    # Redis, or this process --------------------------------------------------------------

    def _client(self) -> Any:
        if not self.redis_url or time.monotonic() < self._redis_down_until:
            return None
        if self._redis is None:
            import redis

            self._redis = redis.Redis.from_url(
                self.redis_url,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                retry_on_timeout=False,
            )
        return self._redis

    def _redis_failed(self, exc: Exception) -> None:
        log.warning(
            "sign-in throttling: Redis unreachable (%s); counting in this process for %.0f s",
            type(exc).__name__,
            REDIS_RETRY_AFTER_SECONDS,
        )
        self._redis_down_until = time.monotonic() + REDIS_RETRY_AFTER_SECONDS

    def blocked_for(self, key: str, window: Window) -> float:
        """Seconds until `key` may try again (0.0: it may now)."""
        client = self._client()
        if client is not None:
            try:
                pipe = client.pipeline(transaction=False)
                pipe.get(KEY_PREFIX + key)
                pipe.pttl(KEY_PREFIX + key)
                raw, pttl = pipe.execute()
            except Exception as exc:
                self._redis_failed(exc)
            else:
                if raw is None or int(raw) < window.count:
                    return 0.0
                return max(pttl, 1) / 1000 if pttl > 0 else float(window.seconds)
        with self._lock:
            failures, ends = self._local.get(key, (0, 0.0))
            now = self.clock()
            if now >= ends or failures < window.count:
                return 0.0
            return ends - now

    def add(self, key: str, window: Window) -> None:
        """Count one for `key` (the first starts its window)."""
        client = self._client()
        if client is not None:
            try:
                pipe = client.pipeline(transaction=True)
                pipe.set(KEY_PREFIX + key, 0, ex=window.seconds, nx=True)
                pipe.incr(KEY_PREFIX + key)
                pipe.execute()
            except Exception as exc:
                self._redis_failed(exc)
            else:
                return
        with self._lock:
            now = self.clock()
            failures, ends = self._local.get(key, (0, 0.0))
            if now >= ends:
                failures, ends = 0, now + window.seconds
            if key not in self._local and len(self._local) >= MAX_LOCAL_KEYS:
                self._local = {k: v for k, v in self._local.items() if v[1] > now}
                if len(self._local) >= MAX_LOCAL_KEYS:
                    self._local.clear()
            self._local[key] = (failures + 1, ends)

    def clear(self, key: str) -> bool:
        """Forget `key`'s failures; True when there were any."""
        client = self._client()
        cleared = False
        if client is not None:
            try:
                cleared = bool(client.delete(KEY_PREFIX + key))
            except Exception as exc:
                self._redis_failed(exc)
        with self._lock:
            cleared = self._local.pop(key, None) is not None or cleared
        return cleared


_counts: Counts | None = None
_counts_lock = threading.Lock()


def counts() -> Counts:
    """This process's counts (on REDIS_URL's Redis when it is set)."""
    global _counts
    with _counts_lock:
        if _counts is None:
            _counts = Counts(redis_url=settings.REDIS_URL)
        return _counts


def _reset(*, setting: str, **kwargs: object) -> None:
    global _counts
    if setting == "REDIS_URL" or setting.startswith("AUTH_SIGNIN"):
        _counts = None


setting_changed.connect(_reset)


# What the sign-in views call ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Throttled:
    retry_after: int  # whole seconds, for the Retry-After header

    @property
    def message(self) -> str:
        return f"Too many failed sign-ins. Try again in {self.retry_after} seconds."

    @property
    def signup_message(self) -> str:
        return f"Too many new accounts from this address. Try again in {self.retry_after} seconds."


def client_address(request: HttpRequest) -> str:
    """The address daphne reports (behind a balancer, with --proxy-headers: the balancer's view)."""
    return str(request.META.get("REMOTE_ADDR") or "-")


def _keys(username: str | None, address: str) -> Iterable[tuple[str, Window]]:
    per_account = Window.parse(settings.AUTH_SIGNIN_FAILURES_PER_ACCOUNT)
    per_address = Window.parse(settings.AUTH_SIGNIN_FAILURES_PER_ADDRESS)
    if per_account is not None and username:
        yield account_key(username), per_account
    if per_address is not None:
        yield address_key(address), per_address


def check(*, username: str | None, address: str) -> Throttled | None:
    """Whether a sign-in for `username` from `address` must be refused now, before any
    password is checked."""
    wait = max((counts().blocked_for(key, window) for key, window in _keys(username, address)), default=0.0)
    if wait <= 0:
        return None
    log.warning("sign-in refused: too many failures (retry in %.0f s)", wait)
    return Throttled(retry_after=max(1, math.ceil(wait)))


def failed(*, username: str | None, address: str) -> None:
    """A sign-in failed: count it against the account and the address."""
    for key, window in _keys(username, address):
        counts().add(key, window)


def succeeded(*, username: str) -> None:
    """A sign-in succeeded: the account's failures are forgiven (the address's are not)."""
    counts().clear(account_key(username))


def unlock(*, username: str | None = None, address: str | None = None) -> bool:
    """An operator clears an account's or an address's failures; True when there were any."""
    cleared = False
    if username:
        cleared = counts().clear(account_key(username)) or cleared
    if address:
        cleared = counts().clear(address_key(address)) or cleared
    return cleared


def signup_check(*, address: str) -> Throttled | None:
    """Whether this address has made AUTH_SIGNUPS_PER_ADDRESS accounts in the current window."""
    window = Window.parse(settings.AUTH_SIGNUPS_PER_ADDRESS)
    if window is None:
        return None
    wait = counts().blocked_for("signup-" + address_key(address), window)
    return Throttled(retry_after=max(1, math.ceil(wait))) if wait > 0 else None


def signed_up(*, address: str) -> None:
    window = Window.parse(settings.AUTH_SIGNUPS_PER_ADDRESS)
    if window is not None:
        counts().add("signup-" + address_key(address), window)
