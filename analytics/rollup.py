"""The periodic rollups (`manage.py rollup_analytics`): what cannot be counted as it happens.

New users per day are counted from Django's users (signing up is not a chat service, and
grouping every user by day on each opening of the dashboard was its slowest query on SQLite).
Weekly and monthly active users need distinct counts over windows, peak concurrency needs
every socket span of a day, retention needs a cohort's later weeks. Each run recomputes
only the days that may still change: from the oldest day whose figures were computed before
that day had ended, up to today. Every figure is written with update_or_create, so running
it twice, or after a crash halfway, gives the same rows.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Final

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Min, Q

from analytics.models import DayStat, MinuteCounter, Retention, SocketSpan, UserDay
from chat.storage import get_store

WAU: Final = "wau"
MAU: Final = "mau"
PEAK_USERS: Final = "peak_users"
NEW_USERS: Final = "new_users"
RETENTION_WEEKS: Final = 4
MINUTES_KEPT: Final = timedelta(days=1)
SPANS_KEPT: Final = timedelta(days=120)
MAX_BACKFILL: Final = timedelta(days=400)


@dataclass(frozen=True, slots=True)
class RollupResult:
    days: int
    cohorts: int
    spans_closed: int


def day_start(day: date) -> datetime:
    """Midnight UTC starting `day`."""
    return datetime.combine(day, time.min, tzinfo=UTC)


def week_of(day: date) -> date:
    """The Monday starting the ISO week of `day`."""
    return day - timedelta(days=day.weekday())


def close_dead_spans(*, now: datetime) -> int:
    """Spans still open whose socket is gone from the connections table (its process died
    without closing it) end now: an over-estimate of at most the sweep interval."""
    store = get_store()
    closed = 0
    open_users = SocketSpan.objects.filter(closed_at__isnull=True).values_list("user_id", flat=True).distinct()
    for user_id in list(open_users):
        live = {c.connection_id for c in store.connections_for_user(user_id=user_id, now=now)}
        closed += (
            SocketSpan.objects.filter(user_id=user_id, closed_at__isnull=True)
            .exclude(connection_id__in=live)
            .update(closed_at=now)
        )
    return closed


def _distinct_active(first: date, last: date) -> int:
    return UserDay.objects.filter(day__gte=first, day__lte=last).values("user_id").distinct().count()


def peak_concurrent_users(day: date, *, now: datetime) -> int:
    """The most users with at least one socket open at the same moment during `day`."""
    start, end = day_start(day), day_start(day + timedelta(days=1))
    spans = SocketSpan.objects.filter(opened_at__lt=end).filter(Q(closed_at__isnull=True) | Q(closed_at__gt=start))
    events: list[tuple[datetime, int, str]] = []
    for user_id, opened, closed in spans.values_list("user_id", "opened_at", "closed_at"):
        events.append((max(opened, start), 1, user_id))
        events.append((min(closed or now, end), -1, user_id))
    events.sort(key=lambda e: (e[0], e[1]))  # a close before an open at the same instant
    sockets: dict[str, int] = defaultdict(int)
    online = peak = 0
    for _, step, user_id in events:
        before = sockets[user_id]
        sockets[user_id] = before + step
        if before == 0 and step > 0:
            online += 1
            peak = max(peak, online)
        elif before == 1 and step < 0:
            online -= 1
    return peak


def _days_to_compute(*, today: date) -> list[date]:
    """Every day since the first activity or sign-up that is not final yet (its figures were
    computed before it ended, or never), today included."""
    first_joined = get_user_model().objects.aggregate(first=Min("date_joined"))["first"]
    starts = [UserDay.objects.aggregate(first=Min("day"))["first"], first_joined.date() if first_joined else None]
    first = min([d for d in starts if d is not None], default=today)
    first = max(first, today - MAX_BACKFILL)
    computed = DayStat.objects.filter(name=PEAK_USERS, day__gte=first).values_list("day", "computed_at")
    final = {day for day, at in computed if at >= day_start(day + timedelta(days=1))}
    days = (first + timedelta(days=n) for n in range((today - first).days + 1))
    return [day for day in days if day not in final]


def _cohorts_to_compute(*, today: date) -> list[date]:
    """Join weeks whose retention may still change: their last week (N+4) has not ended
    before the previous computation, or they were never computed."""
    first_join = get_user_model().objects.aggregate(first=Min("date_joined"))["first"]
    if first_join is None:
        return []
    weeks = []
    week = week_of(first_join.date())
    while week <= week_of(today):
        weeks.append(week)
        week += timedelta(weeks=1)
    final = set(Retention.objects.filter(offset=RETENTION_WEEKS).values_list("cohort", "computed_at").iterator())
    done = {
        cohort for cohort, computed in final if computed >= day_start(cohort + timedelta(weeks=RETENTION_WEEKS + 1))
    }
    return [w for w in weeks if w not in done]


def _retention(cohort: date, *, today: date, now: datetime) -> None:
    joined = get_user_model().objects.filter(
        date_joined__gte=day_start(cohort), date_joined__lt=day_start(cohort + timedelta(weeks=1))
    )
    ids = [str(pk) for pk in joined.values_list("pk", flat=True)]
    if not ids:
        Retention.objects.filter(cohort=cohort).delete()  # nobody joined that week: no row
        return
    for offset in range(1, RETENTION_WEEKS + 1):
        week = cohort + timedelta(weeks=offset)
        if week > today:
            Retention.objects.filter(cohort=cohort, offset=offset).delete()
            continue
        active = 0
        for start in range(0, len(ids), 500):
            active += (
                UserDay.objects.filter(
                    user_id__in=ids[start : start + 500], day__gte=week, day__lt=week + timedelta(weeks=1)
                )
                .values("user_id")
                .distinct()
                .count()
            )
        Retention.objects.update_or_create(
            cohort=cohort,
            offset=offset,
            defaults={"cohort_size": len(ids), "active": active, "computed_at": now},
        )


def rollup(*, now: datetime) -> RollupResult:
    """Bring every periodic figure up to `now`; incremental and idempotent."""
    today = now.date()
    spans_closed = close_dead_spans(now=now)
    days = _days_to_compute(today=today)
    for day in days:
        figures = {
            WAU: _distinct_active(day - timedelta(days=6), day),
            MAU: _distinct_active(day - timedelta(days=29), day),
            PEAK_USERS: peak_concurrent_users(day, now=now),
            NEW_USERS: get_user_model()
            .objects.filter(date_joined__gte=day_start(day), date_joined__lt=day_start(day + timedelta(days=1)))
            .count(),
        }
        with transaction.atomic():
            for name, value in figures.items():
                DayStat.objects.update_or_create(day=day, name=name, defaults={"value": value, "computed_at": now})
    cohorts = _cohorts_to_compute(today=today)
    for cohort in cohorts:
        with transaction.atomic():
            _retention(cohort, today=today, now=now)
    MinuteCounter.objects.filter(minute__lt=now - MINUTES_KEPT).delete()
    SocketSpan.objects.filter(closed_at__lt=now - SPANS_KEPT).delete()
    return RollupResult(days=len(days), cohorts=len(cohorts), spans_closed=spans_closed)
