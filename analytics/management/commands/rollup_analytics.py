"""`manage.py rollup_analytics`: bring the dashboard's periodic figures up to date.

Run it every few minutes (docs/operations.md); it is incremental and idempotent, so a
missed or doubled run changes nothing but freshness.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from analytics.rollup import rollup
from chat import services


class Command(BaseCommand):
    help = "Compute weekly/monthly actives, peak concurrency and retention for the days that may still change."

    def handle(self, *args: Any, **options: Any) -> None:
        result = rollup(now=services.utcnow())
        self.stdout.write(
            f"rolled up {result.days} days and {result.cohorts} join weeks; "
            f"closed {result.spans_closed} dead socket spans"
        )
