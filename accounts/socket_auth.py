"""A socket's authentication clocks: the first frame's deadline and the token's expiry.

The consumer (chat.consumers) is the WebSocket edge: it says what happened on the socket
(opened without credentials, a first frame arrived, an identity was set or replaced, the
socket closed) and closes with 4401 when a clock runs out. The rules live here:

- a socket opened without credentials must send its `authenticate` frame within the
  first-frame timeout; the deadline is for sending it, not for verifying it, so the first
  frame stops it whatever it holds;
- a socket whose identity expires (a token's `exp`) is refused at exp + the verifier's
  leeway, unless a fresh token replaced the identity first: the new expiry replaces the old;
- a closed socket has no clock left, and a clock that ran out is reported once.

`expiry_deadline` is pure; `SocketAuth` keeps at most one task per clock, with the clock
and the sleep injectable so tests own time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Final, Literal

from accounts.identity import Identity

NO_AUTHENTICATE_FRAME: Final = "no_authenticate_frame"
TOKEN_EXPIRED: Final = "token_expired"  # noqa: S105 - a reason, not a secret
Reason = Literal["no_authenticate_frame", "token_expired"]


def expiry_deadline(identity: Identity, *, leeway: float) -> float | None:
    """When a socket of this identity must be refused (epoch seconds), or None: it never
    expires (a session's socket ends with its session, by another path)."""
    return None if identity.expires_at is None else identity.expires_at + leeway


class SocketAuth:
    """The two clocks of one socket, each a task that calls `ran_out(reason)` when due."""

    def __init__(
        self,
        *,
        ran_out: Callable[[Reason], Awaitable[None]],
        first_frame_timeout: float,
        leeway: float,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._ran_out = ran_out
        self.first_frame_timeout = first_frame_timeout
        self.leeway = leeway
        self._clock = clock
        self._sleep = sleep
        self.first_frame: asyncio.Task[None] | None = None
        self.expiry: asyncio.Task[None] | None = None
        self.closed = False

    def await_first_frame(self) -> None:
        """The socket opened with no credentials: its first frame must come in time."""
        _cancel(self.first_frame)
        self.first_frame = self._start(self.first_frame_timeout, NO_AUTHENTICATE_FRAME)

    def first_frame_arrived(self) -> None:
        _cancel(self.first_frame)
        self.first_frame = None

    def identified(self, identity: Identity) -> None:
        """The socket now speaks for `identity` (at open, or after a fresh token): watch its expiry."""
        _cancel(self.expiry)
        self.expiry = None
        deadline = expiry_deadline(identity, leeway=self.leeway)
        if deadline is not None:
            self.expiry = self._start(max(0.0, deadline - self._clock()), TOKEN_EXPIRED)

    def close(self) -> None:
        """The socket is gone: no clock reports anything any more."""
        self.closed = True
        _cancel(self.first_frame)
        _cancel(self.expiry)

    def _start(self, seconds: float, reason: Reason) -> asyncio.Task[None] | None:
        if self.closed:
            return None
        return asyncio.create_task(self._run(seconds, reason))

    async def _run(self, seconds: float, reason: Reason) -> None:
        await self._sleep(seconds)
        if not self.closed:
            await self._ran_out(reason)


def _cancel(task: asyncio.Task[None] | None) -> None:
    # A clock that ran out may close the socket from its own task: it finishes on its own.
    if task is not None and task is not asyncio.current_task():
        task.cancel()
