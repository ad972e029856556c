"""Batched counting (ANALYTICS_FLUSH_SECONDS > 0): a send only queues its counts; a flush
writes the same figures the write-through path would have."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings

from accounts.identity import Identity
from analytics import batch, durations
from analytics.models import DayCounter, MinuteCounter, UserDay
from analytics.tests.conftest import Clock
from chat import services
from tests.fixtures.bare_process import run

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


_EMBEDDED_SENDS = """
import asyncio, threading, time

import django

django.setup()
from django.conf import settings
from django.core.management import call_command

call_command("migrate", verbosity=0)
from accounts.identity import Identity
from analytics.models import DayCounter
from chat import services


def counted():
    found = DayCounter.objects.filter(name="messages", key="general").first()
    return found.value if found else 0


def send():
    asyncio.run(services.message_send(
        identity=Identity(user_id="1", username="alice"), connection_id="c", room_id="general", text="hi",
        client_message_id=None,
    ))


send()
flushers = [t.name for t in threading.enumerate() if t.name == "analytics-flush"]
print("batched every", settings.ANALYTICS_FLUSH_SECONDS, "by", flushers)
deadline = time.monotonic() + 60
while counted() < 1 and time.monotonic() < deadline:
    time.sleep(0.1)
print("counted later", counted())
send()  # and the process ends at once: the count is written at exit
"""


@pytest.mark.timeout(300)
def test_the_embedded_default_batches_and_writes_counts_by_itself_and_at_exit(tmp_path: Path) -> None:
    """`make run`'s settings (nothing set): a send's count waits in memory, the flusher writes it
    by itself within its interval, and a process that ends right after a send still counts it."""
    done = run(tmp_path, "-c", _EMBEDDED_SENDS, timeout=240, DJANGO_SETTINGS_MODULE="chatsite.settings")
    assert done.returncode == 0, done.stderr
    assert "batched every 2.0 by ['analytics-flush']" in done.stdout
    assert "counted later 1" in done.stdout
    (database,) = tmp_path.glob("*.sqlite3")
    with sqlite3.connect(database) as db:
        (value,) = db.execute(
            f"SELECT value FROM {DayCounter._meta.db_table} WHERE name = 'messages' AND key = 'general'"
        ).fetchone()
    assert value == 2
