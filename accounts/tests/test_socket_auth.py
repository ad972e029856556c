"""accounts.socket_auth: a socket's first-frame deadline and token expiry, on a clock the test owns."""

from __future__ import annotations

import asyncio

import pytest

from accounts.identity import Identity
from accounts.socket_auth import NO_AUTHENTICATE_FRAME, TOKEN_EXPIRED, Reason, SocketAuth, expiry_deadline

pytestmark = pytest.mark.timeout(10)


def test_a_token_expires_at_its_exp_plus_the_leeway_and_a_session_never() -> None:
    """The deadline is exp + leeway; an identity with no exp (a session) has none."""
    assert expiry_deadline(Identity("1", "ann", expires_at=1000), leeway=5) == 1005
    assert expiry_deadline(Identity("1", "ann"), leeway=5) is None


class Clocks:
    """A SocketAuth whose sleeps wait for the test: `advance()` lets every pending sleep end."""

    def __init__(self, *, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[tuple[float, asyncio.Event]] = []
        self.reasons: list[Reason] = []
        self.auth = SocketAuth(
            ran_out=self.ran_out, first_frame_timeout=10, leeway=5, clock=lambda: self.now, sleep=self.sleep
        )

    async def sleep(self, seconds: float) -> None:
        done = asyncio.Event()
        self.sleeps.append((seconds, done))
        await done.wait()

    async def ran_out(self, reason: Reason) -> None:
        self.reasons.append(reason)

    async def settle(self) -> None:
        for _ in range(5):  # a few loop turns: started tasks reach their sleep, ended ones report
            await asyncio.sleep(0)

    async def advance(self) -> None:
        for _, done in self.sleeps:
            done.set()
        self.sleeps.clear()
        await self.settle()


async def test_no_first_frame_in_time_is_reported_once() -> None:
    """A socket with no credentials that sends nothing runs out of its first-frame time, once."""
    clocks = Clocks()
    clocks.auth.await_first_frame()
    await clocks.settle()
    assert [seconds for seconds, _ in clocks.sleeps] == [10]
    await clocks.advance()
    assert clocks.reasons == [NO_AUTHENTICATE_FRAME]


async def test_the_first_frame_stops_its_deadline() -> None:
    """The deadline is for sending the first frame: once it arrived, nothing runs out."""
    clocks = Clocks()
    clocks.auth.await_first_frame()
    await clocks.settle()
    clocks.auth.first_frame_arrived()
    await clocks.advance()
    assert clocks.reasons == []


async def test_a_fresh_token_replaces_the_expiry_and_a_closed_socket_has_no_clock() -> None:
    """The expiry sleeps until exp + leeway; a new identity restarts it; close() silences both clocks."""
    clocks = Clocks(now=1000)
    clocks.auth.identified(Identity("1", "ann", expires_at=1060))
    await clocks.settle()
    assert [seconds for seconds, _ in clocks.sleeps] == [65]
    first = clocks.auth.expiry
    clocks.auth.identified(Identity("1", "ann", expires_at=1600))
    await clocks.settle()
    assert first is not None and first.cancelled()
    assert [seconds for seconds, _ in clocks.sleeps][-1] == 605
    await clocks.advance()
    assert clocks.reasons == [TOKEN_EXPIRED]  # the replaced clock reported nothing
    clocks.auth.identified(Identity("1", "ann", expires_at=1700))
    await clocks.settle()
    clocks.auth.close()
    await clocks.advance()
    assert clocks.reasons == [TOKEN_EXPIRED]
    clocks.auth.identified(Identity("1", "ann"))  # a session's identity: no expiry to watch
    assert clocks.auth.expiry is None
