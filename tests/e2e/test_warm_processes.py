"""The suite's Chatsite processes are forks of a warm interpreter (tests/fixtures/warm.py).

Every end-to-end test trusts that a forked `manage.py` or daphne behaves as the same command
started cold with the same environment would: its own settings, its exit code, its output,
its exit handlers. These tests hold the fork server to that.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures import warm
from tests.fixtures.servers import DaphneServer, base_env

pytestmark = pytest.mark.skipif(warm.COLD_START, reason="CHAT_TEST_COLD_START=1: nothing is forked")


def shell(data_dir: Path, code: str, *, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return warm.run(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", code],
        env=base_env(data_dir, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_each_fork_reads_the_settings_of_its_own_environment(tmp_path: Path) -> None:
    """Two forks with different environments see different settings: nothing configured is shared."""
    code = (
        "from django.conf import settings; "
        "print(settings.DATABASES['default']['NAME'], settings.CHAT_PRESENCE_BATCH_SECONDS)"
    )
    one = shell(tmp_path / "one", code)
    two = shell(tmp_path / "two", code, CHAT_PRESENCE_BATCH_SECONDS="2")
    assert one.returncode == 0, one.stderr
    assert one.stdout.split() == [str(tmp_path / "one" / "db.sqlite3"), "0.5"]
    assert two.returncode == 0, two.stderr
    assert two.stdout.split() == [str(tmp_path / "two" / "db.sqlite3"), "2.0"]


def test_a_fork_answers_with_its_exit_code_its_two_outputs_and_its_exit_handlers(tmp_path: Path) -> None:
    """What a cold command would give: the code it exits with, stdout and stderr apart, and the
    atexit handlers run on the way out (the analytics batch flushes there)."""
    code = (
        "import atexit, sys; atexit.register(lambda: print('flushed at exit')); "
        "print('to stdout'); print('to stderr', file=sys.stderr); sys.exit(3)"
    )
    done = shell(tmp_path, code)
    assert done.returncode == 3
    assert done.stdout.splitlines() == ["to stdout", "flushed at exit"]
    assert done.stderr.splitlines() == ["to stderr"]
    with pytest.raises(subprocess.CalledProcessError) as failed:
        warm.run(
            [sys.executable, "manage.py", "no_such_command"], env=base_env(tmp_path), capture_output=True, check=True
        )
    assert b"Unknown command: 'no_such_command'" in failed.value.stderr


def test_a_fork_past_its_timeout_is_killed(tmp_path: Path) -> None:
    """subprocess.run's timeout, kept: TimeoutExpired, and the command is gone, not left running."""
    pid_file = tmp_path / "pid"
    code = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    with pytest.raises(subprocess.TimeoutExpired):
        shell(tmp_path, code, timeout=5)
    pid = int(pid_file.read_text())
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_a_forked_daphne_that_cannot_start_says_why(tmp_path: Path) -> None:
    """A half-configured server exits at start with its error in its log, as a cold one does."""
    tmp_path.mkdir(exist_ok=True)
    server = DaphneServer(tmp_path, base_env(tmp_path, CHAT_STORAGE_BACKEND="no-such-backend"))
    with pytest.raises(RuntimeError, match="server exited with 1"):
        server.start()
    assert "CHAT_STORAGE_BACKEND" in server.log()
