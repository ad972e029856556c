"""Running daphne in production: settings, the systemd unit, the container image, the documented environment."""

from __future__ import annotations

import ast
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.tests.conftest import DOCKERFILE, ROOT, dockerfile_env, production_env

pytestmark = pytest.mark.timeout(120)

UNIT = ROOT / "deploy" / "systemd" / "chatsite@.service"
# The daphne flags that must agree wherever daphne is started.
SHARED_FLAGS = (
    "--websocket-max-message-size",
    "--websocket-max-frame-size",
    "--ping-interval",
    "--ping-timeout",
    "--application-close-timeout",
)


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=90
    )


# Production settings -----------------------------------------------------------------------


def test_production_settings_pass_check_deploy_without_a_warning(tmp_path: Path) -> None:
    """`manage.py check --deploy` reports nothing for production with only the required variables."""
    result = manage(production_env(tmp_path), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_a_short_metrics_token_stops_start_up(tmp_path: Path) -> None:
    """A METRICS_TOKEN under 32 characters is refused with a message naming it."""
    result = manage(production_env(tmp_path, METRICS_TOKEN="too-short"), "check")
    assert result.returncode != 0
    assert "METRICS_TOKEN must be at least 32 characters" in result.stderr


@pytest.mark.parametrize(("value", "says"), [("0", "at least 1"), ("33", "at most 32"), ("four", "an integer")])
def test_database_open_threads_out_of_bounds_stops_start_up(tmp_path: Path, value: str, says: str) -> None:
    """DATABASE_OPEN_THREADS (a process's extra database connections) is refused outside 1-32."""
    result = manage(production_env(tmp_path, DATABASE_OPEN_THREADS=value), "check")
    assert result.returncode != 0
    assert f"DATABASE_OPEN_THREADS must be {says}" in result.stderr


def test_production_has_no_metrics_token_by_default(tmp_path: Path) -> None:
    """Without METRICS_TOKEN the production settings carry none: /metrics is staff-only."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; "
            "print(repr(settings.METRICS_TOKEN), settings.LOG_FORMAT, settings.SECURE_SSL_REDIRECT)",
        ],
        cwd=ROOT,
        env={**production_env(tmp_path), "DJANGO_SETTINGS_MODULE": "chatsite.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.split() == ["''", "json", "True"], result.stderr


@pytest.mark.parametrize("secret", ["", "arn:aws:secretsmanager:eu-west-1:1:secret:db"])
def test_postgresql_gets_the_server_side_bounds_with_or_without_a_password_secret(tmp_path: Path, secret: str) -> None:
    """Every PostgreSQL session is bounded (lock, statement, idle transaction), whether its
    password comes from the URL or from a rotated secret (the bounds were once missing there)."""
    env = {
        **production_env(tmp_path),
        "DJANGO_SETTINGS_MODULE": "chatsite.settings",
        "DATABASE_URL": "postgres://chatsite@db.internal/chatsite",
        "DATABASE_PASSWORD_SECRET": secret,
    }
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; "
            "d = settings.DATABASES['default']; print(d['ENGINE'], d['OPTIONS'].get('options'))",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    engine, _, options = result.stdout.strip().partition(" ")
    assert engine == "chatsite.db.postgresql", result.stderr
    assert options == "-c lock_timeout=3000 -c statement_timeout=10000 -c idle_in_transaction_session_timeout=5000"


# The documented environment ----------------------------------------------------------------

# Not Chatsite's settings: Django's own module switch.
NOT_SETTINGS = {"DJANGO_SETTINGS_MODULE"}
VARIABLE = re.compile(r"^[A-Z][A-Z0-9_]+$")


def _called_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return f"{ast.unparse(func.value)}.{func.attr}"
    return ""


def variables_read_by_the_app() -> set[str]:
    """Names passed to env_*() and friends, os.environ and os.getenv, and require_together lists."""
    found: set[str] = set()
    for package in ("chatsite", "chat", "accounts"):
        for path in (ROOT / package).rglob("*.py"):
            if "tests" in path.parts:
                continue
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and node.args and "env" in _called_name(node).lower():
                    first = node.args[0]
                    if isinstance(first, ast.Constant) and isinstance(first.value, str) and VARIABLE.match(first.value):
                        found.add(first.value)
                elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
                    key = node.slice
                    if isinstance(key, ast.Constant) and isinstance(key.value, str):
                        found.add(key.value)
                elif isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id.endswith(("_REQUIRED", "_OPTIONAL")) for t in node.targets
                ):
                    found.update(
                        e.value
                        for e in ast.walk(node.value)
                        if isinstance(e, ast.Constant) and isinstance(e.value, str) and VARIABLE.match(e.value)
                    )
    return found - NOT_SETTINGS


def documented_variables() -> set[str]:
    text = (ROOT / "docs" / "operations.md").read_text()
    section = text.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", section, flags=re.MULTILINE))


def example_variables() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))


def test_every_variable_the_app_reads_is_in_the_table_and_the_example() -> None:
    """docs/operations.md's table and .env.example list every environment variable the code reads."""
    read = variables_read_by_the_app()
    assert {"DJANGO_SECRET_KEY", "METRICS_TOKEN", "DYNAMODB_MESSAGES_TABLE", "COGNITO_USER_POOL_ID"} <= read
    assert read - documented_variables() == set(), "add these to docs/operations.md (Environment variables)"
    # Test hooks (refused in production) are documented but stay out of the example.
    assert {v for v in read if "_TEST_" not in v} - example_variables() == set(), "add these to .env.example"


def test_the_example_and_the_table_name_only_real_variables() -> None:
    """Nothing in .env.example or the table is a variable that no code reads."""
    deploy_only = {"STATIC_BUCKET", "STATIC_DISTRIBUTION_ID"}  # read by deploy/push_static.py
    assert deploy_only <= set(
        re.findall(r'os\.environ\.get\("([A-Z_]+)"', (ROOT / "deploy" / "push_static.py").read_text())
    )
    read = variables_read_by_the_app() | deploy_only
    assert example_variables() - read == set()
    assert documented_variables() - read == set()


def test_the_example_fills_what_production_requires(tmp_path: Path) -> None:
    """.env.example's uncommented lines, with a secret and reachable stand-ins, make valid production settings."""
    values = dict(re.findall(r"^([A-Z][A-Z0-9_]+)=(.*)$", (ROOT / ".env.example").read_text(), flags=re.MULTILINE))
    assert {"CHATSITE_ENV", "DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL"} <= set(values)
    env = production_env(tmp_path, **{k: v for k, v in values.items() if v and k != "DATABASE_URL"})
    env["COGNITO_APP_CLIENT_ID"] = "example-client"
    result = manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr


# systemd -----------------------------------------------------------------------------------


def daphne_flags(argv: list[str]) -> dict[str, str]:
    return {flag: argv[argv.index(flag) + 1] for flag in SHARED_FLAGS if flag in argv}


def unit_exec_start() -> list[str]:
    line = next(x for x in UNIT.read_text().splitlines() if x.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    """systemd-analyze verify accepts the unit (installed at this checkout) with no warning."""
    env_file = tmp_path / "chatsite.env"
    env_file.write_text("CHATSITE_ENV=production\n")
    unit = tmp_path / "chatsite@8000.service"
    unit.write_text(
        UNIT.read_text().replace("/opt/chatsite", str(ROOT)).replace("/etc/chatsite/chatsite.env", str(env_file))
    )
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert str(unit.name) not in result.stderr, result.stderr


def test_the_unit_runs_the_asgi_app_with_the_makefiles_flags() -> None:
    """The unit starts daphne on its instance port with the Makefile's flags, and stops within the drain time."""
    argv = unit_exec_start()
    assert argv[0].endswith("/.venv/bin/daphne") and argv[-1] == "chatsite.asgi:application"
    assert argv[argv.index("-p") + 1] == "%i"
    assert argv[argv.index("-v") + 1] == "0"  # JSON logs only: the app writes the access lines
    makefile = (ROOT / "Makefile").read_text()
    make_flags = shlex.split(re.search(r"^DAPHNE_FLAGS \?= (.*)$", makefile, flags=re.MULTILINE)[1])  # type: ignore[index]
    assert daphne_flags(argv) == daphne_flags(make_flags)
    assert len(daphne_flags(argv)) == len(SHARED_FLAGS)
    text = UNIT.read_text()
    assert "EnvironmentFile=/etc/chatsite/chatsite.env" in text
    assert "KillSignal=SIGTERM" in text


# The container image -----------------------------------------------------------------------


def test_the_dockerfile_passes_hadolint() -> None:
    """hadolint (pinned in requirements-dev.txt) finds nothing in deploy/Dockerfile."""
    hadolint = Path(sys.executable).with_name("hadolint")
    result = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    result = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            result.append((keyword.upper(), rest))
    return result


def test_every_file_the_image_copies_exists_and_is_not_ignored() -> None:
    """Each COPY source from the build context exists in the repository, and secrets stay out of the context."""
    ignore = (ROOT / "deploy" / "Dockerfile.dockerignore").read_text().split()
    for keyword, rest in dockerfile_instructions():
        if keyword != "COPY" or rest.startswith("--from"):
            continue
        *sources, _ = shlex.split(rest)
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source.rstrip("/") not in ignore, source
    for secret in (".env", "*.pem", "var", ".venv"):
        assert secret in ignore


def test_the_image_runs_daphne_like_the_unit_and_checks_healthz() -> None:
    """CMD has the unit's daphne flags on port 8000; HEALTHCHECK polls /healthz; it runs as a non-root user."""
    instructions = dockerfile_instructions()
    cmd = json.loads(next(rest for keyword, rest in instructions if keyword == "CMD"))
    assert cmd[0] == "daphne" and cmd[-1] == "chatsite.asgi:application"
    assert daphne_flags(cmd) == daphne_flags(unit_exec_start())
    assert cmd[cmd.index("-p") + 1] == "8000"
    assert cmd[cmd.index("-v") + 1] == "0"
    healthcheck = next(rest for keyword, rest in instructions if keyword == "HEALTHCHECK")
    assert "/healthz" in healthcheck
    user = [rest for keyword, rest in instructions if keyword == "USER"]
    assert user and not user[-1].startswith(("root", "0"))
    assert dockerfile_env()["CHATSITE_ENV"] == "production"
    assert "DJANGO_SECRET_KEY" not in dockerfile_env()


def test_the_images_collectstatic_step_works(collected_static: Path) -> None:
    """The Dockerfile's collectstatic command, run as written, writes hashed files and their manifest."""
    manifest = json.loads((collected_static / "staticfiles.json").read_text())["paths"]
    assert manifest["chat/chat.css"] != "chat/chat.css"
    assert (collected_static / manifest["chat/chat.css"]).exists()


def test_collectstatic_makes_no_second_copy_of_the_react_build(tmp_path: Path) -> None:
    """With a React build present, collectstatic leaves it out: the build is served and pushed from one place."""
    build = tmp_path / "dist"
    (build / "assets").mkdir(parents=True)
    (build / "index.html").write_text("<!doctype html>")
    (build / "config.json").write_text("{}")
    (build / "assets" / "index-abc123.js").write_text("1")
    out = tmp_path / "static"
    env = production_env(tmp_path, CHATSITE_FRONTEND_DIST=str(build), DJANGO_STATIC_ROOT=str(out))
    result = manage(env, "collectstatic", "--noinput", "-v0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (out / "staticfiles.json").exists()
    assert not list(out.rglob("config.json")) and not list(out.rglob("index-abc123*"))


def test_the_release_script_drains_each_process_before_restarting_it() -> None:
    """deploy/release.sh parses, and per process deregisters, drains (SIGUSR1), waits, restarts, re-registers."""
    script = ROOT / "deploy" / "release.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    loop = script.read_text().split('for port in "${ports[@]}"; do', 1)[1]
    steps = [
        "deregister-targets",
        "--signal=SIGUSR1",
        "wait target-deregistered",
        "systemctl restart",
        "/healthz",
        "elbv2 register-targets",
        "wait target-in-service",
    ]
    positions = [loop.index(step) for step in steps]
    assert positions == sorted(positions)
    assert "--require-hashes" in script.read_text()
