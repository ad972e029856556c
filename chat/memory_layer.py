"""channels' in-memory channel layer (the embedded default), its expiry sweep bounded.

channels (4.3) sweeps expired messages and group memberships on every send, receive and
group_send, walking every channel and every group. A Chatsite process holds a group per user
with a socket, and each socket opened sends its presence (a group_send): every open walked
all the others, quadratic in a reconnect storm (docs/performance.md, "Connecting"). Here the
sweep runs at most once a second. Messages expire after a minute and memberships after a
day; a second's delay in forgetting them changes nothing.

Checked against channels 4.3.2, where `_clean_expired` is the sweep every call makes.
"""

from __future__ import annotations

import time
from typing import Final

from channels.layers import InMemoryChannelLayer

# How often the layer looks for expired messages and group memberships.
SWEEP_SECONDS: Final = 1.0


class InMemoryLayer(InMemoryChannelLayer):  # type: ignore[misc]
    _swept_at = float("-inf")

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._swept_at < SWEEP_SECONDS:
            return
        self._swept_at = now
        super()._clean_expired()
