"""What Chatsite adds to daphne, Twisted and autobahn: every run-time adaptation, in one place.

Each one reaches into a server's internals, so each was written for, and checked against,
exact versions (CHECKED_VERSIONS, the pins in requirements.txt):

- shared frames (`frames`): a room message framed once and written to every local socket;
- release handshake (`handshake`): an open socket lets go of the HTTP request that upgraded it;
- send-buffer bound (`sendbuffer`): a client that stops reading is dropped, not buffered;
- server close codes (`closing`): daphne may close with 1001/1011/1012/1013;
- drain on shutdown (`closing`): SIGTERM closes every socket with 1001 and waits for them;
- close handshake timeout (`closing`): a server close gets time to reach the client;
- lazy debug line (`lazylog`): autobahn's per-connection debug line is not formatted unless shown;
- whole frames read in one step (`inbound`): a read holding exactly one small text frame skips
  autobahn's general frame reader;
- listen backlog (`listening`): daphne's sockets listen with a backlog of 4096, not Twisted's
  50, which a reconnect storm overflowed;
- start-up work (`startup`): run once the server runs, not at the first connection (daphne
  has no ASGI lifespan);
- after shutdown (`closing`): a last word once the event loop has stopped, before Python's exit.

`install` runs once, from chatsite.asgi, and only under daphne. It compares the installed
versions with CHECKED_VERSIONS and refuses to start on any other (an upgrade must re-check
these adaptations, then update CHECKED_VERSIONS; chat/tests/test_daphne_adapt.py fails
until it does), logs which adaptations are active, and logs an error for any that could not
apply. None of them switches itself off silently later: a shared frame that meets an
unexpected internal turns the short way off once, with one error, and the send-buffer bound
reports a transport it cannot measure.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import sys
from collections.abc import Callable, Coroutine
from typing import Any, Final

from django.core.exceptions import ImproperlyConfigured

from chat.daphne_adapt import closing, frames, handshake, inbound, lazylog, listening, sendbuffer, startup

log = logging.getLogger(__name__)

# The versions every adaptation here was read against and tested with.
CHECKED_VERSIONS: Final = {"daphne": "4.2.3", "Twisted": "26.10.0", "autobahn": "26.10.2"}

_installed: dict[str, bool] | None = None


def installed_versions() -> dict[str, str | None]:
    """The installed version of each package CHECKED_VERSIONS names (None: not installed)."""
    found: dict[str, str | None] = {}
    for name in CHECKED_VERSIONS:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def unchecked_versions(installed: dict[str, str | None]) -> dict[str, str | None]:
    """The packages whose installed version is not the one the adaptations were checked against."""
    return {name: version for name, version in installed.items() if version != CHECKED_VERSIONS[name]}


def install(
    *,
    on_shutdown: Callable[[], asyncio.Future[Any] | None],
    on_start: Callable[[], Coroutine[Any, Any, Any]] | None = None,
    on_stopped: Callable[[], None] | None = None,
) -> dict[str, bool] | None:
    """Install every adaptation once, under daphne (None elsewhere: nothing to adapt).

    Raises ImproperlyConfigured on a daphne, Twisted or autobahn version they were not
    checked against. Returns which adaptations are active.
    """
    global _installed
    if _installed is not None:
        return _installed
    if "daphne.server" not in sys.modules:
        return None  # not served by daphne (tests in-process, manage.py): nothing to adapt
    unchecked = unchecked_versions(installed_versions())
    if unchecked:
        raise ImproperlyConfigured(
            "chat.daphne_adapt was checked against "
            + ", ".join(f"{name} {version}" for name, version in CHECKED_VERSIONS.items())
            + "; installed: "
            + ", ".join(f"{name} {version}" for name, version in unchecked.items())
            + ". Re-check the adaptations against these versions, then update CHECKED_VERSIONS."
        )
    _installed = {
        "shared_frames": frames.install(),
        "release_handshake": handshake.install(),
        "send_buffer_bound": sendbuffer.install(),
        "server_close_codes": closing.allow_server_close_codes(),
        "drain_on_shutdown": closing.drain_on_shutdown(on_shutdown),
        "close_handshake_timeout": closing.close_handshake_timeout(),
        "lazy_connection_log": lazylog.install(),
        "whole_frame_reads": inbound.install(),
        "listen_backlog": listening.install(),
    }
    if on_start is not None:
        _installed["start_up_work"] = startup.run_at_start(on_start)
    if on_stopped is not None:
        _installed["after_shutdown"] = closing.after_shutdown(on_stopped)
    active = sorted(name for name, on in _installed.items() if on)
    off = sorted(name for name, on in _installed.items() if not on)
    log.info("daphne adaptations active: %s", ", ".join(active) or "none")
    if off:
        log.error("daphne adaptations that could not be applied: %s", ", ".join(off))
    return _installed
