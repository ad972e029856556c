"""Message counts kept in memory and written every ANALYTICS_FLUSH_SECONDS, in one transaction.

Counting each message in a transaction of its own doubled the database work of a send
(docs/performance.md). Here a send appends a tuple under a lock; a daemon thread (started by
the first message) writes everything pending every few seconds with
`analytics.services.messages_stored_sync`, and once more when the process exits normally.
A failed write keeps the counts for the next round (up to MAX_PENDING, then the oldest are
dropped with an error in the log); a hard crash loses the counts of the last interval, never
a message.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from datetime import datetime
from typing import Final

from django.conf import settings
from django.db import close_old_connections

log = logging.getLogger(__name__)

MAX_PENDING: Final = 200_000

_lock = threading.Lock()
_pending: list[tuple[str, str, datetime, bool]] = []  # analytics.services.Stored
_thread: threading.Thread | None = None


def add(*, room_id: str, user_id: str, at: datetime, direct: bool) -> None:
    """Queue one stored message's counts (`direct`: its room is a DM); starts the flusher on first use."""
    global _thread
    with _lock:
        _pending.append((room_id, user_id, at, direct))
        if len(_pending) > MAX_PENDING:
            dropped = len(_pending) - MAX_PENDING
            del _pending[:dropped]
            log.error("analytics: %d message counts dropped (the database refuses the writes)", dropped)
        if _thread is None:
            _thread = threading.Thread(target=_run, name="analytics-flush", daemon=True)
            _thread.start()
            atexit.register(flush)


def pending() -> int:
    with _lock:
        return len(_pending)


def flush() -> int:
    """Write every pending count now; return how many messages were counted."""
    from analytics.services import messages_stored_sync

    with _lock:
        taken = list(_pending)
        _pending.clear()
    if not taken:
        return 0
    try:
        messages_stored_sync(taken)
    except Exception:
        log.exception("analytics: writing %d message counts failed; kept for the next round", len(taken))
        with _lock:
            _pending[:0] = taken
        return 0
    return len(taken)


def _run() -> None:
    while True:
        time.sleep(max(0.05, settings.ANALYTICS_FLUSH_SECONDS))
        close_old_connections()
        flush()
