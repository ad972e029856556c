"""How many sockets of one process do their opening database work at once.

A socket's open makes two trips to Django's one sync thread (its identity, then its
admission: the ban check, the connection row, the quota), and its join a third. When a
process restarts, its sockets all reconnect to the other within a few seconds: 2,500 at once
in `bench.storm`. Their trips used to reach the sync thread together, first in, first
served, so every socket's second trip queued behind every other socket's first: each open
took as long as all of them, trips that had waited longer than a lock wait may take were
refused (chat.services._queue_bounded), and those sockets were closed with 1011 and came back
after a backoff of seconds, doing their work again (docs/performance.md, "The reconnect
storm").

Here an open takes a turn (OPENS_AT_ONCE at a time, in the order they came) around those two
trips, so the sync thread serves whole opens, each in a few milliseconds, and no trip waits
long enough to be refused. A socket that waits OPEN_WAIT_SECONDS without a turn is told the
server is busy (1011, as a refused trip was), before its client gives up on the open itself.
Cost on the hot path: one uncontended semaphore per open.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator
from typing import Final

# Enough opens in flight to keep the sync thread busy while one waits on the event loop
# between its trips, few enough that a trip never queues behind more than a few dozen.
OPENS_AT_ONCE: Final = 16
# Past this a client (the browser's and the bench's open timeouts are 10 s and more, with
# the handshake already answered) is better told to come back than kept waiting.
OPEN_WAIT_SECONDS: Final = 8.0


class OpenBusy(Exception):
    """No turn came within OPEN_WAIT_SECONDS: the process is too busy opening sockets."""


class OpenGate:
    """The turns of one event loop's opens."""

    def __init__(self, at_once: int = OPENS_AT_ONCE, wait_seconds: float = OPEN_WAIT_SECONDS) -> None:
        self._turns = asyncio.Semaphore(at_once)
        self._wait_seconds = wait_seconds
        self.waited = 0  # opens that found no free turn at once (the tests read it)
        self._busy_since_report = 0
        self._reported_at = float("-inf")

    def busy_to_report(self) -> int:
        """Count one open refused as busy; how many to log now (0: not yet). A storm refuses
        thousands: one log line a second says how many, not one line each."""
        self._busy_since_report += 1
        now = asyncio.get_running_loop().time()
        if now - self._reported_at < 1.0:
            return 0
        count, self._busy_since_report, self._reported_at = self._busy_since_report, 0, now
        return count

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold a turn for the block; OpenBusy if none came in time."""
        if self._turns.locked():
            self.waited += 1
        try:
            async with asyncio.timeout(self._wait_seconds):
                await self._turns.acquire()
        except TimeoutError:
            raise OpenBusy() from None
        try:
            yield
        finally:
            self._turns.release()


_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, OpenGate] = weakref.WeakKeyDictionary()


def open_gate() -> OpenGate:
    """This event loop's gate."""
    loop = asyncio.get_running_loop()
    gate = _gates.get(loop)
    if gate is None:
        gate = _gates[loop] = OpenGate()
    return gate
