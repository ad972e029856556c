"""Analytics reads: the dashboard's figures, from the rollup tables only.

Nothing here scans messages (the store may be DynamoDB, and messages expire); each figure
is one grouped query over day rows, so the cost follows days x rooms and the number of
active users, not the number of messages (bench/dashboard.py measures it).
Per-user figures (`top_senders`) are for moderators only: the view checks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Final

from django.contrib.auth import get_user_model
from django.db.models import Count, Sum

from analytics import durations, rollup
from analytics.models import DayCounter, DayStat, MinuteCounter, Retention, UserDay
from analytics.services import (
    DM_MESSAGES,
    FIRST_REPLY,
    MESSAGES,
    MOD_ACTION,
    REPORTS_OPENED,
    REPORTS_RESOLVED,
    RESOLVE,
)
from chat.moderation_models import Report
from chat.storage import get_store

RANGES: Final = (7, 30, 90)
TOP_ROOMS: Final = 8
SENDERS_DAYS: Final = 7


@dataclass(frozen=True, slots=True)
class Series:
    """One chart: a value per day (or per label), in order."""

    key: str
    title: str
    labels: list[str]
    values: list[float]
    unit: str = ""


@dataclass(frozen=True, slots=True)
class RoomTrend:
    room_id: str
    messages: int
    first_half: int
    second_half: int
    daily: list[int]

    @property
    def trend(self) -> str:
        if self.first_half == self.second_half:
            return "flat"
        return "up" if self.second_half > self.first_half else "down"


@dataclass(frozen=True, slots=True)
class Engagement:
    days: int
    first: date
    last: date
    dau: Series
    wau: Series
    mau: Series
    messages: Series
    new_users: Series
    peak_users: Series
    dau_mau: float | None
    latest_dau: int
    latest_wau: int
    latest_mau: int
    share: dict[str, int]
    dm_share: float | None
    first_reply_median: float | None
    busiest_rooms: list[RoomTrend]
    retention: list[tuple[date, int, list[int | None]]]


@dataclass(frozen=True, slots=True)
class ModerationFigures:
    opened: Series
    resolved: Series
    resolve_median: float | None
    actions: Series
    top_reported_rooms: Series
    open_reports: int


@dataclass(frozen=True, slots=True)
class Live:
    at: datetime
    sockets: int
    users_online: int
    messages_last_minute: int
    messages_per_minute_5m: float
    open_reports: int
    delivery: dict[str, float | None] = field(default_factory=dict)


def day_range(*, days: int, today: date) -> list[date]:
    return [today - timedelta(days=days - 1 - n) for n in range(days)]


def _per_day(days: list[date], found: Mapping[date, float]) -> list[float]:
    return [float(found.get(day, 0)) for day in days]


def _labels(days: list[date]) -> list[str]:
    return [day.isoformat() for day in days]


def _median(name: str, first: date, last: date) -> float | None:
    """The median of a range's durations, from their histogram (within 2.5 %)."""
    return durations.median(_counter_by_key(name, first, last))


def _counter_by_day(name: str | tuple[str, ...], first: date, last: date) -> dict[date, float]:
    """A counter's total per day; a tuple of names adds them up (messages: rooms' and DMs')."""
    names = (name,) if isinstance(name, str) else name
    rows = (
        DayCounter.objects.filter(name__in=names, day__gte=first, day__lte=last)
        .values("day")
        .annotate(total=Sum("value"))
        .values_list("day", "total")
    )
    return dict(rows)


def _counter_by_key(name: str, first: date, last: date, *, limit: int | None = None) -> list[tuple[str, int]]:
    rows = (
        DayCounter.objects.filter(name=name, day__gte=first, day__lte=last)
        .values("key")
        .annotate(total=Sum("value"))
        .order_by("-total", "key")
        .values_list("key", "total")
    )
    return list(rows[:limit] if limit else rows)


def _stat(name: str, first: date, last: date) -> dict[date, float]:
    return dict(DayStat.objects.filter(name=name, day__gte=first, day__lte=last).values_list("day", "value"))


def _busiest_rooms(days: list[date], by_room: list[tuple[str, int]]) -> list[RoomTrend]:
    first, last = days[0], days[-1]
    top = by_room[:TOP_ROOMS]
    rows = DayCounter.objects.filter(
        name=MESSAGES, day__gte=first, day__lte=last, key__in=[room for room, _ in top]
    ).values_list("key", "day", "value")
    daily: dict[str, dict[date, int]] = defaultdict(dict)
    for room_id, day, value in rows:
        daily[room_id][day] = value
    half = len(days) // 2
    trends = []
    for room_id, total in top:
        series = [daily[room_id].get(day, 0) for day in days]
        trends.append(
            RoomTrend(
                room_id=room_id,
                messages=total,
                first_half=sum(series[:half]),
                second_half=sum(series[len(days) - half :]),
                daily=series,
            )
        )
    return trends


def retention_table(*, first: date, last: date) -> list[tuple[date, int, list[int | None]]]:
    """(join week, users who joined, active in weeks +1..+4 — None while that week is ahead)."""
    table: dict[date, tuple[int, list[int | None]]] = {}
    rows = Retention.objects.filter(cohort__gte=rollup.week_of(first), cohort__lte=last).order_by("cohort", "offset")
    for row in rows:
        _, weeks = table.setdefault(row.cohort, (row.cohort_size, [None] * rollup.RETENTION_WEEKS))
        weeks[row.offset - 1] = row.active
    return [(cohort, size, weeks) for cohort, (size, weeks) in sorted(table.items())]


