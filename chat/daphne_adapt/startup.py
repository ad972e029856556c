"""Start-up work on daphne's event loop, once the server runs.

daphne speaks no ASGI lifespan, so an application learns that it is running only from its
first connection. Work that should not wait for one (a process started again after a kill
sweeps the connection rows of its previous life, which the dashboard would count until
then) is handed to Twisted's "startup" event and run as a task on the asyncio loop daphne's
reactor runs on.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)

_tasks: set[asyncio.Task[Any]] = set()  # held until done: the loop keeps only weak references


def run_at_start(start: Callable[[], Coroutine[Any, Any, Any]]) -> bool:
    """Run `start()` as a task once the reactor runs (only a reactor daphne installed is hooked)."""
    reactor: Any = sys.modules.get("twisted.internet.reactor")
    loop = getattr(reactor, "_asyncioEventloop", None)
    if reactor is None or loop is None:
        return False

    def begin() -> None:
        task = loop.create_task(_logged(start), name="chatsite-start")
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)

    reactor.callWhenRunning(begin)
    return True


async def _logged(start: Callable[[], Coroutine[Any, Any, Any]]) -> None:
    try:
        await start()
    except Exception:
        log.exception("start-up work failed; it is done again with the first socket")
