"""Four weeks of chat seeded through the services (owned clock, either storage backend), then
the dashboard's figures against counts made independently from what the test sent.

The "ledger" below records what each step did (who sent what where and when, which socket
was open when, which report was closed how); the expected figures are computed from it by
brute force, never from the rollup tables the dashboard reads.
"""

from __future__ import annotations

import csv
import io
import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client, override_settings

from accounts.identity import Identity
from analytics import rollup
from analytics.models import DayStat
from analytics.tests.conftest import Clock
from chat import moderation, people, services
from chat.moderation_models import Report

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

BASE = datetime(2026, 10, 5, tzinfo=UTC)  # a Monday
DAYS = 28
USERS = 10
TTL_DAYS = 10


def join_day(i: int) -> int:
    return 7 * (i // 4) + i % 4  # weeks 0, 1 and 2 each get a cohort


def active_today(i: int, d: int) -> bool:
    return d >= join_day(i) and (i + d) % 3 != 0


@dataclass
class Ledger:
    """What the test did, as it did it."""

    active: dict[date, set[str]] = field(default_factory=lambda: defaultdict(set))
    sent: list[tuple[str, str, datetime, str]] = field(default_factory=list)  # room, user, at, text
    spans: list[tuple[str, datetime, datetime]] = field(default_factory=list)
    opened: Counter[date] = field(default_factory=Counter)
    closed: Counter[date] = field(default_factory=Counter)
    resolve_seconds: list[float] = field(default_factory=list)
    actions: Counter[str] = field(default_factory=Counter)
    joined: dict[str, datetime] = field(default_factory=dict)
    dms: set[str] = field(default_factory=set)  # the rooms that are direct messages

    def in_rooms(self) -> list[tuple[str, str, datetime, str]]:
        return [s for s in self.sent if s[0] not in self.dms]


def make_user(username: str, joined: datetime, **extra: Any) -> Any:
    return get_user_model().objects.create_user(username=username, date_joined=joined, **extra)


async def seed(clock: Clock) -> tuple[Ledger, Any, Any]:
    ledger = Ledger()
    mod = await sync_to_async(make_user)("mod", BASE - timedelta(days=60), is_staff=True)

    def grant() -> None:
        group, _ = Group.objects.get_or_create(name=settings.AUTH_MODERATOR_GROUP)
        mod.groups.add(group)

    await sync_to_async(grant)()
    users = []
    for i in range(USERS):
        joined = BASE + timedelta(days=join_day(i), hours=8)
        user = await sync_to_async(make_user)(f"user{i}", joined)
        ledger.joined[str(user.pk)] = joined
        users.append(user)
    ids = [Identity(user_id=str(u.pk), username=u.username) for u in users]
    for room in ("general", "room-0", "room-1"):
        await sync_to_async(services.room_create)(room_id=room)
    # A DM of user0 and user1, and a room an admin named like one (a room, whatever its id).
    dm = await sync_to_async(people.direct_open)(identity=ids[0], usernames=("user1",))
    assert dm.room_id.startswith("dm-")
    ledger.dms.add(dm.room_id)
    await sync_to_async(services.room_create)(room_id="dm-lookalike")

    pending: list[Report] = []
    for d in range(DAYS):
        day = (BASE + timedelta(days=d)).date()
        t0 = BASE + timedelta(days=d)
        actives = [i for i in range(USERS) if active_today(i, d)]

        # Sockets: 30 minutes each, opened 10 minutes apart (at most three overlap).
        events: list[tuple[datetime, int, int]] = []
        for k, i in enumerate(actives):
            opened = t0 + timedelta(hours=9, minutes=10 * k)
            events += [(opened, 1, i), (opened + timedelta(minutes=30), 0, i)]
            ledger.spans.append((ids[i].user_id, opened, opened + timedelta(minutes=30)))
            ledger.active[day].add(ids[i].user_id)
        socket_of: dict[int, str] = {}
        for at, is_open, i in sorted(events):
            clock.now = at
            if is_open:
                socket_of[i] = (await services.connection_open(identity=ids[i])).connection_id
            else:
                await services.connection_close(connection_id=socket_of.pop(i))

        async def send(i: int, room: str, at: datetime, text: str, day: date = day) -> Any:
            clock.now = at
            message = await services.message_send(
                identity=ids[i], connection_id="c", room_id=room, text=text, client_message_id=None
            )
            ledger.sent.append((room, ids[i].user_id, at, text))
            ledger.active[day].add(ids[i].user_id)
            return message

        # A conversation in general: an opener and a reply some minutes later.
        opener = None
        if actives:
            opener = await send(actives[0], "general", t0 + timedelta(hours=12), f"secret-text-{d}-open")
        if len(actives) > 1:
            await send(actives[1], "general", t0 + timedelta(hours=12, minutes=d % 5 + 1), f"secret-text-{d}-reply")
        for k, i in enumerate(actives):
            for j in range(i % 3 + 1):
                await send(
                    i, f"room-{i % 2}", t0 + timedelta(hours=14, minutes=5 * k, seconds=j), f"secret-{d}-{i}-{j}"
                )

        # Direct messages: quick answers (were they counted as a room's, they would move the
        # median time to first reply in rooms), and a line in the room named like a DM.
        pair = [i for i in (0, 1) if i in actives]
        for n, i in enumerate(pair * (d % 3 + 1)):
            await send(i, dm.room_id, t0 + timedelta(hours=16, seconds=20 * n), f"secret-dm-{d}-{n}")
        if d % 7 == 3 and actives:
            await send(actives[0], "dm-lookalike", t0 + timedelta(hours=17), f"secret-lookalike-{d}")

        # Reports: filed one day, worked the next (hide and dismiss in turn).
        if d % 4 == 1 and opener is not None:
            clock.now = t0 + timedelta(hours=15)
            reporter = ids[actives[-1]]
            report = await moderation.report_create(
                identity=reporter, room_id="general", message_id=opener.message_id, reason="rude"
            )
            ledger.opened[day] += 1
            pending.append(report)
        if d % 4 == 2 and pending:
            report = pending.pop()
            clock.now = t0 + timedelta(hours=10, minutes=d)
            if d % 8 == 2:
                await sync_to_async(moderation.report_act)(moderator=mod, report=report, action="hide", reason="rude")
                ledger.actions.update(["message_hide", "report_resolve"])
            else:
                await sync_to_async(moderation.report_resolve)(
                    moderator=mod, report=report, reason="fine", dismiss=True
                )
                ledger.actions.update(["report_dismiss"])
            ledger.closed[day] += 1
            ledger.resolve_seconds.append((clock.now - report.created_at).total_seconds())
    return ledger, mod, users


# --- the independent counts --------------------------------------------------------------------


def days() -> list[date]:
    return [(BASE + timedelta(days=d)).date() for d in range(DAYS)]


def window_users(ledger: Ledger, day: date, width: int) -> int:
    return len(set().union(*(ledger.active.get(day - timedelta(days=n), set()) for n in range(width))))


def peak_users(ledger: Ledger, day: date) -> int:
    moments = [opened for _, opened, _ in ledger.spans if opened.date() == day]
    return max(
        (len({u for u, o, c in ledger.spans if o <= t < c}) for t in moments),
        default=0,
    )


def first_reply_median(ledger: Ledger) -> float:
    samples = []
    by_room: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for room, user, at, _ in ledger.in_rooms():  # time to first reply in rooms, not in DMs
        by_room[room].append((at, user))
    for messages in by_room.values():
        messages.sort()
        conversation_start: tuple[datetime, str] | None = None
        last: datetime | None = None
        answered = False
        for at, user in messages:
            if last is None or at - last > timedelta(minutes=30):
                conversation_start, answered = (at, user), False
            elif not answered and conversation_start is not None and user != conversation_start[1]:
                answered = True
                if at - conversation_start[0] <= timedelta(hours=6):
                    samples.append((at - conversation_start[0]).total_seconds())
            last = at
    return statistics.median_low(samples)


def retention(ledger: Ledger, today: date) -> list[list[str]]:
    cohorts: dict[date, list[str]] = defaultdict(list)
    for user, joined in ledger.joined.items():
        cohorts[rollup.week_of(joined.date())].append(user)
    rows = []
    for cohort, members in sorted(cohorts.items()):
        row = [cohort.isoformat(), str(len(members))]
        for offset in range(1, 5):
            week = cohort + timedelta(weeks=offset)
            if week > today:
                row.append("")
                continue
            week_days = [week + timedelta(days=n) for n in range(7)]
            row.append(str(sum(any(u in ledger.active.get(d, set()) for d in week_days) for u in members)))
        rows.append(row)
    return rows


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
        in_range = [d for d in days() if d > today - timedelta(days=30)]
        messages_per_day = Counter(at.date() for _, _, at, _ in ledger.sent)
        # ... and still count on the day they were sent.
        assert by_day(table(client, "messages")) == {d.isoformat(): messages_per_day[d] for d in _span(today, 30)}
        active = table(client, "active")
        assert {r[0]: [int(x) for x in r[1:]] for r in active} == {
            d.isoformat(): [len(ledger.active.get(d, set())), window_users(ledger, d, 7), window_users(ledger, d, 30)]
            for d in _span(today, 30)
        }
        assert by_day(table(client, "peak_users")) == {d.isoformat(): peak_users(ledger, d) for d in _span(today, 30)}
        joined_per_day = Counter(j.date() for j in ledger.joined.values())
        assert by_day(table(client, "new_users")) == {d.isoformat(): joined_per_day[d] for d in _span(today, 30)}
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
        assert by_day(table(client, "reports_opened")) == {d.isoformat(): ledger.opened[d] for d in _span(today, 30)}
        assert by_day(table(client, "reports_resolved")) == {d.isoformat(): ledger.closed[d] for d in _span(today, 30)}
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


def _span(today: date, width: int) -> list[date]:
    return [today - timedelta(days=width - 1 - n) for n in range(width)]


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
