"""Event-loop lag and thread-pool saturation, sampled in each daphne process.

Two things make every socket of a process slow at once without any error: a callback that
blocks the event loop, and store calls queuing for a thread (sync_to_async runs them in a
thread pool; the thread-sensitive ones share a single thread). Neither shows in request
latencies until it is bad, so a small task measures both every SAMPLE_SECONDS:

- lag: how much later than asked a sleep of SAMPLE_SECONDS woke up; the gauge holds the
  worst of the last WINDOW samples, so a scrape or an EMF line a minute apart still sees a
  stall that lasted one sample;
- queued: the calls waiting in the loop's default executor and in asgiref's single-thread
  executor (their work queues; a full pool shows as a growing queue).

Started once per event loop by the first health probe (the balancer's probes never stop).
"""

from __future__ import annotations

import asyncio
import collections
import weakref
from typing import Any, Final

from chat import metrics

SAMPLE_SECONDS: Final = 0.5
WINDOW: Final = 10

_samplers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]] = weakref.WeakKeyDictionary()


def start() -> None:
    """Start the sampler on the running loop (once)."""
    loop = asyncio.get_running_loop()
    if loop not in _samplers:
        _samplers[loop] = loop.create_task(_sample(loop), name="chatsite-loopwatch")


def queued_calls(loop: asyncio.AbstractEventLoop) -> int:
    """Calls waiting for a thread in the default executor and asgiref's single-thread one."""
    from asgiref.sync import SyncToAsync

    executors = [getattr(loop, "_default_executor", None), getattr(SyncToAsync, "single_thread_executor", None)]
    total = 0
    for executor in executors:
        queue: Any = getattr(executor, "_work_queue", None)
        if queue is not None:
            total += queue.qsize()
    return total


async def _sample(loop: asyncio.AbstractEventLoop) -> None:
    lags: collections.deque[float] = collections.deque(maxlen=WINDOW)
    while True:
        asked = loop.time()
        await asyncio.sleep(SAMPLE_SECONDS)
        lags.append(max(0.0, loop.time() - asked - SAMPLE_SECONDS))
        metrics.EVENT_LOOP_LAG.set(max(lags))
        metrics.THREAD_POOL_QUEUED.set(queued_calls(loop))
