"""Closed sockets' rows, many to a trip (chat.connection_closes): a lone close goes at once, the
closes that come while a trip runs share the next one, no close is answered before its trip
is over or lost when a trip fails or a closer is cancelled. A fake trip, no server; the
services' trip against the store is in test_connection_closes_store below."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from chat import connection_closes
from chat.connection_closes import CLOSES_PER_TRIP, CloseQueue

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


class Trips:
    """A trip that holds until released, recording what each carried."""

    def __init__(self, *, fail_first: bool = False) -> None:
        self.carried: list[tuple[list[str], datetime]] = []
        self.release = asyncio.Event()
        self.fail_first = fail_first

    async def __call__(self, connection_ids: list[str], at: datetime) -> None:
        self.carried.append((connection_ids, at))
        await self.release.wait()
        if self.fail_first and len(self.carried) == 1:
            raise RuntimeError("the store went away")


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_lone_close_goes_at_once_and_a_burst_meanwhile_shares_the_next_trips() -> None:
    trips = Trips()
    queue = CloseQueue(trips)
    first = asyncio.create_task(queue.close("c0", at=T0))
    await settle()
    assert trips.carried == [(["c0"], T0)]  # not held back waiting for company
    burst = [
        asyncio.create_task(queue.close(f"c{n}", at=T0 + timedelta(milliseconds=n)))
        for n in range(1, CLOSES_PER_TRIP + 6)
    ]
    await settle()
    assert len(trips.carried) == 1 and not first.done()  # answered only after its trip
    trips.release.set()
    await asyncio.gather(first, *burst)
    assert [len(ids) for ids, _ in trips.carried] == [1, CLOSES_PER_TRIP, 5]
    assert [i for ids, _ in trips.carried for i in ids] == [f"c{n}" for n in range(CLOSES_PER_TRIP + 6)]
    # A batch is stamped with its latest close.
    assert trips.carried[2][1] == T0 + timedelta(milliseconds=CLOSES_PER_TRIP + 5)
    assert queue.trips == 3


async def test_a_failed_trip_answers_its_closes_and_the_next_trip_still_goes(caplog: pytest.LogCaptureFixture) -> None:
    trips = Trips(fail_first=True)
    queue = CloseQueue(trips)
    first = asyncio.create_task(queue.close("c0", at=T0))
    await settle()
    later = asyncio.create_task(queue.close("c1", at=T0))
    await settle()
    trips.release.set()
    await asyncio.wait_for(asyncio.gather(first, later), 5)
    assert [ids for ids, _ in trips.carried] == [["c0"], ["c1"]]
    assert "closing 1 connection rows failed" in caplog.text


async def test_a_cancelled_closer_leaves_its_row_in_the_trip() -> None:
    """daphne cancels a stopping process's socket tasks: the row is deleted all the same."""
    trips = Trips()
    queue = CloseQueue(trips)
    blocker = asyncio.create_task(queue.close("c0", at=T0))
    await settle()
    cancelled = asyncio.create_task(queue.close("c1", at=T0))
    await settle()
    cancelled.cancel()
    await settle()
    trips.release.set()
    await asyncio.wait_for(blocker, 5)
    for _ in range(20):
        if len(trips.carried) == 2:
            break
        await asyncio.sleep(0)
    assert [ids for ids, _ in trips.carried] == [["c0"], ["c1"]]


async def test_each_event_loop_has_its_own_queue() -> None:
    async def trip(connection_ids: list[str], at: datetime) -> None: ...

    here = connection_closes.close_queue(trip)
    assert connection_closes.close_queue(trip) is here

    async def elsewhere() -> CloseQueue:
        return connection_closes.close_queue(trip)

    other = await asyncio.to_thread(asyncio.run, elsewhere())
    assert other is not here
