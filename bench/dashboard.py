"""How long the admin dashboard takes to open over a big history, and what counting a message costs.

Not part of `make bench`: run it on its own.

    python -m bench.dashboard                      # 1,000,000 messages, 10,000 users, 90 days
    python -m bench.dashboard --messages 100000 --users 1000 --keep var/bench/dash

It makes a scratch data directory (SQLite, as the embedded default; or DATABASE_URL if set),
migrates it, and writes the rollup rows such a history leaves (analytics.models), generated
directly: 100 rooms, users active on a quarter of their days since joining, the messages
spread over the user-days, a conversation sample per room-hour, reports and 2,000 live
sockets. Then it opens /admin/?days=N as a moderator through Django's test client (the
whole view: queries, charts, template) and prints the median and worst of several openings
per range, and the cost of the per-message hook (analytics.services.message_stored_sync),
measured on the same database. Exits 1 when a median opening takes 500 ms of CPU or more: on
a machine shared with other work the wall time grows with the load average (printed), the
CPU time does not; on an idle machine the two are close (SQLite runs in this process).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

BUDGET_MS = 500.0


def _setup(data_dir: Path) -> None:
    os.environ["CHATSITE_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _generate(*, messages: int, users: int, days: int, now: datetime, seed: int) -> dict[str, int]:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import transaction

    from analytics import durations, rollup
    from analytics.models import DayCounter, DayStat, MinuteCounter, Retention, UserDay
    from chat.models import Connection
    from chat.moderation_models import Report

    rng = random.Random(seed)
    today = now.date()
    first = today - timedelta(days=days - 1)
    User = get_user_model()
    with transaction.atomic():
        User.objects.bulk_create(
            [
                User(
                    username=f"u{n}",
                    password="!",
                    date_joined=datetime.combine(first, datetime.min.time(), tzinfo=UTC)
                    + timedelta(seconds=rng.randrange(days * 86_400)),
                )
                for n in range(users)
            ],
            batch_size=2000,
        )
        mod = User.objects.create(username="bench-mod", password="!", is_staff=True)
        group, _ = Group.objects.get_or_create(name=settings.AUTH_MODERATOR_GROUP)
        mod.groups.add(group)
    joined = list(User.objects.exclude(pk=mod.pk).values_list("pk", "date_joined"))

    # User-days: each user active on about a quarter of the days since joining.
    user_days: list[tuple[object, str]] = []
    for pk, at in joined:
        for n in range((today - at.date()).days + 1):
            if rng.random() < 0.25:
                user_days.append((at.date() + timedelta(days=n), str(pk)))
    per_user_day, extra = divmod(messages, max(1, len(user_days)))
    rooms = [f"room-{n}" for n in range(100)]
    room_day: dict[tuple[object, str], int] = {}
    sent = 0
    rows = []
    for index, (day, user_id) in enumerate(user_days):
        count = per_user_day + (index < extra)
        sent += count
        rows.append(UserDay(day=day, user_id=user_id, messages=count, sockets=1))
        if count:
            key = (day, rng.choice(rooms))
            room_day[key] = room_day.get(key, 0) + count
    with transaction.atomic():
        UserDay.objects.bulk_create(rows, batch_size=5000)
        DayCounter.objects.bulk_create(
            [DayCounter(day=d, name="messages", key=r, value=v) for (d, r), v in room_day.items()], batch_size=5000
        )
        histograms: dict[tuple[object, str, str], int] = {}
        for n in range(days):
            day = first + timedelta(days=n)
            for name, seconds in [("first_reply", rng.expovariate(1 / 90)) for _ in range(len(rooms) * 6)] + [
                ("resolve", rng.uniform(60, 86_400)) for _ in range(20)
            ]:
                key = (day, name, durations.bucket(seconds))
                histograms[key] = histograms.get(key, 0) + 1
        DayCounter.objects.bulk_create(
            [DayCounter(day=d, name=name, key=key, value=v) for (d, name, key), v in histograms.items()],
            batch_size=5000,
        )
        for n in range(days):
            day = first + timedelta(days=n)
            DayCounter.objects.bulk_create(
                [
                    DayCounter(day=day, name="reports_opened", key=rng.choice(rooms[:10]), value=1 + n % 3),
                    DayCounter(day=day, name="reports_resolved", key="", value=1 + n % 3),
                    DayCounter(day=day, name="mod_action", key="message_hide", value=n % 4),
                    DayCounter(day=day, name="mod_action", key="report_resolve", value=1 + n % 3),
                ]
            )
            stats = (
                (rollup.WAU, users / 3),
                (rollup.MAU, users / 2),
                (rollup.PEAK_USERS, users / 20),
                (rollup.NEW_USERS, users / days),
            )
            for name, value in stats:
                DayStat.objects.create(day=day, name=name, value=value, computed_at=now)
        for week in range(days // 7 + 1):
            cohort = rollup.week_of(first) + timedelta(weeks=week)
            for offset in range(1, 5):
                Retention.objects.create(
                    cohort=cohort, offset=offset, cohort_size=users // 13, active=users // 26, computed_at=now
                )
        minute = now.replace(second=0, microsecond=0)
        MinuteCounter.objects.bulk_create(
            [MinuteCounter(minute=minute - timedelta(minutes=n), messages=rng.randrange(50, 200)) for n in range(1440)]
        )
        ttl = int(now.timestamp()) + 3600
        Connection.objects.bulk_create(
            [
                Connection(
                    connection_id=f"c{n}",
                    user_id=str(joined[n % len(joined)][0]),
                    username="x",
                    connected_at=now,
                    ttl=ttl,
                    instance_id=f"i{n % 4}",
                )
                for n in range(2000)
            ]
        )
        Report.objects.bulk_create(
            [
                Report(
                    room_id="room-1",
                    message_id=f"m{n}",
                    seq=n,
                    author_id="1",
                    author_username="u1",
                    text="",
                    reporter_id=joined[n][0],
                    reason="bench",
                    created_at=now,
                )
                for n in range(50)
            ]
        )
    return {"messages": sent, "users": users, "user_days": len(user_days), "room_days": len(room_day), "mod": mod.pk}


def _open(mod_pk: int, days_list: list[int], repeats: int) -> dict[int, list[tuple[float, float]]]:
    """(wall ms, CPU ms) per opening. The CPU time is this process's (SQLite runs in it): on
    a machine shared with other work it is the figure that does not grow with the load."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    client = Client()
    client.force_login(get_user_model().objects.get(pk=mod_pk))
    timings: dict[int, list[tuple[float, float]]] = {}
    for days in days_list:
        client.get(f"/admin/?days={days}", HTTP_HOST="127.0.0.1")  # warm: templates compiled, connection open
        for _ in range(repeats):
            started, cpu = time.perf_counter(), time.process_time()
            response = client.get(f"/admin/?days={days}", HTTP_HOST="127.0.0.1")
            timings.setdefault(days, []).append(
                ((time.perf_counter() - started) * 1000, (time.process_time() - cpu) * 1000)
            )
            assert response.status_code == 200, response.status_code
    return timings


