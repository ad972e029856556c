"""Token buckets, the rate syntax, and per-user buckets shared through a real Redis."""

from __future__ import annotations

import asyncio
import os
import runpy
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from chat import ratelimit
from chat.ratelimit import Rate, SharedBuckets, TokenBucket, parse_rate
from tests.fixtures.servers import free_port

pytestmark = pytest.mark.timeout(30)
SETTINGS = Path(__file__).resolve().parents[2] / "chatsite" / "settings.py"


def test_a_rate_is_count_per_seconds_and_off_switches_it_off() -> None:
    """'20/10' is a burst of 20 refilled at 2 per second; 'off', '0' and '' are no limit."""
    assert parse_rate("20/10") == Rate(20, 10.0)
    assert parse_rate(" 5/0.5 ") == Rate(5, 0.5)
    assert parse_rate("20/10").per_second == 2.0  # type: ignore[union-attr]
    assert [parse_rate(v) for v in ("off", "OFF", "0", "")] == [None] * 4


@pytest.mark.parametrize("spec", ["20", "x/10", "20/0", "0/10", "-1/10", "20/-1", "20/inf", "20/nan", "1/2/3"])
def test_a_malformed_rate_is_refused(spec: str) -> None:
    """A limit that is not <count>/<seconds> with both positive fails loudly (at startup, via settings)."""
    with pytest.raises(ValueError, match="count"):
        parse_rate(spec)


def test_a_bucket_allows_its_burst_then_says_how_long_to_wait() -> None:
    """5/1: five at once, then the sixth waits 0.2 s; after that wait one more goes through."""
    bucket = TokenBucket(Rate(5, 1.0), now=100.0)
    assert [bucket.take(100.0) for _ in range(5)] == [0.0] * 5
    assert bucket.take(100.0) == pytest.approx(0.2)
    assert bucket.take(100.1) == pytest.approx(0.1)  # refused attempts take nothing
    assert bucket.take(100.2) == 0.0
    assert bucket.take(100.2) == pytest.approx(0.2)


def test_a_bucket_refills_only_up_to_its_burst() -> None:
    """An hour idle gives back the burst, not an hour's worth of tokens."""
    bucket = TokenBucket(Rate(3, 1.0), now=0.0)
    for _ in range(3):
        bucket.take(0.0)
    assert [bucket.take(3600.0) for _ in range(4)][-1] > 0


def test_a_refusal_rounds_retry_after_up() -> None:
    """retryAfter is rounded up to 10 ms: a client that waits exactly that long finds a token."""
    assert ratelimit.RateLimited(0.1234, "x").retry_after == 0.13
    assert ratelimit.RateLimited(0.2, "x").retry_after == 0.2


async def test_per_user_buckets_in_redis_are_shared_by_every_process(redis_url: str) -> None:
    """Two processes' buckets (two SharedBuckets on one Redis) draw from one budget per key."""
    one, two = SharedBuckets({"address": redis_url}), SharedBuckets({"address": redis_url})
    rate = Rate(4, 2.0)
    key = f"test-{asyncio.get_running_loop().time()}"
    waits = [await (one if n % 2 else two).take(key, rate) for n in range(5)]
    assert waits[:4] == [0.0] * 4
    assert 0.4 <= waits[4] <= 0.5
    assert await one.take(key + "-other", rate) == 0.0  # another user's bucket is full


async def test_without_redis_a_process_keeps_its_own_buckets() -> None:
    """Redis unreachable: the limit still holds, per process, and chat goes on (no exception)."""
    down = SharedBuckets({"address": f"redis://127.0.0.1:{free_port()}/0"})
    rate = Rate(2, 10.0)
    assert [await down.take("u", rate) for _ in range(2)] == [0.0, 0.0]
    assert await down.take("u", rate) > 0


def test_settings_refuse_a_malformed_limit_and_a_crash_hook_in_production(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A malformed CHAT_RATE_LIMIT_* stops startup naming the variable; so does the crash test hook in production."""
    for name in list(os.environ):
        if name.startswith(("CHAT_", "DJANGO_", "DATABASE_", "REDIS_", "COGNITO_", "CHATSITE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CHATSITE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CHAT_RATE_LIMIT_SEND_PER_USER", "lots")
    with pytest.raises(ImproperlyConfigured, match="CHAT_RATE_LIMIT_SEND_PER_USER"):
        runpy.run_path(str(SETTINGS))
    monkeypatch.setenv("CHAT_RATE_LIMIT_SEND_PER_USER", "off")
    assert runpy.run_path(str(SETTINGS))["CHAT_RATE_LIMIT_SEND_PER_USER"] == "off"
    production = {
        "CHATSITE_ENV": "production",
        "DJANGO_SECRET_KEY": "x" * 50,
        "DJANGO_ALLOWED_HOSTS": "chat.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
    }
    for name, value in production.items():
        monkeypatch.setenv(name, value)
    loaded = runpy.run_path(str(SETTINGS))
    assert loaded["CHAT_RATE_LIMIT_SEND_PER_CONNECTION"] == "20/10", "limits are on by default in production"
    monkeypatch.setenv("CHAT_TEST_CRASH_AFTER_STORE", "boom")
    with pytest.raises(ImproperlyConfigured, match="test hook"):
        runpy.run_path(str(SETTINGS))
