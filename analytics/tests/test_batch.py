"""Batched counting (ANALYTICS_FLUSH_SECONDS > 0): a send only queues its counts; a flush
writes the same figures the write-through path would have."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings

from accounts.identity import Identity
from analytics import batch, durations
from analytics.models import DayCounter, MinuteCounter, UserDay
from analytics.tests.conftest import Clock
from chat import services

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


@override_settings(ANALYTICS_FLUSH_SECONDS=3600)  # the flusher sleeps through the test: the test flushes
async def test_sends_queue_their_counts_and_a_flush_writes_them_all(clock: Clock) -> None:
    """Five sends leave the database untouched until the flush, which counts them by room, user, minute and
    times the first reply, as writing each at once would."""
    alice, bob = Identity(user_id="1", username="alice"), Identity(user_id="2", username="bob")
    await sync_to_async(batch.flush)()  # nothing left over from another test
    for n, who in enumerate([alice, alice, bob, alice, bob]):
        clock.now = clock.now + timedelta(seconds=30 if n else 0)
        await services.message_send(
            identity=who, connection_id="c", room_id="general", text="x", client_message_id=None
        )
    assert batch.pending() == 5
    assert not await sync_to_async(DayCounter.objects.exists)()

    assert await sync_to_async(batch.flush)() == 5

    def counts() -> tuple[object, ...]:
        day = clock.now.date()
        return (
            DayCounter.objects.get(day=day, name="messages", key="general").value,
            dict(UserDay.objects.values_list("user_id", "messages")),
            sum(MinuteCounter.objects.values_list("messages", flat=True)),
            list(DayCounter.objects.filter(name="first_reply").values_list("key", "value")),
        )

    assert await sync_to_async(counts)() == (5, {"1": 3, "2": 2}, 5, [(durations.bucket(60), 1)])
    assert batch.pending() == 0
