"""bench.storm's client rules, without a server: the backoff it mimics and the frames it reads."""

from __future__ import annotations

import random

from websockets.frames import Frame, Opcode

from bench.loadgen import whole_text
from bench.storm import backoff_delay


def test_the_backoff_is_full_jitter_below_a_ceiling_doubling_from_half_a_second_to_ten() -> None:
    """As static/chat/core/client.js: uniform in [0, min(10 s, 0.5 s * 2^attempt))."""
    rng = random.Random(1)
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (3, 4.0), (5, 10.0), (40, 10.0)]:
        delays = [backoff_delay(attempt, rng) for _ in range(2000)]
        assert 0 <= min(delays) and max(delays) < ceiling
        assert max(delays) > 0.9 * ceiling  # the whole range is used, not a fixed delay


def test_a_fragmented_text_message_is_read_once_whole() -> None:
    """Fragments are joined; nothing is handed on before the last one."""
    parts: list[bytes] = []
    assert whole_text(Frame(Opcode.TEXT, b'{"a":', fin=False), parts) is None
    assert whole_text(Frame(Opcode.CONT, b" 1", fin=False), parts) is None
    assert whole_text(Frame(Opcode.CONT, b"}", fin=True), parts) == b'{"a": 1}'
    assert whole_text(Frame(Opcode.TEXT, b"x", fin=True), parts) == b"x"
    assert whole_text(Frame(Opcode.PING, b"", fin=True), parts) is None
