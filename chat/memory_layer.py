"""channels' in-memory channel layer (the embedded default), its expiry sweep bounded.

channels (4.3) sweeps expired messages and group memberships on every send, receive and
group_send, walking every channel and every group. A Chatsite process holds a group per user
with a socket, and each socket opened sends its presence (a group_send): every open walked
all the others, quadratic in a reconnect storm (docs/performance.md, "Connecting"). Here the
sweep runs at most once a second. Messages expire after a minute and memberships after a
day; a second's delay in forgetting them changes nothing.

Its group_send also started a task per member and awaited them with `as_completed`, and its
send built a new queue object on every call (a `setdefault` argument) though the channel had
one (so did receive): for the fan-out's one channel per group, a task, a wait and two
queues per event. The
in-memory send never waits (`put_nowait`), so here the members are sent to in turn, with the
same result and order. Every control event (a markRead's readState to the user's group, one a
second per reader) paid it (docs/performance.md "Read state").

Checked against channels 4.3.2, where `_clean_expired` is the sweep every call makes, and
`send` and `group_send` are as described.
"""

from __future__ import annotations

import asyncio
import time
from copy import deepcopy
from typing import Any, Final

from channels.exceptions import ChannelFull
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

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        assert "__asgi_channel__" not in message
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        try:
            queue.put_nowait((time.time() + self.expiry, deepcopy(message)))
        except asyncio.QueueFull:
            raise ChannelFull(channel) from None

    async def receive(self, channel: str) -> dict[str, Any]:
        self.require_valid_channel_name(channel)
        self._clean_expired()
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        try:
            _, message = await queue.get()
        finally:
            if queue.empty():
                self.channels.pop(channel, None)
        return message  # type: ignore[no-any-return]

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        for channel in list(self.groups.get(group, ())):
            try:
                await self.send(channel, message)
            except ChannelFull:
                pass  # as channels does: a full member misses the event
