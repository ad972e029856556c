"""When a process sheds new sockets: the wait for Django's one sync thread, and the rule.

An ORM store runs every call of a process on one thread, one after the other. A reconnect
storm (a restart sends half the fleet's sockets to the survivor) queues far more opens there
than it can serve: each open is three calls (identity, admission, the join), and a call that
waited past DATABASE_LOCK_TIMEOUT is refused unread (chat.services). With every open let in,
the queue stayed past the bound: most opens got through one or two calls and were then
refused (`storage_unavailable`, close 1011), so the work they had done was lost and their
retries queued again. 5,000 sockets on two processes came back in 75 s, after 10,031 attempts
(docs/performance.md, "The reconnect storm").

So a process refuses a new socket before any of its work while the thread is congested:
when the last call to start there had waited more than CHAT_OPEN_SHED_WAIT_SECONDS, and
started less than that long ago. The socket is accepted and closed with 1013 (try again
later), which every client retries after its backoff, as for 1011. Sockets already open
are untouched: their frames keep the bound they had. A thread that is stuck (a frozen writer
holding a lock) starts no call, so the rule lapses after one wait and the bound answers as
before. The DynamoDB store runs on a pool of threads and is never shed here.

Cost on the hot path: two float stores per ORM call, one comparison per socket opened.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from django.conf import settings


class SyncThreadWaits:
    """How long the latest call to start on the sync thread had waited, and when it started.

    Written from the sync thread, read on the event loop: two floats, each written whole."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.last_wait = 0.0
        self.last_started = -math.inf

    def started(self, waited: float) -> None:
        self.last_wait = waited
        self.last_started = self.clock()

    def congested(self, limit: float) -> bool:
        """The last call waited more than `limit` and started within `limit` of now."""
        if limit <= 0:
            return False
        return self.last_wait > limit and self.clock() - self.last_started < limit


waits = SyncThreadWaits()


def shedding() -> bool:
    """Refuse a new socket now (the process's sync thread is congested)?"""
    return waits.congested(settings.CHAT_OPEN_SHED_WAIT_SECONDS)
