"""Draining: a process leaves the balancer, then closes its sockets a few at a time.

A release must not drop every socket of a process at once: their clients would all
reconnect in the same 100 ms, onto whichever targets the balancer still has. So a drain
runs in two steps:

1. It begins: /healthz answers 503 ("draining"), so the balancer's target check takes this
   process out (or the release has already deregistered it), and new sockets are turned
   away with 1001 (chat.consumers).
2. The open sockets are closed with 1001 one by one, spread evenly over the drain window
   (CHAT_DRAIN_SECONDS), so their clients resume on the other processes at a steady rate.

What begins a drain, and why each exists:

- SIGUSR1 (`systemctl kill -s USR1 chatsite@8000`, deploy/release.sh): a release on EC2
  deregisters the target and signals the process before it stops it.
- ECS asking the task to stop: on ECS the balancer deregisters and drains a task *before*
  the task gets SIGTERM (the balancer would cut the sockets at the end of the
  deregistration delay, each a 1006). The task metadata endpoint
  (ECS_CONTAINER_METADATA_URI_V4) says DesiredStatus STOPPED as soon as the stop is decided,
  so the process polls it and drains inside the deregistration delay.
- SIGTERM with no drain before it (`systemctl restart`, `docker stop`): Twisted's shutdown
  trigger (chat.connections) drains over the shorter CHAT_STOP_DRAIN_SECONDS, which the
  stop timeouts outlast.

This module knows nothing of sockets: chat.connections registers what a drain does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
import urllib.request
from collections.abc import Callable
from typing import Any, Final

log = logging.getLogger(__name__)

ECS_METADATA_ENV: Final = "ECS_CONTAINER_METADATA_URI_V4"
ECS_POLL_SECONDS: Final = 2.0

_began_at: float | None = None
_reason = ""
_window = 0.0
_listeners: list[Callable[[float], None]] = []
_watcher: asyncio.Task[None] | None = None


def draining() -> bool:
    """True once a drain has begun: /healthz says 503 and new sockets are turned away."""
    return _began_at is not None


def status() -> dict[str, object]:
    """What /healthz says while draining."""
    elapsed = 0.0 if _began_at is None else time.monotonic() - _began_at
    return {"status": "draining", "reason": _reason, "windowSeconds": _window, "elapsedSeconds": round(elapsed, 1)}


def on_begin(listener: Callable[[float], None]) -> None:
    """Call `listener(window)` (on the event loop's thread) when a drain begins."""
    if listener not in _listeners:
        _listeners.append(listener)


def begin(why: str, *, window: float | None = None) -> None:
    """Begin draining over `window` seconds (CHAT_DRAIN_SECONDS by default), once: later
    calls do nothing. Runs on the event loop's thread."""
    global _began_at, _reason, _window
    if _began_at is not None:
        return
    if window is None:
        from django.conf import settings

        window = float(settings.CHAT_DRAIN_SECONDS)
    _began_at, _reason, _window = time.monotonic(), why, window
    log.warning("draining (%s): /healthz answers 503; open sockets close with 1001 over %.0f s", why, window)
    for listener in list(_listeners):
        try:
            listener(window)
        except Exception:
            log.exception("a drain listener failed")


def reset() -> None:
    """Forget a drain (tests only: a real process drains once and stops)."""
    global _began_at, _reason, _watcher
    _began_at, _reason, _watcher = None, "", None


def next_close_delay(*, left: int, time_left: float) -> float:
    """How long to wait before the next close when `left` sockets are still open and
    `time_left` seconds remain of the window: evenly, so n sockets close at 0, W/n, ...,
    (n-1)W/n and the last client has W/n to leave before the window ends."""
    if left <= 0:
        return 0.0
    return max(0.0, time_left) / (left + 1)


# Triggers -----------------------------------------------------------------------------------


def _on_sigusr1(signum: int, frame: Any) -> None:
    # A signal handler runs between two bytecodes of the main thread: hand the work to the
    # event loop the way Twisted's own handlers do (callFromThread), never run it here.
    reactor: Any = sys.modules.get("twisted.internet.reactor")
    if reactor is not None and reactor.running:
        reactor.callFromThread(begin, "SIGUSR1")
    else:
        begin("SIGUSR1")


def install_signal_handler() -> None:
    """SIGUSR1 begins a drain. Only from the main thread (where daphne imports the app)."""
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGUSR1, _on_sigusr1)


def start_ecs_watch() -> None:
    """On ECS, poll the task metadata and drain once the task is asked to stop (idempotent)."""
    global _watcher
    base = os.environ.get(ECS_METADATA_ENV, "").strip()
    if not base or _watcher is not None or draining():
        return
    _watcher = asyncio.get_running_loop().create_task(_watch_ecs(base), name="chatsite-ecs-drain-watch")


def ecs_task_stopping(base: str, *, timeout: float = 1.0) -> bool:
    """Whether ECS has decided to stop this task (its DesiredStatus is STOPPED)."""
    with urllib.request.urlopen(f"{base.rstrip('/')}/task", timeout=timeout) as response:  # noqa: S310 - the agent's URL
        document = json.loads(response.read())
    return str(document.get("DesiredStatus", "")).upper() == "STOPPED"


async def _watch_ecs(base: str) -> None:
    failures = 0
    while not draining():
        try:
            stopping = await asyncio.to_thread(ecs_task_stopping, base)
        except Exception as exc:
            failures += 1
            if failures in (1, 30):  # the agent restarts now and then; say so, do not flood
                log.warning("ECS task metadata unreachable (%s); a stop will drain on SIGTERM only", exc)
        else:
            failures = 0
            if stopping:
                begin("ECS is stopping the task")
                return
        await asyncio.sleep(ECS_POLL_SECONDS)
