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
    """A callback that blocks the loop for 0.4 s raises the lag gauge to at least that much."""
    loopwatch.start()
    await asyncio.sleep(loopwatch.SAMPLE_SECONDS * 2)  # a few normal samples first
    time.sleep(0.4)  # the loop is stuck: the sampler's sleep wakes up late
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
