"""The dashboard: the admin index for staff (chat.admin_site wires these in).

Thin: every number comes from analytics.selectors; this module only lays figures out as
charts, tables and CSV, from one list of `Chart`s so that a chart, its table and its CSV
cannot disagree. The page sends a strict Content-Security-Policy: its script and styles are
static files, its charts inline SVG.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from accounts.users import is_moderator
from analytics import charts, selectors
from chat import services

DEFAULT_DAYS: Final = 30
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@dataclass(frozen=True, slots=True)
class Chart:
    key: str
    title: str
    svg: SafeString
    headers: list[str]
    rows: list[list[Any]]
    moderators_only: bool = False

    @property
    def table(self) -> SafeString:
        """The chart's numbers as an HTML table (built here, not in a template loop: a 90-day
        page has a thousand rows, and this is several times quicker)."""
        head = format_html_join("", '<th scope="col">{}</th>', ((h,) for h in self.headers))
        body = format_html_join(
            "",
            '<tr><th scope="row">{}</th>{}</tr>',
            ((row[0], format_html_join("", "<td>{}</td>", ((cell,) for cell in row[1:]))) for row in self.rows),
        )
        if not self.rows:
            body = format_html('<tr><td colspan="{}">No data in this range.</td></tr>', len(self.headers))
        return format_html(
            '<table><caption class="visually-hidden">{}</caption><thead><tr>{}</tr></thead><tbody>{}</tbody></table>',
            self.title,
            head,
            body,
        )


def chosen_days(request: HttpRequest) -> int:
    try:
        days = int(request.GET.get("days", DEFAULT_DAYS))
    except ValueError:
        return DEFAULT_DAYS
    return days if days in selectors.RANGES else DEFAULT_DAYS


def _day_chart(series: selectors.Series) -> Chart:
    return Chart(
        key=series.key,
        title=series.title,
        svg=charts.bars(series.key, series.title, series.labels, series.values),
        headers=["day", series.unit or "count"],
        rows=[[label, int(value)] for label, value in zip(series.labels, series.values, strict=True)],
    )


def _category_chart(series: selectors.Series, header: str, *, moderators_only: bool = False) -> Chart:
    return Chart(
        key=series.key,
        title=series.title,
        svg=charts.hbars(series.key, series.title, series.labels, series.values),
        headers=[header, "count"],
        rows=[[label, int(value)] for label, value in zip(series.labels, series.values, strict=True)],
        moderators_only=moderators_only,
    )


def _percent(part: int, whole: int) -> str:
    """A share with one decimal ("12.5"); "" of nothing (no messages in range)."""
    return f"{100 * part / whole:.1f}" if whole else ""


def build_charts(*, days: int, today: date, moderator: bool) -> tuple[selectors.Engagement, Any, list[Chart]]:
    """Every chart of the page (those for moderators only when `moderator`)."""
    eng = selectors.engagement(days=days, today=today)
    active = Chart(
        key="active",
        title="Active users: daily, weekly, monthly",
        svg=charts.lines(
            "active",
            "Active users: daily, weekly, monthly",
            eng.dau.labels,
            [("DAU", eng.dau.values), ("WAU", eng.wau.values), ("MAU", eng.mau.values)],
        ),
        headers=["day", "DAU", "WAU", "MAU"],
        rows=[
            [label, int(d), int(w), int(m)]
            for label, d, w, m in zip(eng.dau.labels, eng.dau.values, eng.wau.values, eng.mau.values, strict=True)
        ],
    )
    rooms = Chart(
        key="rooms",
        title="Busiest rooms (messages in range)",
        svg=charts.hbars(
            "rooms",
            "Busiest rooms (messages in range)",
            [f"#{r.room_id}" for r in eng.busiest_rooms],
            [r.messages for r in eng.busiest_rooms],
        ),
        headers=["room", "messages", "first half", "second half", "trend"],
        rows=[[r.room_id, r.messages, r.first_half, r.second_half, r.trend] for r in eng.busiest_rooms],
    )
    share = Chart(
        key="share",
        title="Messages in rooms and direct messages",
        svg=charts.hbars("share", "Messages in rooms and direct messages", list(eng.share), list(eng.share.values())),
        headers=["where", "messages", "share %"],
        rows=[[where, count, _percent(count, sum(eng.share.values()))] for where, count in eng.share.items()],
    )
    retention = Chart(
        key="retention",
        title="Retention by join week",
        svg=SafeString(""),
        headers=["join week", "joined", "week +1", "week +2", "week +3", "week +4"],
        rows=[
            [cohort.isoformat(), size, *("" if w is None else w for w in weeks)]
            for cohort, size, weeks in eng.retention
        ],
    )
    found = [
        active,
        _day_chart(eng.messages),
        _day_chart(eng.new_users),
        _day_chart(eng.peak_users),
        rooms,
        share,
        retention,
    ]
    mod = None
    if moderator:
        mod = selectors.moderation(days=days, today=today)
        senders = selectors.top_senders(today=today)
        found += [
            _day_chart(mod.opened),
            _day_chart(mod.resolved),
            _category_chart(mod.actions, "action", moderators_only=True),
            _category_chart(mod.top_reported_rooms, "room", moderators_only=True),
            Chart(
                key="senders",
                title="Busiest senders (last 7 days)",
                svg=charts.hbars(
                    "senders", "Busiest senders (last 7 days)", [u for u, _ in senders], [n for _, n in senders]
                ),
                headers=["user", "messages"],
                rows=[[u, n] for u, n in senders],
                moderators_only=True,
            ),
        ]
    return eng, mod, found


def dashboard_context(request: HttpRequest) -> dict[str, Any]:
    days = chosen_days(request)
    moderator = is_moderator(request.user)
    now = services.utcnow()
    eng, mod, found = build_charts(days=days, today=now.date(), moderator=moderator)
    return {
        "dashboard": True,
        "days": days,
        "ranges": selectors.RANGES,
        "engagement": eng,
        "moderation_figures": mod,
        "charts": {chart.key: chart for chart in found},
        "live": selectors.live(now=now),
        "is_moderator": moderator,
    }


def live(request: HttpRequest) -> JsonResponse:
    """The "now" figures as JSON, polled by static/analytics/dashboard.js every few seconds."""
    figures = selectors.live(now=services.utcnow())
    return JsonResponse(
        {
            "at": figures.at.isoformat(),
            "sockets": figures.sockets,
            "usersOnline": figures.users_online,
            "messagesLastMinute": figures.messages_last_minute,
            "messagesPerMinute5m": figures.messages_per_minute_5m,
            "openReports": figures.open_reports if is_moderator(request.user) else None,
            "delivery": figures.delivery,
        },
        headers={"Cache-Control": "no-store"},
    )


def chart_csv(request: HttpRequest, chart: str) -> HttpResponse:
    days = chosen_days(request)
    _, _, found = build_charts(days=days, today=services.utcnow().date(), moderator=is_moderator(request.user))
    picked = next((c for c in found if c.key == chart), None)
    if picked is None:
        raise Http404("No such chart")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="chatsite-{chart}-{days}d.csv"'
    writer = csv.writer(response)
    writer.writerow(picked.headers)
    writer.writerows(picked.rows)
    return response
