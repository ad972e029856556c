"""Rate limits: token buckets per socket, per user and per client address.

A limit is written "<count>/<seconds>" (settings, `CHAT_RATE_LIMIT_*`): a bucket of <count>
tokens refilled evenly over <seconds>; every frame or connection it covers takes one token,
so a client may burst up to <count> and then keeps <count>/<seconds> per second. "off"
switches a limit off.

- Per socket (in the consumer): every frame, and separately every send.
- Per user: sends, reads (joinRoom, history, ping) and connections. These buckets live in
  Redis whenever the channel layer does (REDIS_URL or Sentinel), so a user's sockets on
  every daphne process share one budget; otherwise in this process. Redis's own clock refills them, so processes with
  skewed clocks agree.
- Per client address: connections, before the handshake's credentials are even checked
  (a flood of bad tokens costs no JWKS lookups). Behind a balancer the address is the one
  the balancer reports (daphne --proxy-headers, or the rightmost X-Forwarded-For entry when
  the peer is a private address: `client_address`), never one a client wrote.

Moderators and bots (AUTH_BOT_GROUP) are exempt from the per-socket and per-user limits.
A refusal is `RateLimited`: an error frame with code `rate_limited` and `retryAfter`. A
connection over its limit is closed with 4429 right after that frame; a socket that goes on
sending while refused is closed with 4429 after CHAT_RATE_LIMIT_STRIKES refused frames.

If Redis does not answer, per-user buckets fall back to this process's for a few seconds:
a Redis outage must not stop chat, and the limits still hold per process meanwhile.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import time
import weakref
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from django.conf import settings

from chat import layer_backends, people_protocol, protocol
from chat.errors import ChatError, ErrorCode

log = logging.getLogger(__name__)

# After a failed Redis call, per-user buckets stay in this process for this long, so an
# outage costs one timeout, not one per frame.
REDIS_RETRY_AFTER_SECONDS: Final = 5.0
REDIS_TIMEOUT_SECONDS: Final = 0.5
REDIS_KEY_PREFIX: Final = "chatsite:ratelimit:"
# In-process buckets kept at most; full (idle) buckets are forgotten first.
MAX_LOCAL_BUCKETS: Final = 100_000


@dataclass(frozen=True, slots=True)
class Rate:
    count: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.count / self.seconds


@lru_cache(maxsize=64)
def parse_rate(spec: str) -> Rate | None:
    """ "20/10" is 20 per 10 seconds; "off" (or "" or "0") is no limit. Raises ValueError."""
    value = spec.strip().lower()
    if value in {"", "off", "0"}:
        return None
    count, slash, seconds = value.partition("/")
    try:
        rate = Rate(int(count), float(seconds)) if slash else None
    except ValueError:
        rate = None
    if rate is None or rate.count < 1 or not 0 < rate.seconds < math.inf:
        raise ValueError(f"a rate limit is '<count>/<seconds>' (e.g. 20/10) or 'off', got {spec!r}")
    return rate


def _rate(setting: str) -> Rate | None:
    return parse_rate(str(getattr(settings, setting)))


class RateLimited(ChatError):
    """Over a rate limit: retry after `retry_after` seconds. Nothing was done."""

    def __init__(self, retry_after: float, message: str) -> None:
        # Rounded up to 10 ms: a client that waits exactly this long finds a token.
        super().__init__(ErrorCode.RATE_LIMITED, message, retry_after=math.ceil(retry_after * 100) / 100)


class TokenBucket:
    __slots__ = ("rate", "stamp", "tokens")

    def __init__(self, rate: Rate, now: float) -> None:
        self.rate = rate
        self.tokens = float(rate.count)
        self.stamp = now

    def take(self, now: float) -> float:
        """0.0 when a token was taken; else the seconds until there is one (nothing taken)."""
        self.tokens = min(float(self.rate.count), self.tokens + max(0.0, now - self.stamp) * self.rate.per_second)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate.per_second

    def full(self, now: float) -> bool:
        return self.tokens + max(0.0, now - self.stamp) * self.rate.per_second >= self.rate.count


# One atomic step of a bucket kept in a Redis hash, on Redis's clock. Returns the wait in
# seconds as a string (a Lua number would come back truncated to an integer).
_TAKE_SCRIPT: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local count = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local held = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(held[1]) or count
local stamp = tonumber(held[2]) or now
tokens = math.min(count, tokens + math.max(0, now - stamp) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(count / rate * 1000) + 1000)
return tostring(wait)
"""


