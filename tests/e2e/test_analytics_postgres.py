"""The analytics tests on PostgreSQL: the upserts (INSERT ... ON CONFLICT), the rollups and the
dashboard's grouped queries on the production database, not only SQLite.

Runs analytics/tests in a pytest subprocess whose DATABASE_URL names a fresh database (pytest-
django makes its test database beside it); skips where no PostgreSQL answers.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.fixtures import warm
from tests.fixtures.postgres import postgres_url  # noqa: F401 - the fixture
from tests.fixtures.servers import ROOT, base_env

pytestmark = pytest.mark.timeout(600)


def test_the_analytics_suite_passes_on_postgresql(postgres_url: str, tmp_path: object) -> None:  # noqa: F811
    """Seeded history, rollups, the dashboard's numbers and the report fix hold on PostgreSQL (local backend)."""
    env = base_env(tmp_path, DATABASE_URL=postgres_url)  # type: ignore[arg-type]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "analytics/tests", "-p", "no:warnings", "-k", "not dynamodb"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary and "failed" not in summary, summary
    vendor = warm.run(
        [sys.executable, "manage.py", "shell", "-c", "from django.db import connection; print(connection.vendor)"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert vendor.stdout.strip().endswith("postgresql")  # the suite above ran on it
