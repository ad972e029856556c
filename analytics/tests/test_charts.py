"""The SVG charts, without a browser: sizes follow the numbers, labels are escaped."""

from __future__ import annotations

import re

from analytics import charts


def test_bars_scale_to_a_round_axis_top_and_one_bar_per_day() -> None:
    """Each value gets a bar whose height is its share of the axis top (1, 2 or 5 x 10^n above the largest)."""
    svg = str(charts.bars("m", "Messages", ["2026-10-01", "2026-10-02", "2026-10-03"], [0, 30, 45]))
    heights = [float(h) for h in re.findall(r'<rect class="bar" [^>]*height="([\d.]+)"', svg)]
    plot = charts.HEIGHT - charts.PAD_TOP - charts.PAD_BOTTOM
    assert heights == [0.0, round(plot * 30 / 50, 1), round(plot * 45 / 50, 1)]
    assert ">50<" in svg and 'role="img"' in svg and '<title id="m-title">Messages</title>' in svg


def test_labels_and_titles_are_escaped() -> None:
    """A room id or action name cannot inject markup into the page."""
    svg = str(charts.hbars("r", "Rooms <b>", ["<script>x</script>"], [3]))
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "Rooms &lt;b&gt;" in svg


def test_an_empty_category_chart_says_so() -> None:
    """No data draws no bars and says that nothing happened in the range."""
    svg = str(charts.hbars("a", "Actions", [], []))
    assert "<rect" not in svg and "nothing in this range" in svg


def test_a_histogram_median_is_within_two_and_a_half_percent_of_the_middle_sample() -> None:
    """Medians read from 5 % buckets land within 2.5 % of the exact (low) median, from a second to a day."""
    import random
    import statistics
    from collections import Counter

    from analytics import durations

    rng = random.Random(7)
    for _ in range(50):
        samples = [rng.uniform(1, 86_400) ** rng.uniform(0.3, 1) for _ in range(rng.randrange(1, 200))]
        histogram = Counter(durations.bucket(s) for s in samples)
        exact = statistics.median_low(samples)
        found = durations.median(histogram.items())
        assert found is not None and abs(found - exact) <= 0.025 * exact + 1e-9, (found, exact)
    assert durations.median([]) is None