def _hook_cost(count: int, now: datetime) -> tuple[float, float]:
    """Microseconds per message counted: written through (a transaction each, ANALYTICS_FLUSH_SECONDS=0),
    and batched (queued, then one flush of all of them: what a 2-second flush interval does)."""
    from analytics import batch
    from analytics.services import message_stored_sync

    started = time.perf_counter()
    for n in range(count):
        message_stored_sync(room_id=f"room-{n % 10}", user_id=str(n % 50), at=now + timedelta(seconds=n))
    through = (time.perf_counter() - started) / count * 1e6
    later = now + timedelta(days=1)
    started = time.perf_counter()
    for n in range(count):
        # As batch.add does, without its thread.
        batch._pending.append((f"room-{n % 10}", str(n % 50), later + timedelta(seconds=n), False))
    batch.flush()
    return through, (time.perf_counter() - started) / count * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--hook-calls", type=int, default=2000)
    parser.add_argument(
        "--keep", type=Path, help="use (and keep) this data directory instead of a scratch one; reuse its history"
    )
    parser.add_argument("--seed", type=int, default=21)
    args = parser.parse_args()

    data_dir = args.keep or Path(tempfile.mkdtemp(prefix="chatsite-dash-"))
    reuse = bool(args.keep and (args.keep / "db.sqlite3").exists())
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        _setup(data_dir)
        from chat import services

        now = services.utcnow()
        if reuse:
            from django.contrib.auth import get_user_model

            mod = get_user_model().objects.get(username="bench-mod").pk
            print(f"history: the one already in {data_dir}")
        else:
            started = time.monotonic()
            made = _generate(messages=args.messages, users=args.users, days=args.days, now=now, seed=args.seed)
            mod = made["mod"]
            print(
                f"history: {made['messages']:,} messages, {made['users']:,} users, {made['user_days']:,} user-days, "
                f"{made['room_days']:,} room-days (generated in {time.monotonic() - started:.0f} s)"
            )
        timings = _open(mod, [7, 30, 90], args.repeats)
        worst_median = 0.0
        print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        for days, values in timings.items():
            wall = statistics.median(w for w, _ in values)
            cpu = statistics.median(c for _, c in values)
            worst_median = max(worst_median, cpu)
            print(
                f"/admin/?days={days}: median {wall:.0f} ms wall ({cpu:.0f} ms CPU), "
                f"worst {max(w for w, _ in values):.0f} ms wall over {len(values)} openings"
            )
        if not reuse:
            through, batched = _hook_cost(args.hook_calls, now + timedelta(days=1))
            print(f"counting a message: {through:.0f} µs written through, {batched:.0f} µs batched")
        if worst_median >= BUDGET_MS:
            print(f"FAIL: a median opening took {worst_median:.0f} ms of CPU (budget {BUDGET_MS:.0f} ms)")
            return 1
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
