"""Python's cyclic garbage collector, set for a process that holds thousands of sockets.

With Python's defaults (a young collection every 700 allocations, a middle one every ten
young ones, a full one every ten middle ones once the heap grew by a quarter), a process
holding 5,000 sockets spent about a quarter of its CPU in the collector while a restarted
peer's 2,500 sockets reconnected to it: nine full collections of about 0.45 s each, every one
a pause of the event loop (docs/performance.md, "The garbage collector in a storm"). A full
collection walks every object of the process, and almost everything a socket allocates is
freed by reference counting, not by the collector. So at start, once daphne runs:

- everything allocated so far (Django, the app, the libraries) is frozen out of every
  collection: it lives as long as the process (`gc.freeze`);
- a full collection is considered after FULL_EVERY middle ones, not ten. Young and middle
  collections stay as Python has them: they walk only recent objects (larger young
  generations were measured slower in small rooms).

Cyclic garbage that reaches the oldest generation then lives longer, until a full collection.
Only under daphne: tests and commands keep Python's defaults.
"""

from __future__ import annotations

import gc
import logging
from typing import Final

log = logging.getLogger(__name__)

# Allocations per young collection, young per middle, middle per full (Python: 700, 10, 10).
YOUNG: Final = 700
MIDDLE_EVERY: Final = 10
FULL_EVERY: Final = 100


def set_for_a_server() -> None:
    """Freeze what start-up allocated and space the collections out (once, at start).

    No collection first: at start it finds a few dozen objects and costs about 40 ms, and in a
    forked process (the tests start daphne from a warm parent) it writes to every page the
    parent shared."""
    gc.freeze()
    gc.set_threshold(YOUNG, MIDDLE_EVERY, FULL_EVERY)
    log.info("garbage collector: %d start-up objects frozen; thresholds %s", gc.get_freeze_count(), gc.get_threshold())
