"""Fixtures for the deployment tests: the Dockerfile's collectstatic output and a production environment."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def dockerfile_run_env(command: str) -> dict[str, str]:
    """The VAR=value assignments of the Dockerfile's RUN line that runs `command`."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if line.startswith("RUN ") and command in line:
            return dict(re.findall(r"\b([A-Z][A-Z0-9_]*)=(\S+)", line.split("python manage.py")[0]))
    raise AssertionError(f"no RUN line with {command!r} in {DOCKERFILE}")


def dockerfile_env() -> dict[str, str]:
    """The ENV the image sets (the ENV instruction, continued lines joined)."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(re.findall(r"\b([A-Z][A-Z0-9_]*)=(\S+)", line))
    return env


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any Chatsite or Django setting, plus `extra`."""
    prefixes = ("DJANGO_", "CHAT_", "CHATSITE_", "REDIS_", "DYNAMODB_", "COGNITO_", "METRICS_", "LOG_", "DATABASE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(extra)
    return env


def production_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The variables production requires (.env.example), pointing at local stand-ins."""
    required = {
        "CHATSITE_ENV": "production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "chat.example.com",
        "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "CHATSITE_DATA_DIR": str(tmp),
    }
    return clean_env(**{**required, **extra})


@pytest.fixture(scope="session")
def collected_static(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`manage.py collectstatic` run exactly as the Dockerfile runs it (production storage)."""
    out = tmp_path_factory.mktemp("staticfiles")
    env = clean_env(**{k: v for k, v in dockerfile_env().items() if k != "PATH"})
    env.update(dockerfile_run_env("collectstatic"))
    env["DJANGO_STATIC_ROOT"] = str(out)
    env["CHATSITE_DATA_DIR"] = str(tmp_path_factory.mktemp("collectstatic-data"))  # not the host's /var/lib
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=300,
    )
    return out
