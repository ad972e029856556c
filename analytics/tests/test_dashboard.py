"""Four weeks of chat seeded through the services (owned clock, either storage backend), then
the dashboard's figures against counts made independently from what the test sent
(analytics/tests/seeding.py keeps the seed and the independent counts).
"""

from __future__ import annotations

import csv
import io
import re
import statistics
from collections import Counter
from datetime import date, timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.test import Client, override_settings

from accounts.identity import Identity
from analytics import rollup
from analytics.models import DayStat
from analytics.tests.conftest import Clock
from analytics.tests.seeding import (
    BASE,
    DAYS,
    TTL_DAYS,
    days,
    first_reply_median,
    make_user,
    peak_users,
    retention,
    seed,
    span,
    window_users,
)
from chat import services

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]


def table(client: Client, chart: str, days_: int = 30) -> list[list[str]]:
    response = client.get(f"/admin/analytics/csv/{chart}/?days={days_}")
    assert response.status_code == 200, chart
    return list(csv.reader(io.StringIO(response.content.decode())))[1:]


def by_day(rows: list[list[str]], column: int = 1) -> dict[str, int]:
    return {row[0]: int(row[column]) for row in rows}


@override_settings(CHAT_MESSAGE_TTL_SECONDS=TTL_DAYS * 86_400)
async def test_the_dashboard_counts_four_weeks_of_chat_as_a_ledger_does(backend: str, clock: Clock) -> None:
    """After four weeks seeded through the services, every chart's numbers equal an independent count of what was
    done, messages that expired since included, on both storage backends; the page shows counts, never text."""
    ledger, mod, users = await seed(clock)
    clock.now = BASE + timedelta(days=DAYS - 1, hours=23)
    today = clock.now.date()
    purged = await sync_to_async(services.expired_purge)()
    assert purged > 0  # the first two weeks' messages are gone from the store ...
    result = await sync_to_async(rollup.rollup)(now=clock.now)
    assert result.days == (today - mod.date_joined.date()).days + 1  # every day since the first sign-up

    def check() -> None:
        client = Client()
        client.force_login(mod)
        in_range = [d for d in days(ledger) if d > today - timedelta(days=30)]
        messages_per_day = Counter(at.date() for _, _, at, _ in ledger.sent)
        # ... and still count on the day they were sent.
        assert by_day(table(client, "messages")) == {d.isoformat(): messages_per_day[d] for d in span(today, 30)}
        active = table(client, "active")
        assert {r[0]: [int(x) for x in r[1:]] for r in active} == {
            d.isoformat(): [len(ledger.active.get(d, set())), window_users(ledger, d, 7), window_users(ledger, d, 30)]
            for d in span(today, 30)
        }
        assert by_day(table(client, "peak_users")) == {d.isoformat(): peak_users(ledger, d) for d in span(today, 30)}
        joined_per_day = Counter(j.date() for j in ledger.joined.values())
        assert by_day(table(client, "new_users")) == {d.isoformat(): joined_per_day[d] for d in span(today, 30)}
        rooms = Counter(room for room, _, _, _ in ledger.in_rooms())
        assert {r[0]: int(r[1]) for r in table(client, "rooms")} == dict(rooms)  # no DM among the busiest rooms
        in_rooms, in_dms = len(ledger.in_rooms()), len(ledger.sent) - len(ledger.in_rooms())
        assert in_dms > 0 and rooms["dm-lookalike"] > 0
        total = in_rooms + in_dms
        assert table(client, "share") == [
            ["rooms", str(in_rooms), f"{100 * in_rooms / total:.1f}"],
            ["direct messages", str(in_dms), f"{100 * in_dms / total:.1f}"],
        ]
        assert table(client, "retention", 30) == [
            r for r in retention(ledger, today) if date.fromisoformat(r[0]) >= today - timedelta(days=30 + 28)
        ]
        assert by_day(table(client, "reports_opened")) == {d.isoformat(): ledger.opened[d] for d in span(today, 30)}
        assert by_day(table(client, "reports_resolved")) == {d.isoformat(): ledger.closed[d] for d in span(today, 30)}
        assert {r[0]: int(r[1]) for r in table(client, "actions")} == dict(ledger.actions)
        assert table(client, "reported_rooms") == [["general", str(sum(ledger.opened.values()))]]
        senders = Counter(user for _, user, at, _ in ledger.sent if at.date() > today - timedelta(days=7))
        names = {str(u.pk): u.username for u in users}
        assert {r[0]: int(r[1]) for r in table(client, "senders")} == {names[u]: n for u, n in senders.most_common(10)}

        page = client.get("/admin/?days=30")
        html = page.content.decode()
        assert page.status_code == 200 and "script-src 'self'" in page["Content-Security-Policy"]
        for tile, exact in (
            ("first-reply", first_reply_median(ledger)),
            ("resolve-median", statistics.median_low(ledger.resolve_seconds)),
        ):
            shown = re.search(rf'<dd id="{tile}">≈ ([\d,]+) s</dd>', html)
            assert shown is not None, tile
            assert abs(int(shown.group(1).replace(",", "")) - exact) <= 0.025 * exact + 1, (tile, exact)
        assert f'<dd id="dau">{len(ledger.active.get(today, set()))}</dd>' in html
        assert f'<dd id="dm-share">{round(100 * in_dms / total)} %</dd>' in html
        assert f'<dd id="mau">{window_users(ledger, today, 30)}</dd>' in html
        assert "<svg" in html and "secret" not in html  # counts, never message text
        assert in_range  # the range holds the seeded days

    await sync_to_async(check)()


async def test_rollup_is_incremental_and_idempotent(clock: Clock) -> None:
    """A second run the same day recomputes only today and changes no figure; days before stay final."""
    user = await sync_to_async(make_user)("solo", BASE)
    identity = Identity(user_id=str(user.pk), username="solo")
    for d in range(3):
        clock.now = BASE + timedelta(days=d, hours=12)
        await services.message_send(
            identity=identity, connection_id="c", room_id="general", text="x", client_message_id=None
        )
    first = await sync_to_async(rollup.rollup)(now=clock.now)

    def snapshot() -> list[tuple[Any, ...]]:
        return list(DayStat.objects.order_by("day", "name").values_list("day", "name", "value"))

    before = await sync_to_async(snapshot)()
    clock.now += timedelta(minutes=5)
    second = await sync_to_async(rollup.rollup)(now=clock.now)
    assert (first.days, second.days) == (3, 1)
    assert await sync_to_async(snapshot)() == before
    assert [v for d, n, v in before if n == rollup.MAU] == [1.0, 1.0, 1.0]


def test_per_user_figures_and_moderation_are_for_moderators_only(db: None) -> None:
    """Staff without moderator rights see the counts but not the busiest senders or the moderation section."""
    staff = get_user_model().objects.create_user(username="staffer", is_staff=True)
    client = Client()
    client.force_login(staff)
    page = client.get("/admin/")
    assert page.status_code == 200 and 'id="engagement"' in page.content.decode()
    assert 'id="moderation"' not in page.content.decode()
    assert client.get("/admin/analytics/csv/senders/").status_code == 404
    assert client.get("/admin/analytics/csv/messages/").status_code == 200
    assert Client().get("/admin/analytics/live/").status_code == 302  # to the login
