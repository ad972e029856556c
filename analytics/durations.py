"""Durations as log-scale buckets, so a median over any range is a sum of a few hundred counters.

A median needs every sample, or a histogram fine enough: buckets 5 % wide (1.05x apart)
from one second to a year take about 330 keys, and the median read from them is within
2.5 % of the true one. Per day a histogram is a handful of DayCounter rows however many
conversations or reports there were; sorting every sample of 90 days instead was the
dashboard's slowest query (docs/performance.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Final

RATIO: Final = 1.05


def bucket(seconds: float) -> str:
    """The bucket key of a duration (sortable as text: zero-padded)."""
    index = 0 if seconds < 1 else 1 + math.floor(math.log(seconds) / math.log(RATIO))
    return f"{index:04d}"


def midpoint(key: str) -> float:
    """A bucket's representative duration: the geometric middle of its bounds (0 for under a second)."""
    index = int(key)
    if index == 0:
        return 0.0
    return float(RATIO ** (index - 1) * math.sqrt(RATIO))


def median(counts: Iterable[tuple[str, int]]) -> float | None:
    """The median duration of a histogram given as (bucket key, count) pairs: the middle
    sample, or the lower of the two middle ones."""
    ordered = sorted((int(key), count) for key, count in counts if count > 0)
    total = sum(count for _, count in ordered)
    if not total:
        return None
    seen = 0
    for index, count in ordered:
        seen += count
        if seen * 2 >= total:
            return midpoint(f"{index:04d}")
    return None  # unreachable: seen reaches total