def engagement(*, days: int, today: date) -> Engagement:
    span = day_range(days=days, today=today)
    first, last = span[0], span[-1]
    labels = _labels(span)
    dau = dict(
        UserDay.objects.filter(day__gte=first, day__lte=last)
        .values("day")
        .annotate(users=Count("id"))
        .values_list("day", "users")
    )
    wau, mau = _stat(rollup.WAU, first, last), _stat(rollup.MAU, first, last)
    latest_dau = int(dau.get(last, 0))
    latest_wau = int(wau.get(last, 0))
    latest_mau = int(mau.get(last, 0))
    by_room = _counter_by_key(MESSAGES, first, last)
    in_rooms = sum(total for _, total in by_room)
    in_dms = int(sum(_counter_by_day(DM_MESSAGES, first, last).values()))
    return Engagement(
        days=days,
        first=first,
        last=last,
        dau=Series("dau", "Daily active users", labels, _per_day(span, dau), "users"),
        wau=Series("wau", "Weekly active users (7 days to each day)", labels, _per_day(span, wau), "users"),
        mau=Series("mau", "Monthly active users (30 days to each day)", labels, _per_day(span, mau), "users"),
        messages=Series(
            "messages",
            "Messages per day",
            labels,
            _per_day(span, _counter_by_day((MESSAGES, DM_MESSAGES), first, last)),
            "messages",
        ),
        new_users=Series(
            "new_users", "New users per day", labels, _per_day(span, _stat(rollup.NEW_USERS, first, last)), "users"
        ),
        peak_users=Series(
            "peak_users",
            "Peak concurrent users per day",
            labels,
            _per_day(span, _stat(rollup.PEAK_USERS, first, last)),
            "users",
        ),
        dau_mau=(latest_dau / latest_mau) if latest_mau else None,
        latest_dau=latest_dau,
        latest_wau=latest_wau,
        latest_mau=latest_mau,
        share={"rooms": in_rooms, "direct messages": in_dms},
        dm_share=in_dms / (in_rooms + in_dms) if in_rooms + in_dms else None,
        first_reply_median=_median(FIRST_REPLY, first, last),
        busiest_rooms=_busiest_rooms(span, by_room),
        retention=retention_table(first=first - timedelta(weeks=rollup.RETENTION_WEEKS), last=last),
    )


def top_senders(*, today: date, days: int = SENDERS_DAYS, limit: int = 10) -> list[tuple[str, int]]:
    """(username, messages) of the busiest senders of the last week: per-user, so moderators
    only. A week, whatever the page's range: a user-day row per active user per day makes a
    90-day grouping the page's slowest query by far (docs/performance.md)."""
    first = today - timedelta(days=days - 1)
    rows = list(
        UserDay.objects.filter(day__gte=first, day__lte=today)
        .values("user_id")
        .annotate(total=Sum("messages"))
        .filter(total__gt=0)
        .order_by("-total", "user_id")
        .values_list("user_id", "total")[:limit]
    )
    ids = [int(u) for u, _ in rows if u.isdigit()]
    names = dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username"))
    return [(names.get(int(u), u) if u.isdigit() else u, total) for u, total in rows]


def moderation(*, days: int, today: date) -> ModerationFigures:
    span = day_range(days=days, today=today)
    first, last = span[0], span[-1]
    labels = _labels(span)
    actions = _counter_by_key(MOD_ACTION, first, last)
    rooms = _counter_by_key(REPORTS_OPENED, first, last, limit=TOP_ROOMS)
    return ModerationFigures(
        opened=Series(
            "reports_opened",
            "Reports opened per day",
            labels,
            _per_day(span, _counter_by_day(REPORTS_OPENED, first, last)),
        ),
        resolved=Series(
            "reports_resolved",
            "Reports closed per day",
            labels,
            _per_day(span, _counter_by_day(REPORTS_RESOLVED, first, last)),
        ),
        resolve_median=_median(RESOLVE, first, last),
        actions=Series(
            "actions", "Moderation actions by type", [a for a, _ in actions], [float(n) for _, n in actions]
        ),
        top_reported_rooms=Series(
            "reported_rooms", "Most reported rooms", [r for r, _ in rooms], [float(n) for _, n in rooms]
        ),
        open_reports=Report.objects.filter(status=Report.OPEN).count(),
    )


def live(*, now: datetime) -> Live:
    """What is happening now, across every process (the connections table and the minute
    counters are shared, and so are the delivery figures: analytics.live)."""
    from analytics import live as delivery

    sockets, users = get_store().connections_live_summary(now=now)
    this_minute = now.replace(second=0, microsecond=0)
    minutes = dict(
        MinuteCounter.objects.filter(minute__gte=this_minute - timedelta(minutes=5)).values_list("minute", "messages")
    )
    last_five = sum(v for m, v in minutes.items() if m < this_minute)
    return Live(
        at=now,
        sockets=sockets,
        users_online=users,
        messages_last_minute=int(minutes.get(this_minute - timedelta(minutes=1), 0)),
        messages_per_minute_5m=last_five / 5,
        open_reports=Report.objects.filter(status=Report.OPEN).count(),
        delivery=delivery.window(now=now),
    )
