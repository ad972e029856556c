"""Event-loop lag and thread-pool saturation gauges (chatsite/ops/loopwatch.py)."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client import REGISTRY

from chatsite.ops import loopwatch

pytestmark = pytest.mark.timeout(30)


async def test_a_blocked_event_loop_shows_as_lag() -> None:
    """A callback that blocks the loop raises the lag gauge to how late the sampler woke: at least 0.4 s here."""
    loopwatch.start()
    await asyncio.sleep(loopwatch.SAMPLE_SECONDS * 2)  # a few normal samples first
    # The loop is stuck for a whole sample period and 0.4 s more: wherever the sampler's sleep
    # was due in that period, it wakes at least 0.4 s late. (Blocking 0.4 s alone counted on the
    # sampler being due just after this test woke, which a busy machine did not keep.)
    time.sleep(loopwatch.SAMPLE_SECONDS + 0.4)
    async with asyncio.timeout(10):
        while (REGISTRY.get_sample_value("chatsite_event_loop_lag_seconds") or 0) < 0.35:
            await asyncio.sleep(0.05)


async def test_calls_waiting_for_a_thread_are_counted() -> None:
    """With the default pool's threads all busy, further calls show as queued until they run."""
    loop = asyncio.get_running_loop()
    release = threading.Event()
    pool = ThreadPoolExecutor(max_workers=2)
    loop.set_default_executor(pool)
    try:
        calls = [loop.run_in_executor(None, release.wait, 10) for _ in range(5)]
        async with asyncio.timeout(10):
            while loopwatch.queued_calls(loop) != 3:
                await asyncio.sleep(0.01)
        release.set()
        await asyncio.gather(*calls)
        assert loopwatch.queued_calls(loop) == 0
    finally:
        release.set()
        pool.shutdown(wait=True)
