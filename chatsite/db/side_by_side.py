"""Database calls that may run beside each other, off the event loop.

Django's ORM work runs on one sync thread per process (channels' `database_sync_to_async`),
one call at a time. On SQLite that costs nothing: the file has one writer anyway. On
PostgreSQL the thread itself becomes the limit: each call spends most of its time waiting for
the server's answers, and in a reconnect storm the surviving process's opens queued behind
each other on that thread while a quarter of its core sat idle (docs/performance.md, "Opens
side by side on PostgreSQL").

A socket's open (its identity, its admission, its join's read) touches only that socket's and
that user's rows, as two processes' opens already do side by side. So on PostgreSQL these
calls run on a small pool of threads, each thread with its own connection, and the sync
thread keeps the rest. Not for a message: two messages of one room written side by side
could be published out of seq order.

On SQLite, or with DATABASE_OPEN_THREADS at 1, a call here is `database_sync_to_async`.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from channels.db import DatabaseSyncToAsync, database_sync_to_async
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.utils import load_backend

P = ParamSpec("P")
T = TypeVar("T")

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def parallel() -> bool:
    """Whether calls here run on the pool: PostgreSQL, with more than one thread asked for.

    Read from the configured engine, not from `django.db.connection`: on the event loop that
    proxy is per task, so every socket's open made a database wrapper of its own just to say
    which vendor it is (about 2.5 % of an open's CPU, docs/performance.md)."""
    return (
        settings.DATABASE_OPEN_THREADS > 1 and _vendor(connections.settings[DEFAULT_DB_ALIAS]["ENGINE"]) == "postgresql"
    )


@functools.lru_cache(maxsize=8)
def _vendor(engine: str) -> str:
    return str(load_backend(engine).DatabaseWrapper.vendor)


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=settings.DATABASE_OPEN_THREADS, thread_name_prefix="db-open")
        return _pool


def side_by_side(fn: Callable[P, T]) -> Callable[P, Awaitable[T]]:
    """`fn` as an awaitable that runs off the event loop: on the pool where calls may run side
    by side (stale connections closed around it, as on the sync thread), else on the sync thread."""
    return _wrapped(fn, _executor() if parallel() else None)


@functools.lru_cache(maxsize=64)
def _wrapped(fn: Callable[P, T], pool: ThreadPoolExecutor | None) -> Callable[P, Awaitable[T]]:
    """Made once per function and pool (None: the sync thread): building asgiref's wrapper
    (update_wrapper, coroutine checks) on every call was 8 % of a trip (chat.services)."""
    if pool is None:
        return database_sync_to_async(fn)  # type: ignore[no-any-return]
    return DatabaseSyncToAsync(fn, thread_sensitive=False, executor=pool)  # type: ignore[no-any-return]