class SharedBuckets:
    """Buckets by key: in Redis (one budget for every process) when there is one, else here."""

    def __init__(self, redis_host: dict[str, Any] | None) -> None:
        self.redis_host = redis_host
        self.local: dict[str, TokenBucket] = {}
        self._script: Any = None
        self._redis_down_until = 0.0

    @classmethod
    def from_settings(cls) -> SharedBuckets:
        layer: dict[str, Any] = settings.CHANNEL_LAYERS.get("default", {})
        if not layer_backends.redis_backed(layer):
            return cls(None)
        return cls(dict(layer["CONFIG"]["hosts"][0]))

    async def take(self, key: str, rate: Rate) -> float:
        now = time.monotonic()
        if self.redis_host is not None and now >= self._redis_down_until:
            try:
                async with asyncio.timeout(REDIS_TIMEOUT_SECONDS * 2):
                    wait = await self._take_in_redis(key, rate)
            except Exception as exc:
                log.warning(
                    "rate limits: Redis unreachable (%s); per-user limits hold per process for %.0f s",
                    type(exc).__name__,
                    REDIS_RETRY_AFTER_SECONDS,
                )
                self._redis_down_until = now + REDIS_RETRY_AFTER_SECONDS
            else:
                return wait
        return self._take_locally(key, rate, now)

    async def _take_in_redis(self, key: str, rate: Rate) -> float:
        if self._script is None:
            assert self.redis_host is not None
            from channels_redis.utils import create_pool
            from redis.asyncio import Redis

            # A call that fails fast, with no retries: the fallback is the answer to a failure.
            pool = create_pool(
                {
                    **self.redis_host,
                    "socket_timeout": REDIS_TIMEOUT_SECONDS,
                    "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
                    "retry": None,
                    "retry_on_error": [],
                }
            )
            # redis-py's Script reloads itself after NOSCRIPT (a restarted or flushed Redis).
            self._script = Redis(connection_pool=pool).register_script(_TAKE_SCRIPT)
        raw = await self._script(keys=[REDIS_KEY_PREFIX + key], args=[rate.count, repr(rate.per_second)])
        return float(raw.decode() if isinstance(raw, bytes) else raw)

    def _take_locally(self, key: str, rate: Rate, now: float) -> float:
        bucket = self.local.get(key)
        if bucket is None or bucket.rate != rate:
            if len(self.local) >= MAX_LOCAL_BUCKETS:
                self.local = {k: b for k, b in self.local.items() if not b.full(now)}
                if len(self.local) >= MAX_LOCAL_BUCKETS:
                    self.local.clear()
            bucket = self.local[key] = TokenBucket(rate, now)
        return bucket.take(now)


_shared: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SharedBuckets] = weakref.WeakKeyDictionary()


def shared_buckets() -> SharedBuckets:
    """The buckets of the running event loop (one per daphne process)."""
    loop = asyncio.get_running_loop()
    buckets = _shared.get(loop)
    if buckets is None:
        buckets = _shared[loop] = SharedBuckets.from_settings()
    return buckets


def reset() -> None:
    """Forget every in-process bucket (tests)."""
    _shared.clear()


def client_address(scope: dict[str, Any]) -> str | None:
    """The address a connection is counted against.

    The peer's, unless the peer is a private or loopback address (a balancer in front of
    daphne: an AWS ALB reaches its targets from inside the VPC) and the request carries
    X-Forwarded-For: then the rightmost entry, the one that balancer added. Entries to its
    left are whatever the client sent, never trusted. Without this, every client behind an
    ALB would share the balancer's address and one budget (issue 24 turned the limit on in
    production; docs/operations.md, "Behind a balancer").
    """
    client = scope.get("client")
    if not client:
        return None
    peer = str(client[0])
    try:
        behind_balancer = ipaddress.ip_address(peer).is_private
    except ValueError:
        return peer
    if not behind_balancer:
        return peer
    forwarded = [value for name, value in scope.get("headers") or () if name.lower() == b"x-forwarded-for"]
    rightmost = forwarded[-1].decode("latin-1").rsplit(",", 1)[-1].strip() if forwarded else ""
    return rightmost or peer


