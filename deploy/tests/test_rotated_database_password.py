"""RDS rotates the password it manages: a running process keeps opening database connections.

The shared PostgreSQL on this machine trusts every login, so these tests start a private
server (initdb, scram-sha-256: passwords checked) and keep the password in a Secrets
Manager secret on the moto server, as RDS does.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db.utils import ConnectionHandler

from chatsite.aws_secrets import secret_text
from chatsite.db import password as db_password
from chatsite.db.password import REREAD_SECONDS, RotatingPassword, password_in
from chatsite.dburl import database_from_url
from tests.fixtures.aws import MotoServer
from tests.fixtures.servers import free_port

pytestmark = pytest.mark.timeout(120)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Secret:
    """A secret's text that can change, counting the reads."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.reads = 0

    def __call__(self, secret_id: str) -> str:
        self.reads += 1
        return self.text


def test_the_password_is_read_once_and_again_only_after_a_refusal() -> None:
    secret, clock = Secret('{"username": "chatsite", "password": "first"}'), Clock()
    password = RotatingPassword("arn:db", read=secret, clock=clock)
    assert [password.current(), password.current()] == ["first", "first"]
    assert secret.reads == 1
    secret.text = '{"username": "chatsite", "password": "second"}'
    clock.now += REREAD_SECONDS
    assert password.after_refusal("first") == "second"
    assert password.current() == "second" and secret.reads == 2
    # Another connection that tried the old password meanwhile gets the new one without a read.
    assert password.after_refusal("first") == "second" and secret.reads == 2


def test_a_refusal_that_a_reread_does_not_explain_stands_and_reads_are_bounded() -> None:
    """A wrong password in the secret (or a database refusing for another reason) is not retried in a loop."""
    secret, clock = Secret("only"), Clock()
    password = RotatingPassword("arn:db", read=secret, clock=clock)
    assert password.current() == "only"
    clock.now += REREAD_SECONDS
    assert password.after_refusal("only") is None
    assert secret.reads == 2
    for _ in range(10):
        clock.now += REREAD_SECONDS / 20
        assert password.after_refusal("only") is None
    assert secret.reads == 2  # within REREAD_SECONDS of the last read: no more Secrets Manager calls


@pytest.mark.parametrize("text", ["", "  ", "{}", '{"password": ""}', '{"password": 5}', "{not json"])
def test_a_secret_without_a_password_is_a_clear_configuration_error(text: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="DATABASE_PASSWORD_SECRET arn:db"):
        password_in(text, secret_id="arn:db")


def test_the_secret_replaces_the_password_and_is_not_combined_with_one() -> None:
    entry = database_from_url("postgres://chatsite@db.internal/chatsite?sslmode=verify-full", password_secret="arn:db")
    assert entry["ENGINE"] == "chatsite.db.postgresql"
    assert entry["PASSWORD_SECRET"] == "arn:db" and entry["PASSWORD"] == ""
    assert entry["OPTIONS"] == {"sslmode": "verify-full"}
    with pytest.raises(ImproperlyConfigured, match="DATABASE_PASSWORD and DATABASE_PASSWORD_SECRET"):
        database_from_url("postgres://chatsite@db.internal/chatsite", password="p", password_secret="arn:db")
    with pytest.raises(ImproperlyConfigured, match="a password in DATABASE_URL and DATABASE_PASSWORD_SECRET"):
        database_from_url("postgres://chatsite:p@db.internal/chatsite", password_secret="arn:db")
    with pytest.raises(ImproperlyConfigured, match="postgres://"):
        database_from_url("sqlite:///tmp/db.sqlite3", password_secret="arn:db")


@dataclass(frozen=True)
class PasswordPostgres:
    port: int
    admin_password: str

    def admin(self) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user="postgres",
            password=self.admin_password,
            dbname="postgres",
            autocommit=True,
            connect_timeout=10,
        )


def _postgres_bin() -> Path | None:
    found = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))), None)
    return Path(found).resolve().parent if found else None


@pytest.fixture(scope="module")
def password_postgres() -> Iterator[PasswordPostgres]:
    """A private PostgreSQL that checks passwords (scram-sha-256), on a free loopback port."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("needs PostgreSQL's server programs (initdb, pg_ctl) to start a server that checks passwords")
    run_as: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="chatsite-pg-"))
    if os.geteuid() == 0:  # initdb refuses to run as root: run the server as the postgres user
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run a private PostgreSQL as")
        os.chown(workdir, owner.pw_uid, owner.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    port, admin_password = free_port(), "admin-password-0123"
    data = workdir / "data"
    pwfile = workdir / "pw"
    pwfile.write_text(admin_password)
    if run_as:
        shutil.chown(pwfile, "postgres", "postgres")
    initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "scram-sha-256", "--no-sync"]
    subprocess.run(
        [*run_as, *initdb, f"--pwfile={pwfile}"],
        check=True,
        capture_output=True,
    )
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={workdir} -c fsync=off"
    subprocess.run(
        [*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(workdir / "log"), "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield PasswordPostgres(port=port, admin_password=admin_password)
    finally:
        subprocess.run(
            [*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def secrets_client(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in moto_server.env.items():
        monkeypatch.setenv(name, value)
    return boto3.client("secretsmanager", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")


def test_a_rotated_password_does_not_stop_new_connections(
    password_postgres: PasswordPostgres, secrets_client: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """RDS rotates: open connections go on, the next new one logs in with the new password, no restart."""
    with password_postgres.admin() as admin:
        admin.execute("CREATE ROLE chatsite LOGIN PASSWORD 'first-password'")
    arn = secrets_client.create_secret(
        Name=f"rds!db-{tmp_path.name}", SecretString=json.dumps({"username": "chatsite", "password": "first-password"})
    )["ARN"]
    clock = Clock()
    reads: list[str] = []

    def read(secret_id: str) -> str:
        reads.append(secret_id)
        return secret_text(secret_id)  # the real Secrets Manager call, on the moto server

    monkeypatch.setattr(db_password, "_passwords", {arn: RotatingPassword(arn, read=read, clock=clock)})
    url = f"postgres://chatsite@127.0.0.1:{password_postgres.port}/postgres?connect_timeout=10"
    handler = ConnectionHandler({"default": database_from_url(url, password_secret=arn)})

    def open_new() -> psycopg.Connection[tuple[Any, ...]]:
        wrapper = handler["default"]
        return wrapper.get_new_connection(wrapper.get_connection_params())  # type: ignore[no-any-return]

    before = open_new()
    assert before.execute("SELECT current_user").fetchone() == ("chatsite",)
    # The rotation: RDS sets the new password on the database and in the secret.
    with password_postgres.admin() as admin:
        admin.execute("ALTER ROLE chatsite PASSWORD 'second-password'")
    secrets_client.put_secret_value(
        SecretId=arn, SecretString=json.dumps({"username": "chatsite", "password": "second-password"})
    )
    clock.now += REREAD_SECONDS
    assert before.execute("SELECT 1").fetchone() == (1,)  # a connection that is open stays open
    after = open_new()
    assert after.execute("SELECT current_user").fetchone() == ("chatsite",)
    assert len(reads) == 2  # once at the first login, once after the refusal
    before.close()
    after.close()

    # A password the database refuses and the secret does not change is an error, not a loop.
    with password_postgres.admin() as admin:
        admin.execute("ALTER ROLE chatsite PASSWORD 'third-password'")
    clock.now += REREAD_SECONDS
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        open_new()
    assert len(reads) == 3
