"""Four weeks of chat seeded through the services with an owned clock, and the counts the
dashboard must show, made independently from what was seeded.

The "ledger" records what each step did (who sent what where and when, which socket was open
when, which report was closed how); the expected figures are computed from it by brute force,
never from the rollup tables the dashboard reads. Used in-process by test_dashboard.py, and in
a `manage.py shell` beside a real daphne by tests/e2e/test_dashboard_seeded.py
(`seed_into_the_configured_site`, which hands the ledger over as a pickle).
"""

from __future__ import annotations

import asyncio
import pickle
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from accounts.identity import Identity
from analytics import rollup
from analytics.tests.conftest import Clock
from chat import moderation, people, services
from chat.moderation_models import Report

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

    base: datetime = BASE  # midnight UTC of the first seeded day
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


async def seed(clock: Clock, base: datetime = BASE) -> tuple[Ledger, Any, Any]:
    """DAYS days of chat from `base` on, through the services, with `clock` moved along."""
    ledger = Ledger(base=base)
    mod = await sync_to_async(make_user)("mod", base - timedelta(days=60), is_staff=True)

    def grant() -> None:
        group, _ = Group.objects.get_or_create(name=settings.AUTH_MODERATOR_GROUP)
        mod.groups.add(group)

    await sync_to_async(grant)()
    users = []
    for i in range(USERS):
        joined = base + timedelta(days=join_day(i), hours=8)
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
        day = (base + timedelta(days=d)).date()
        t0 = base + timedelta(days=d)
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


def days(ledger: Ledger) -> list[date]:
    return [(ledger.base + timedelta(days=d)).date() for d in range(DAYS)]


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


def span(today: date, width: int) -> list[date]:
    """The `width` days up to `today`, as a range of the dashboard lists them."""
    return [today - timedelta(days=width - 1 - n) for n in range(width)]


def seed_into_the_configured_site(out: str, base: str, password: str, *sign_in: str) -> None:
    """Seed the database and store this process is configured with (a `manage.py shell` given a daphne's
    environment), give "mod" and the users named in `sign_in` `password`, and pickle the ledger to `out`."""
    clock = Clock(datetime.fromisoformat(base))
    services.utcnow = clock  # every service reads chat.services.utcnow
    ledger, mod, users = asyncio.run(seed(clock, datetime.fromisoformat(base)))
    for user in [mod, *(u for u in users if u.username in sign_in)]:
        user.set_password(password)
        user.save(update_fields=["password"])
    names = {str(u.pk): u.username for u in users}
    Path(out).write_bytes(pickle.dumps((ledger, names)))
