"""Switching the DynamoDB backend on: a half-configured deployment fails at startup, naming what is missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.fixtures import warm
from tests.fixtures.servers import ROOT, base_env

TABLES = {
    "DYNAMODB_CONNECTIONS_TABLE": "chat-connections",
    "DYNAMODB_MESSAGES_TABLE": "chat-messages",
    "DYNAMODB_ROOMS_TABLE": "chat-rooms",
}


def manage_check(data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return warm.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=base_env(data_dir, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_dynamodb_backend_without_a_table_name_fails_at_startup(tmp_path: Path) -> None:
    """CHAT_STORAGE_BACKEND=dynamodb with DYNAMODB_ROOMS_TABLE unset stops `manage.py check`, naming it."""
    env = {**TABLES, "CHAT_STORAGE_BACKEND": "dynamodb"}
    del env["DYNAMODB_ROOMS_TABLE"]
    result = manage_check(tmp_path, **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "DYNAMODB_ROOMS_TABLE" in result.stderr
    assert "DYNAMODB_MESSAGES_TABLE" not in result.stderr
