"""HTTP requests still running in a thread, which a stopping process waits for.

Under daphne, Django runs the middlewares that are sync-only (WhiteNoise, accounts') in a
worker thread, and that thread calls the rest of the chain and the view back on the event
loop (asgiref's async_to_sync): it waits for the loop. At a stop daphne cancels every request
still running, and cancels one again once its client has been gone for the application close
timeout; the request's task then ends without waiting for its thread, and Twisted stops the
loop. The thread, still in the chain, waits forever, and Python's exit joins it forever: the
process sat until the supervisor's SIGKILL, and its exit handlers (the analytics batch, the
broadcaster) never ran. A request whose client had left, its view waiting on the store, was
enough.

So the stop keeps the loop running until those threads are done, for at most
CHAT_STOP_REQUEST_SECONDS (while the sockets drain: chatsite.asgi). Past that bound, once
the loop has stopped, the process says how many it abandons, runs its exit handlers itself
and ends, without joining threads that can never end. Counting costs a lock and an integer
per request.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

POLL_SECONDS = 0.05

_lock = threading.Lock()
_running = 0


def running() -> int:
    """How many requests are in the middleware chain's thread now."""
    return _running


class RequestThreadsMiddleware:
    """The first sync-only middleware: Django hands the request to a worker thread here, and
    the count covers the thread's whole part of the request."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        global _running
        with _lock:
            _running += 1
        try:
            return self.get_response(request)
        finally:
            with _lock:
                _running -= 1


async def settle(bound: float) -> int:
    """Wait (the loop running) until no request is in a thread, at most `bound` seconds;
    return how many are left."""
    deadline = time.monotonic() + bound
    if running():
        log.info("stopping: waiting up to %.0f s for %d HTTP requests to finish", bound, running())
    while running() and time.monotonic() < deadline:  # noqa: ASYNC110 - counted in threads; at a stop only
        await asyncio.sleep(POLL_SECONDS)
    left = running()
    if left:
        log.error("stopping with %d HTTP requests still running after %.0f s", left, bound)
    return left


def exit_if_abandoned() -> None:
    """Twisted's "after shutdown" (chatsite.asgi): the loop will not run again, so a request's
    thread still in the chain never ends, and Python's exit would join it forever. Then run the
    exit handlers (the analytics batch, the broadcaster, the log's last lines) and end now."""
    left = running()
    if not left:
        return
    log.error("exiting with %d HTTP requests abandoned in their threads (their clients get no answer)", left)
    # In a thread of their own: this one still counts as the event loop's, and Django refuses
    # database work there (the analytics batch writes at exit).
    handlers = threading.Thread(target=atexit._run_exitfuncs, name="exit-handlers")
    handlers.start()
    handlers.join()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)
