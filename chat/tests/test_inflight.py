"""A stop waits for the HTTP requests still in a worker thread (chatsite/ops/inflight.py).

The process-level behaviour (a request left waiting on the store at SIGTERM no longer keeps
daphne from exiting) is tests/e2e/test_store_waits.py's; these hold the count and the wait.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from chatsite.ops import inflight

pytestmark = pytest.mark.timeout(30)


def in_a_thread(release: threading.Event, *, fail: bool = False) -> threading.Thread:
    """A request in the middleware chain's thread, held until `release` is set."""
    entered = threading.Event()

    def view(request: Any) -> str:
        entered.set()
        release.wait(10)
        if fail:
            raise RuntimeError("the view failed")
        return "response"

    def serve() -> None:
        try:
            inflight.RequestThreadsMiddleware(view)(object())
        except RuntimeError:
            pass

    thread = threading.Thread(target=serve)
    thread.start()
    assert entered.wait(10)
    return thread


@pytest.mark.parametrize("fail", [False, True], ids=["answered", "raised"])
def test_a_request_counts_while_its_thread_is_in_the_chain(fail: bool) -> None:
    before = inflight.running()
    release = threading.Event()
    thread = in_a_thread(release, fail=fail)
    assert inflight.running() == before + 1
    release.set()
    thread.join(10)
    assert inflight.running() == before


async def test_the_stop_waits_for_a_running_request_and_no_longer() -> None:
    release = threading.Event()
    thread = in_a_thread(release)
    loop = asyncio.get_running_loop()
    loop.call_later(0.3, release.set)
    started = loop.time()
    assert await inflight.settle(10.0) == 0
    assert 0.25 <= loop.time() - started < 5.0  # it waited for the request, not for the bound
    thread.join(10)


async def test_past_the_bound_the_stop_says_how_many_are_left(caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()
    thread = in_a_thread(release)
    try:
        assert await inflight.settle(0.1) == 1
        assert "1 HTTP requests still running" in caplog.text
    finally:
        release.set()
        thread.join(10)
    assert await inflight.settle(0.1) == 0