async def check_address(scope: dict[str, Any]) -> None:
    """A new connection from this client address. Raises RateLimited."""
    rate = _rate("CHAT_RATE_LIMIT_CONNECT_PER_ADDRESS")
    address = client_address(scope)
    if rate is None or address is None:
        return
    wait = await shared_buckets().take(f"connect-address:{address}", rate)
    if wait:
        raise RateLimited(wait, f"too many connections from this address; retry after {wait:.1f} s")


# Frames that read the store (a join's replay, a history page, a ping's tail check): their
# cost grows with the user's sockets, so they share one budget per user.
READ_COMMANDS: Final = (
    protocol.JoinRoom,
    protocol.History,
    protocol.Ping,
    protocol.ReadStates,
    protocol.Mentions,
    # People and rooms: lists read the store (chat.people); the changes are rare and checked there.
    people_protocol.ListRooms,
    people_protocol.BrowseRooms,
    people_protocol.Members,
)


class SocketLimits:
    """The limits of one signed-in socket: its own buckets, its user's, and its strikes."""

    def __init__(self, *, user_id: str, exempt: bool) -> None:
        now = time.monotonic()
        self.user_id = user_id
        self.exempt = exempt
        self.strikes = 0
        frames, sends = _rate("CHAT_RATE_LIMIT_FRAMES_PER_CONNECTION"), _rate("CHAT_RATE_LIMIT_SEND_PER_CONNECTION")
        self.frames = TokenBucket(frames, now) if frames and not exempt else None
        self.sends = TokenBucket(sends, now) if sends and not exempt else None

    async def check_connect(self) -> None:
        """This user opens a socket. Raises RateLimited."""
        rate = _rate("CHAT_RATE_LIMIT_CONNECT_PER_USER")
        if rate is None or self.exempt:
            return
        wait = await shared_buckets().take(f"connect-user:{self.user_id}", rate)
        if wait:
            raise RateLimited(wait, f"too many connections for this user; retry after {wait:.1f} s")

    async def check_frame(self, command: protocol.Command | None) -> None:
        """One client frame (None: one that did not parse). Raises RateLimited, answering the frame."""
        try:
            await self._check(command)
        except RateLimited as limited:
            self.strikes += 1
            if command is not None:
                limited.action = protocol.action_of(command)
                limited.client_message_id = getattr(command, "client_message_id", None)
                limited.room_id = getattr(command, "room_id", None)
            raise
        self.strikes = 0

    def struck_out(self) -> bool:
        """True once the client has gone on sending through CHAT_RATE_LIMIT_STRIKES refusals."""
        return self.strikes > int(settings.CHAT_RATE_LIMIT_STRIKES)

    async def _check(self, command: protocol.Command | None) -> None:
        now = time.monotonic()
        if self.frames is not None and (wait := self.frames.take(now)):
            raise RateLimited(wait, f"too many frames; retry after {wait:.1f} s")
        if self.exempt:
            return
        if isinstance(command, READ_COMMANDS):
            rate = _rate("CHAT_RATE_LIMIT_READS_PER_USER")
            if rate is not None and (wait := await shared_buckets().take(f"read-user:{self.user_id}", rate)):
                raise RateLimited(wait, f"too many reads from this user; retry after {wait:.1f} s")
            return
        if not isinstance(command, protocol.SendMessage):
            return
        if self.sends is not None and (wait := self.sends.take(now)):
            raise RateLimited(wait, f"too many messages on this connection; retry after {wait:.1f} s")
        rate = _rate("CHAT_RATE_LIMIT_SEND_PER_USER")
        if rate is not None and (wait := await shared_buckets().take(f"send-user:{self.user_id}", rate)):
            raise RateLimited(wait, f"too many messages from this user; retry after {wait:.1f} s")
