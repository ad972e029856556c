"""Closed sockets' connection rows, deleted many to a trip (group commit).

When a process stops, its thousands of sockets close within the drain window. A trip to
Django's sync thread (with its commit) per close queues them up behind each other, and the
process goes on deleting rows long after its drain, while its restarted self cannot yet take
a share of the reconnects (bench.storm, docs/performance.md). So closes are gathered: the
first one goes at once, and every close that comes while a trip is running goes into the
next trip. A lone close costs one trip; a burst one trip per CLOSES_PER_TRIP rows. Each
close is answered after its trip, so a socket's cleanup still ends with its row gone (a
stopping process waits for that).

The trip itself (the store, analytics) is the caller's: chat.services hands it in, as the
fan-out is handed its gap reader.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Final

log = logging.getLogger(__name__)

# How many rows one trip deletes at most (the rest wait for the next): a statement's
# parameters, and a trip short enough that a message's write queued behind it waits little.
CLOSES_PER_TRIP: Final = 200

# One trip: delete these rows, count these sockets closed at this time. It handles its own
# failures (a row left to its ttl is logged, not raised): nobody waiting could do better.
CloseTrip = Callable[[list[str], datetime], Awaitable[None]]


class CloseQueue:
    """The closes waiting for a trip on one event loop, and the one task that makes the trips."""

    def __init__(self, trip: CloseTrip) -> None:
        self._trip = trip
        self._waiting: list[tuple[str, datetime, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.trips = 0  # made so far (the tests read it)

    @property
    def waiting(self) -> int:
        """Closes queued for the next trip."""
        return len(self._waiting)

    async def close(self, connection_id: str, *, at: datetime) -> None:
        """Delete the row and count the close; return once its trip is over."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._waiting.append((connection_id, at, done))
        if self._writer is None:
            self._writer = loop.create_task(self._write(), name="chat-connection-closes")
        # Shielded: a cancelled closer (daphne cancels its sockets' tasks at a stop) still
        # leaves its row in the trip; it just stops waiting for it.
        await asyncio.shield(done)

    async def _write(self) -> None:
        batch: list[tuple[str, datetime, asyncio.Future[None]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:CLOSES_PER_TRIP], self._waiting[CLOSES_PER_TRIP:]
                # The latest close time of the batch: they came within one trip of each other.
                try:
                    await self._trip([connection_id for connection_id, _, _ in batch], max(at for _, at, _ in batch))
                except Exception:
                    log.exception("closing %d connection rows failed; they expire by their ttl", len(batch))
                self.trips += 1
                for _, _, done in batch:
                    if not done.done():
                        done.set_result(None)
                batch = []
        finally:
            # Cancelled (the loop is closing): nobody waits for ever.
            for _, _, done in batch + self._waiting:
                if not done.done():
                    done.set_result(None)
            self._waiting = []
            self._writer = None


_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CloseQueue] = weakref.WeakKeyDictionary()


def close_queue(trip: CloseTrip) -> CloseQueue:
    """This event loop's queue, making its trips with `trip` (the first caller's)."""
    loop = asyncio.get_running_loop()
    queue = _queues.get(loop)
    if queue is None:
        queue = _queues[loop] = CloseQueue(trip)
    return queue
