"""A flood of bad tokens (issue 24): limited per address in production, sampled in the log, counted in the metrics."""

from __future__ import annotations

import logging
import runpy
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, generate_latest

from accounts import auth
from accounts.tokens import JwksKeySet, KeysUnavailable, Rejection, TokenRejected, UnknownKey
from chat.ratelimit import client_address
from tests.fixtures.clock import Clock

SETTINGS = Path(__file__).resolve().parents[2] / "chatsite" / "settings.py"


def test_the_per_address_connection_limit_is_on_by_default_in_production(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Production limits handshakes per client address unless told otherwise; development does not."""
    assert runpy.run_path(str(SETTINGS))["CHAT_RATE_LIMIT_CONNECT_PER_ADDRESS"] == "off"
    production = {
        "CHATSITE_ENV": "production",
        "DJANGO_SECRET_KEY": "x" * 50,
        "DJANGO_ALLOWED_HOSTS": "chat.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
    }
    for name, value in production.items():
        monkeypatch.setenv(name, value)
    assert runpy.run_path(str(SETTINGS))["CHAT_RATE_LIMIT_CONNECT_PER_ADDRESS"] != "off"


def scope(peer: str, *forwarded: bytes) -> dict[str, object]:
    return {"client": (peer, 40000), "headers": [(b"x-forwarded-for", value) for value in forwarded]}


def test_the_address_behind_a_balancer_is_the_one_the_balancer_added() -> None:
    """From a private peer (a balancer), the rightmost X-Forwarded-For entry counts; a public peer is itself."""
    assert client_address(scope("10.0.3.7", b"6.6.6.6, 203.0.113.9")) == "203.0.113.9"
    assert client_address(scope("10.0.3.7", b"1.1.1.1", b"6.6.6.6, 198.51.100.4")) == "198.51.100.4"
    assert client_address(scope("10.0.3.7")) == "10.0.3.7"
    assert client_address(scope("127.0.0.1", b"")) == "127.0.0.1"
    assert client_address(scope("93.184.216.34", b"6.6.6.6")) == "93.184.216.34", "a client's own header is ignored"
    assert client_address({"headers": []}) is None


def test_bad_token_warnings_are_sampled_with_a_count(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """1000 rejections for one reason in one interval are `burst` WARNING lines; the next line counts the rest."""
    clock = Clock(100.0)
    monkeypatch.setattr(auth._rejections, "clock", clock)
    monkeypatch.setattr(auth._rejections, "_windows", {})
    monkeypatch.setattr(auth._rejections, "_left_out", {})
    burst = auth._rejections.burst
    error = TokenRejected(Rejection.UNKNOWN_KID, "kid 'x' is not in the JWKS")
    with caplog.at_level(logging.WARNING, logger="accounts.auth"):
        for _ in range(1000):
            auth.log_rejection(error, via="websocket", client="198.51.100.7:5000")
        auth.log_rejection(TokenRejected(Rejection.EXPIRED, "expired"), via="websocket", client=None)
        clock.now += auth._rejections.interval
        auth.log_rejection(error, via="websocket", client="198.51.100.7:5001")
    lines = [r.getMessage() for r in caplog.records if r.name == "accounts.auth"]
    assert len(lines) == burst + 2, lines
    assert all("reason=unknown_kid" in line and "more like it" not in line for line in lines[:burst])
    assert "reason=expired" in lines[burst], "another reason has a budget of its own"
    assert f"and {1000 - burst} more like it not logged" in lines[burst + 1]


def _jwks_fetches(outcome: str) -> float:
    value = REGISTRY.get_sample_value("chatsite_jwks_fetches_total", {"outcome": outcome})
    return value or 0.0


def test_jwks_fetches_are_exported_as_a_metric() -> None:
    """Each JWKS fetch counts in chatsite_jwks_fetches_total, by outcome, on /metrics."""
    import chat.metrics  # noqa: F401 - registers the collector

    ok, failed = _jwks_fetches("ok"), _jwks_fetches("failed")
    with pytest.raises(UnknownKey):
        JwksKeySet(lambda: {"keys": []}).key_for("some-kid")

    def down() -> dict[str, object]:
        raise OSError("refused")

    with pytest.raises(KeysUnavailable):
        JwksKeySet(down).key_for("some-kid")
    assert _jwks_fetches("ok") == ok + 1
    assert _jwks_fetches("failed") == failed + 1
    assert b"chatsite_jwks_fetches_total" in generate_latest(REGISTRY)
