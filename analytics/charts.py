"""Charts as server-rendered SVG: no script, no CDN, nothing a strict CSP refuses.

Pure functions from numbers to markup (escaped with format_html), so they are tested
without a browser. Colours come from classes in static/analytics/dashboard.css, which follow
the admin's light and dark themes. Every chart is role="img" with a title; the page puts
its numbers in a table beside it for screen readers, and offers them as CSV.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

WIDTH: Final = 640
HEIGHT: Final = 180
PAD_LEFT: Final = 44
PAD_BOTTOM: Final = 22
PAD_TOP: Final = 10


def _nice_max(value: float) -> float:
    """The axis top: 1, 2 or 5 times a power of ten, at least the largest value."""
    if value <= 0:
        return 1.0
    step = 1.0
    while step * 10 <= value:
        step *= 10
    for factor in (1, 2, 5, 10):
        if factor * step >= value:
            return factor * step
    return 10 * step


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() or value >= 100 else f"{value:,.2f}".rstrip("0")


def _axis(top: float, plot_height: float) -> SafeString:
    lines = []
    for fraction in (0.0, 0.5, 1.0):
        y = PAD_TOP + plot_height * (1 - fraction)
        lines.append(
            format_html(
                '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"></line>'
                '<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>',
                PAD_LEFT,
                WIDTH,
                f"{y:.1f}",
                f"{y:.1f}",
                PAD_LEFT - 4,
                f"{y + 4:.1f}",
                _number(top * fraction),
            )
        )
    return mark_safe("".join(lines))  # noqa: S308 - parts built by format_html


def _x_labels(labels: Sequence[str], slot: float, plot_height: float) -> SafeString:
    every = max(1, len(labels) // 6)
    picked = [(i, label) for i, label in enumerate(labels) if i % every == 0]
    return format_html_join(
        "",
        '<text class="tick" x="{}" y="{}" text-anchor="middle">{}</text>',
        ((f"{PAD_LEFT + slot * (i + 0.5):.1f}", f"{PAD_TOP + plot_height + 16:.1f}", label[5:]) for i, label in picked),
    )


def _frame(chart_id: str, title: str, body: SafeString) -> SafeString:
    return format_html(
        '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-labelledby="{}-title" '
        'xmlns="http://www.w3.org/2000/svg"><title id="{}-title">{}</title>{}</svg>',
        WIDTH,
        HEIGHT,
        chart_id,
        chart_id,
        title,
        body,
    )


def bars(chart_id: str, title: str, labels: Sequence[str], values: Sequence[float]) -> SafeString:
    """One bar per label (a day, usually), on a shared axis from zero."""
    plot_height = HEIGHT - PAD_TOP - PAD_BOTTOM
    top = _nice_max(max(values, default=0))
    slot = (WIDTH - PAD_LEFT) / max(1, len(values))
    rects = format_html_join(
        "",
        '<rect class="bar" x="{}" y="{}" width="{}" height="{}"><title>{}: {}</title></rect>',
        (
            (
                f"{PAD_LEFT + slot * i + slot * 0.1:.1f}",
                f"{PAD_TOP + plot_height * (1 - v / top):.1f}",
                f"{slot * 0.8:.1f}",
                f"{plot_height * v / top:.1f}",
                labels[i],
                _number(v),
            )
            for i, v in enumerate(values)
        ),
    )
    body = mark_safe(_axis(top, plot_height) + rects + _x_labels(labels, slot, plot_height))  # noqa: S308
    return _frame(chart_id, title, body)


def lines(chart_id: str, title: str, labels: Sequence[str], named: Sequence[tuple[str, Sequence[float]]]) -> SafeString:
    """Several series over the same days, one polyline each (classes line-0, line-1, ...),
    with a legend."""
    plot_height = HEIGHT - PAD_TOP - PAD_BOTTOM
    top = _nice_max(max((v for _, values in named for v in values), default=0))
    slot = (WIDTH - PAD_LEFT) / max(1, len(labels))
    polylines = []
    for n, (name, values) in enumerate(named):
        points = " ".join(
            f"{PAD_LEFT + slot * (i + 0.5):.1f},{PAD_TOP + plot_height * (1 - v / top):.1f}"
            for i, v in enumerate(values)
        )
        polylines.append(
            format_html(
                '<polyline class="line line-{}" points="{}"><title>{}</title></polyline>'
                '<text class="legend line-{}" x="{}" y="{}">{}</text>',
                n,
                points,
                name,
                n,
                PAD_LEFT + 8 + 90 * n,
                PAD_TOP + 10,
                name,
            )
        )
    body = mark_safe(_axis(top, plot_height) + "".join(polylines) + _x_labels(labels, slot, plot_height))  # noqa: S308
    return _frame(chart_id, title, body)


def hbars(chart_id: str, title: str, labels: Sequence[str], values: Sequence[float]) -> SafeString:
    """Horizontal bars for categories (rooms, action types), largest first."""
    row = 22
    height = max(row * len(values) + 8, 30)
    top = max(values, default=0) or 1
    label_width = 170
    parts = format_html_join(
        "",
        '<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>'
        '<rect class="bar" x="{}" y="{}" width="{}" height="{}"><title>{}: {}</title></rect>'
        '<text class="tick" x="{}" y="{}">{}</text>',
        (
            (
                label_width - 6,
                row * i + 18,
                label[:26],
                label_width,
                row * i + 5,
                f"{(WIDTH - label_width - 60) * v / top:.1f}",
                row - 8,
                label,
                _number(v),
                f"{label_width + (WIDTH - label_width - 60) * v / top + 4:.1f}",
                row * i + 18,
                _number(v),
            )
            for i, (label, v) in enumerate(zip(labels, values, strict=True))
        ),
    )
    if not values:
        parts = format_html('<text class="tick" x="10" y="20">{}</text>', "nothing in this range")
    return format_html(
        '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-labelledby="{}-title" '
        'xmlns="http://www.w3.org/2000/svg"><title id="{}-title">{}</title>{}</svg>',
        WIDTH,
        height,
        chart_id,
        chart_id,
        title,
        parts,
    )
