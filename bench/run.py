"""The benchmark runner: every server under test, the same loads, one table.

    python -m bench.run              # the quick version (make bench): under 3 minutes
    python -m bench.run --full       # 5,000 idle sockets, longer steps, refined ramps
    python -m bench.run --servers chatsite,bare
    python -m bench.run --profile    # py-spy on Chatsite's daphne under the 1000-member load

For each server it starts the process(es) on free loopback ports, runs one load-generator
process (bench/loadgen.py) with the plan, and stops them. It prints one table and the JSON
rows, and writes them to bench/results/latest.json (the run's machine, versions and
command go to latest.meta.json beside it). Scratch files (data directories, server logs,
raw profiles) go to var/bench/<run>/. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import psutil

from bench.loadgen import room_names

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RESULTS = ROOT / "bench" / "results"
# Where the servers under test run from: the working tree, or a commit exported by --commit.
SERVER_ROOT = ROOT
SCRATCH = ROOT / "var" / "bench"
# The Makefile's daphne flags, so Chatsite runs here as `make run` runs it.
DAPHNE_FLAGS = [
    "--websocket-max-message-size",
    "1048576",
    "--websocket-max-frame-size",
    "1048576",
    "--ping-interval",
    "25",
    "--ping-timeout",
    "30",
    "--application-close-timeout",
    "5",
]
# A shared Redis (REDIS_URL or 127.0.0.1:6379) is used at this database index, flushed
# before each server: never the index other users of that Redis work in.
BENCH_REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "13"))
SERVER_NAMES = ["chatsite", "chatsite-redis", "chatsite-redis-x2", "tutorial", "bare"]
# Not in the default run (`make bench` stays under 3 minutes): named with --servers.
# chatsite-2redis-x2: chatsite-redis-x2 with the channel layer over two Redis processes
# (REDIS_URLS), as a deployment past one Redis primary runs (docs/operations.md).
# chatsite-pg-redis-x2: the production path on one machine: PostgreSQL (BENCH_POSTGRES_URL, else
# 127.0.0.1:5432) for the store, Redis's pub/sub layer, two daphne processes; in the full run.
# chatsite-pg: one daphne on a PostgreSQL store, the in-memory layer (chatsite's shape on the
# production database; `--search-feed` compares it with chatsite).
OPT_IN_SERVERS = ["chatsite-2redis-x2", "chatsite-pg-redis-x2", "chatsite-pg"]
FULL_RUN_EXTRA = ["chatsite-pg-redis-x2"]
BENCH_POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
# One key per run, the same for bench.prep and every server: the sessions prep stores are
# encoded (and their auth hash made) with the key, so a server with another key reads none
# of them and refuses every socket with 4401. DEBUG off needs a key of its own anyway.
BENCH_SECRET_KEY = secrets.token_urlsafe(50)


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# --- loads ------------------------------------------------------------------------------


def quick_plan() -> list[dict[str, Any]]:
    """1000 sockets in one room first (the idle figure, then a ramp over them whose steps are
    the 1000-member fixed loads), then a 100-member room and five 10-member rooms at rates
    every server should hold.

    Chatsite opens sockets at tens per second on a busy machine, so the quick plan keeps the
    socket count low and bounds the time spent opening the big room and ramping (a partial
    room, and loads that no longer fit the time budget, are flagged in the table).
    """
    big = {"rooms": 1, "members": 1000}
    return [
        # Opening is bounded by the time budget (less a reserve for the loads after it).
        {"kind": "idle", **big, "keep": True},
        {
            "kind": "ramp",
            **big,
            "senders": 10,
            "rates": [1, 2, 4, 8, 16, 32, 64],
            "duration": 2,
            "min_messages": 2,
            "drain_s": 3,
            "fail_streak": 1,
            "max_s": 25,
        },
        {"kind": "fixed", "rooms": 1, "members": 100, "senders": 10, "rate": 5, "duration": 2, "drain_s": 3},
        {"kind": "fixed", "rooms": 5, "members": 10, "senders": 5, "rate": 10, "duration": 2, "drain_s": 3},
    ]


def full_plan() -> list[dict[str, Any]]:
    big = {"rooms": 1, "members": 1000}
    ramp = {"rates": [0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128], "duration": 5, "min_messages": 5, "refine": 2}
    return [
        {"kind": "idle", "rooms": 50, "members": 100, "hold_s": 10},
        {"kind": "fixed", "rooms": 100, "members": 10, "senders": 100, "rate": 200, "duration": 10, "drain_s": 5},
        {"kind": "fixed", "rooms": 1, "members": 100, "senders": 10, "rate": 20, "duration": 10, "drain_s": 5},
        {"kind": "ramp", "rooms": 1, "members": 100, "senders": 10, **ramp, "drain_s": 5, "max_s": 240},
        {"kind": "fixed", **big, "senders": 10, "rate": 2, "duration": 10, "drain_s": 10},
        {"kind": "fixed", **big, "senders": 10, "rate": 10, "duration": 10, "drain_s": 10},
        {"kind": "ramp", **big, "senders": 10, **ramp, "drain_s": 5, "max_s": 240},
    ]


def typing_plan() -> list[dict[str, Any]]:
    """Issue 22, goal 5: a 100-member room at 20 msg/s, without typing and then with every
    member typing (one frame per 2 s each); Chatsite only (the peers have no typing)."""
    room = {"rooms": 1, "members": 100, "senders": 10, "rate": 20, "duration": 10, "drain_s": 5}
    return [
        {"kind": "fixed", **room},
        {"kind": "fixed", **room, "typing_every_s": 2.0},
        {"kind": "fixed", **room},
        {"kind": "fixed", **room, "typing_every_s": 2.0},
    ]


def presence_plan(sockets: int = 5000) -> list[dict[str, Any]]:
    """Issue 22, goal 5: 5,000 sockets (`sockets`, a multiple of 1000) connect, in rooms of
    100 and in rooms of 1000, without and with `presence` (each socket asks for presence
    frames once joined, as the UIs do): how many presence frames reach the sockets, and what
    asking for them costs a connect."""
    small = {"rooms": sockets // 100, "members": 100, "hold_s": 5}
    big = {"rooms": sockets // 1000, "members": 1000, "hold_s": 5}
    return [
        {"kind": "idle", **small},
        {"kind": "idle", **small, "presence": True},
        {"kind": "idle", **big},
        {"kind": "idle", **big, "presence": True},
    ]


def read_plan(rate: float = 100.0, *, floor: bool = False) -> list[dict[str, Any]]:
    """Issue 22, goal 5: twenty rooms of 10 at `rate` msg/s, without read state and then with
    every member marking its room read once a second (markRead up to the newest seq it got);
    Chatsite only, in pairs, as `typing_plan`. With `floor`, each pair is followed by the same
    load with a ping where each markRead would go: what any client frame costs."""
    rooms = {"rooms": 20, "members": 10, "senders": 20, "rate": rate, "duration": 10, "drain_s": 5}
    pings = [{"kind": "fixed", **rooms, "mark_read_every_s": 1.0, "read_as_ping": True}] if floor else []
    return [
        {"kind": "fixed", **rooms},
        {"kind": "fixed", **rooms, "mark_read_every_s": 1.0},
        *pings,
        {"kind": "fixed", **rooms},
        {"kind": "fixed", **rooms, "mark_read_every_s": 1.0},
        *pings,
    ]


def search_feed_plan(rate: float = 100.0) -> list[dict[str, Any]]:
    """Issue 19: twenty rooms of 10 at `rate` msg/s, the load of the search goal ("indexing
    adding under 10 % to the CPU per message"). One load per server start: the search index's
    feed is a server setting (CHAT_SEARCH_INDEX_FEED), so `run_search_feed` starts each server
    with it off and on, in pairs of alternating order."""
    # 20 s, and a drain long enough for a busy machine's backlog: CPU spent after the drain
    # is not counted, and a delivery missing from the count makes the per-delivery CPU lie.
    rooms = {"rooms": 20, "members": 10, "senders": 20}
    return [{"kind": "fixed", **rooms, "rate": rate, "duration": 20, "drain_s": 20}]


def profile_plan(
    pid: int,
    workdir: Path,
    rate: float,
    duration: float,
    rooms: int = 1,
    members: int = 1000,
    *,
    presence: bool = False,
    mark_read: bool = False,
    typing: bool = False,
) -> list[dict[str, Any]]:
    """py-spy on the first server process: while the sockets connect, then under the load
    (by default one 1000-member room; `--profile-shape 20x10` for twenty rooms of ten; with
    `presence` the sockets ask for presence frames as they join, as the UIs do; with
    `mark_read` every member marks its room read once a second, as in `read_plan`; with
    `typing` every member types, one frame per 2 s, as in `typing_plan`)."""
    reading = {"mark_read_every_s": 1.0} if mark_read else {}
    if typing:
        reading["typing_every_s"] = 2.0
    return [
        {
            "kind": "idle",
            "rooms": rooms,
            "members": members,
            "keep": True,
            "presence": presence,
            "profile": {"pid": pid, "out": str(workdir / f"profile-{pid}-connect.raw"), "rate_hz": 100},
        },
        {
            "kind": "fixed",
            "rooms": rooms,
            "members": members,
            "senders": max(10, rooms),
            "rate": rate,
            "duration": duration,
            "drain_s": 15,
            **reading,
            "profile": {"pid": pid, "out": str(workdir / f"profile-{pid}-deliver.raw"), "rate_hz": 100},
        },
    ]


def plan_rooms(loads: list[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for load in loads:
        for name in room_names(load["rooms"], load["members"]):
            if name not in names:
                names.append(name)
    return names


def plan_sockets(loads: list[dict[str, Any]]) -> int:
    return max(int(load["rooms"]) * int(load["members"]) for load in loads)


# --- processes --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def raise_fd_limit(sockets: int) -> int:
    """Each socket is one descriptor in the generator and one in the server."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = sockets + 1024
    if soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft < want:
            log(f"open-file limit is {soft} (hard {hard}); {sockets} sockets may fail to open")
    return soft


@dataclass
class Redis:
    url: str  # with the benchmark's database index
    pid: int | None
    proc: subprocess.Popen[bytes] | None = None

    def flush(self) -> None:
        import redis

        client = redis.Redis.from_url(self.url)
        try:
            client.flushdb()
        finally:
            client.close()


def _listening_pid(port: int) -> int | None:
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return int(conn.pid)
    return None


def _redis_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def find_or_start_redis(workdir: Path) -> Redis:
    """REDIS_URL if set, else 127.0.0.1:6379 if it answers, else a redis-server of our own (`start_redis`)."""
    url = os.environ.get("REDIS_URL", "")
    if url:
        parts = urlsplit(url)
        base = f"{parts.scheme}://{parts.netloc}"
        return Redis(url=f"{base}/{BENCH_REDIS_DB}", pid=_listening_pid(parts.port or 6379))
    if _redis_answers("127.0.0.1", 6379):
        return Redis(url=f"redis://127.0.0.1:6379/{BENCH_REDIS_DB}", pid=_listening_pid(6379))
    return start_redis(workdir)


def start_redis(workdir: Path, log_name: str = "redis.log") -> Redis:
    """A redis-server of the run's own on a free loopback port, without persistence."""
    server = shutil.which("redis-server")
    if server is None:
        raise RuntimeError("no Redis: set REDIS_URL, run one on 127.0.0.1:6379, or install redis-server")
    port = free_port()
    proc = subprocess.Popen(
        [server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=(workdir / log_name).open("ab"),
        stderr=subprocess.STDOUT,
    )
    wait_for_port(port, proc)
    return Redis(url=f"redis://127.0.0.1:{port}/0", pid=proc.pid, proc=proc)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CHAT_", "REDIS_", "DYNAMODB_"))}
    env.update({"PYTHONUNBUFFERED": "1", "LOG_LEVEL": "WARNING"})
    env.update(extra)
    return env


@dataclass
class Server:
    name: str
    protocol: str  # what the load generator speaks: chatsite or tutorial
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    cookies: list[str] = field(default_factory=list)
    redis: Redis | None = None
    second_redis: Redis | None = None
    db_url: str = ""  # a PostgreSQL store: the load generator counts its backends' CPU too

    @property
    def urls(self) -> list[str]:
        return [f"ws://127.0.0.1:{port}" for port in self.ports]

    def stop(self) -> None:
        for proc in self.procs:
            stop(proc)


def _spawn(cmd: list[str], env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    cmd = [part.replace("{port}", str(port)) for part in cmd]
    proc = subprocess.Popen(cmd, cwd=SERVER_ROOT, env=env, stdout=log_path.open("ab"), stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc)
    except Exception:
        stop(proc)
        raise
    return proc, port


def prepare_chatsite_template(
    workdir: Path, loads: list[dict[str, Any]], *, database_url: str = ""
) -> tuple[Path, list[str]]:
    """Migrate once, create users, sessions and rooms once; each Chatsite copies the file (or,
    with `database_url`, uses that PostgreSQL database)."""
    template = workdir / ("chatsite-template" if not database_url else "chatsite-pg-template")
    template.mkdir(parents=True, exist_ok=True)
    database = {"DATABASE_URL": database_url} if database_url else {}
    cookies_path = template / "cookies.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.prep",
            "--users",
            str(plan_sockets(loads)),
            "--rooms",
            ",".join(plan_rooms(loads)),
            "--out",
            str(cookies_path),
        ],
        cwd=SERVER_ROOT,
        env=clean_env(
            DJANGO_SETTINGS_MODULE="chatsite.settings",
            CHATSITE_DATA_DIR=str(template),
            DJANGO_SECRET_KEY=BENCH_SECRET_KEY,
            **database,
        ),
        check=True,
        timeout=300,
    )
    return template / "db.sqlite3", json.loads(cookies_path.read_text())


def create_postgres_database(run_id: str) -> str:
    """A fresh PostgreSQL database for this run (dropped by `drop_postgres_database`)."""
    import psycopg

    name = f"chatsite_bench_{run_id.lower()}"
    with psycopg.connect(BENCH_POSTGRES_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return BENCH_POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"


def clone_postgres_database(url: str, suffix: str) -> str:
    """A copy of a prepared database (CREATE DATABASE … TEMPLATE): each server of a
    `--search-feed` run starts from the same state, not from the previous one's messages."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(BENCH_POSTGRES_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}_{suffix}" TEMPLATE "{name}"')
    return f"{url}_{suffix}"


def drop_postgres_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(BENCH_POSTGRES_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_server(
    name: str,
    workdir: Path,
    template: tuple[Path, list[str]] | None,
    redis: Redis | None,
    second_redis: Redis | None = None,
    postgres: tuple[str, list[str]] | None = None,
    extra_env: dict[str, str] | None = None,
) -> Server:
    daphne = str(BIN / "daphne")
    log_path = workdir / f"{name}.log"
    if name.startswith("chatsite"):
        assert template is not None
        data_dir = workdir / name
        data_dir.mkdir(parents=True, exist_ok=True)
        database: dict[str, str] = {}
        if name in ("chatsite-pg-redis-x2", "chatsite-pg"):
            assert postgres is not None
            database["DATABASE_URL"] = postgres[0]
            server = Server(name=name, protocol="chatsite", cookies=postgres[1], db_url=postgres[0])
        else:
            shutil.copy(template[0], data_dir / "db.sqlite3")
            server = Server(name=name, protocol="chatsite", cookies=template[1])
        # DEBUG off, as deployed: with it on, Django also records every query it runs.
        extra = {
            "DJANGO_SETTINGS_MODULE": "chatsite.settings",
            "CHATSITE_DATA_DIR": str(data_dir),
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": BENCH_SECRET_KEY,  # the key the sessions were made with
            **database,
            **(extra_env or {}),
        }
        if name not in ("chatsite", "chatsite-pg"):
            assert redis is not None
            redis.flush()
            server.redis = redis
            if name == "chatsite-2redis-x2":
                assert second_redis is not None
                second_redis.flush()
                server.second_redis = second_redis
                extra["REDIS_URLS"] = f"{redis.url},{second_redis.url}"
            else:
                extra["REDIS_URL"] = redis.url
        processes = 2 if name.endswith("-x2") else 1
        for i in range(processes):
            env = clean_env(**extra, CHAT_INSTANCE_ID=f"bench-{name}-{i}")
            cmd = [daphne, "-b", "127.0.0.1", "-p", "{port}", *DAPHNE_FLAGS, "chatsite.asgi:application"]
            proc, port = _spawn(cmd, env, log_path)
            server.procs.append(proc)
            server.ports.append(port)
        return server
    if name == "tutorial":
        assert redis is not None
        redis.flush()
        env = clean_env(DJANGO_SETTINGS_MODULE="bench.peers.tutorial.settings", BENCH_REDIS_URL=redis.url)
        if "BENCH_TUTORIAL_SOCKET_TIMEOUT" in os.environ:
            env["BENCH_TUTORIAL_SOCKET_TIMEOUT"] = os.environ["BENCH_TUTORIAL_SOCKET_TIMEOUT"]
        cmd = [daphne, "-b", "127.0.0.1", "-p", "{port}", *DAPHNE_FLAGS, "bench.peers.tutorial.asgi:application"]
        proc, port = _spawn(cmd, env, log_path)
        return Server(name=name, protocol="tutorial", procs=[proc], ports=[port], redis=redis)
    if name == "bare":
        cmd = [sys.executable, "-m", "bench.peers.bare_ws", "--port", "{port}"]
        proc, port = _spawn(cmd, clean_env(), log_path)
        return Server(name=name, protocol="tutorial", procs=[proc], ports=[port])
    raise ValueError(f"unknown server {name!r}; choose from {', '.join(SERVER_NAMES)}")


def run_loadgen(
    server: Server, loads: list[dict[str, Any]], workdir: Path, *, pin: bool, budget_s: float, settle_max_s: float
) -> list[dict[str, Any]]:
    """Run one load-generator process against a running server; its rows, in plan order."""
    plan = {
        "server": {
            "name": server.name,
            "protocol": server.protocol,
            "urls": server.urls,
            "cookies": server.cookies,
            "pids": [p.pid for p in server.procs],
            "redis_pids": [r.pid for r in (server.redis, server.second_redis) if r and r.pid],
            "db_url": server.db_url or None,
        },
        "loads": loads,
        "budget_s": budget_s,
        # More handshakes in flight only queue behind Chatsite's one database thread, and
        # past daphne's 5-second handshake timeout they fail.
        "connect_concurrency": 16,
        "settle_max_s": settle_max_s,
        # The generator stops itself; this is the backstop.
        "max_s": budget_s + 120,
    }
    plan_path = workdir / f"plan-{server.name}.json"
    plan_path.write_text(json.dumps(plan, indent=1))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.loadgen", "--plan", str(plan_path)], cwd=ROOT, stdout=subprocess.PIPE
    )
    if pin:
        # Server on core 0, generator on core 1: neither steals the other's core.
        with contextlib.suppress(psutil.Error, AttributeError):
            for server_proc in server.procs:
                psutil.Process(server_proc.pid).cpu_affinity([0])
            psutil.Process(proc.pid).cpu_affinity([1])
    rows: list[dict[str, Any]] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            with contextlib.suppress(ValueError):
                rows.append(json.loads(line))
        proc.wait(timeout=budget_s + 180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    if proc.returncode:
        log(f"{server.name}: load generator exited with {proc.returncode}; {len(rows)} rows kept")
    return rows


# The search feed's runs, off and on: each pair in the other order than the one before it.
SEARCH_FEED_ORDER: Final = (False, True, True, False)


def _index_counters(server: Server, token: str) -> tuple[float, int]:
    """The search feed's CPU seconds and room events so far, over the server's processes
    (their /metrics: search.metrics)."""
    import urllib.request

    cpu, events = 0.0, 0
    for port in server.ports:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            for line in response.read().decode().splitlines():
                name, _, value = line.partition(" ")
                if name == "chatsite_search_index_cpu_seconds_total":
                    cpu += float(value)
                elif name == "chatsite_search_indexed_events_total":
                    events += int(float(value))
    return cpu, events


def run_search_feed(
    names: list[str],
    workdir: Path,
    loads: list[dict[str, Any]],
    template: tuple[Path, list[str]] | None,
    redis: Redis | None,
    postgres: tuple[str, list[str]] | None,
    *,
    rounds: int,
    pin: bool,
    settle_max_s: float,
) -> list[dict[str, Any]]:
    """Each server started afresh (its data from the prepared template) with the search
    index's feed off, then on, then on, then off (`rounds` times): the CPU per delivery with
    and without indexing, side by side in one run. The daphne processes' CPU includes the
    feed (it writes on their sync thread); each row also carries the feed's own CPU from the
    server's counter (chatsite_search_index_cpu_seconds) and, on PostgreSQL, the database
    backends' CPU (db_cpu_us_per_delivery), where the index's tsvector and GIN work runs."""
    token = secrets.token_hex(32)
    rows: list[dict[str, Any]] = []
    for name in names:
        for i, feed in enumerate(SEARCH_FEED_ORDER * rounds):
            database = postgres
            if postgres is not None and "-pg" in name:
                database = (clone_postgres_database(postgres[0], f"f{i}"), postgres[1])
            env = {"CHAT_SEARCH_INDEX_FEED": "1" if feed else "0", "METRICS_TOKEN": token}
            try:
                with running(start_server(name, workdir, template, redis, None, database, extra_env=env)) as server:
                    log(f"{name}: up on {', '.join(map(str, server.ports))}, search feed {'on' if feed else 'off'}")
                    got = run_loadgen(server, loads, workdir, pin=pin, budget_s=150, settle_max_s=settle_max_s)
                    time.sleep(0.5)  # the feed's last batch (it gathers for 50 ms)
                    cpu, events = _index_counters(server, token)
            finally:
                if database is not postgres and database is not None:
                    drop_postgres_database(database[0])
            for row in got:
                sent = row.get("messages_sent") or 0
                row["search_feed"] = feed
                row["index_cpu_s"] = round(cpu, 4)
                row["indexed_events"] = events
                row["index_cpu_us_per_message"] = round(1e6 * cpu / sent, 1) if sent else None
                row["server_cpu_us_per_message"] = round(1e6 * row["server_cpu_s"] / sent, 1) if sent else None
            rows += got
    return rows


def search_feed_table(rows: list[dict[str, Any]]) -> str:
    """Each pair of runs (off and on, in either order: SEARCH_FEED_ORDER): the CPU per
    delivery and per message with and without the feed, the on run's difference from its
    pair's off run (daphne's CPU plus, on PostgreSQL, its backends'), and the feed's own CPU
    per message by its counter."""
    head = f"{'server':<22} {'feed':<4} {'µs/deliv':>9} {'µs/msg':>8} {'db µs/deliv':>11} {'feed µs/msg':>11}"
    lines = [head + f" {'others %':>9}  on vs off"]
    by_server: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for row in rows:
        if "search_feed" in row:
            by_server[row["server"]].append(row)

    def cpu(row: dict[str, Any]) -> float:
        return float(row.get("server_cpu_us_per_delivery") or 0) + float(row.get("db_cpu_us_per_delivery") or 0)

    for server, runs in by_server.items():
        for n, row in enumerate(runs):
            mate = runs[n ^ 1] if (n ^ 1) < len(runs) else None  # the other run of its pair
            ratio = ""
            if row["search_feed"] and mate is not None and not mate["search_feed"] and cpu(mate) and cpu(row):
                ratio = f"{100 * (cpu(row) / cpu(mate) - 1):+.1f} %"
            lines.append(
                f"{server:<22} {'on' if row['search_feed'] else 'off':<4} "
                f"{_fmt(row.get('server_cpu_us_per_delivery')):>9} {_fmt(row.get('server_cpu_us_per_message')):>8} "
                f"{_fmt(row.get('db_cpu_us_per_delivery')):>11} {_fmt(row.get('index_cpu_us_per_message')):>11} "
                f"{_fmt(row.get('others_cpu_pct')):>9}  {ratio}"
            )
    return "\n".join(lines)


# --- reporting --------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def load_label(load: dict[str, Any]) -> str:
    shape = f"{load['rooms']}x{load['members_per_room']}"
    kind = load["kind"]
    return {"idle": f"idle {shape}", "ramp_max": f"max {shape}", "skipped": f"skipped {shape}"}.get(
        kind, f"fixed {shape}"
    )


def flags(row: dict[str, Any]) -> str:
    out = []
    if row.get("loadgen_saturated"):
        out.append("LOADGEN-SATURATED")
    if row.get("bound_by_loadgen"):
        out.append("loadgen-bound")
    if row.get("top_rate_held"):
        out.append("held the ramp's top rate")
    if row.get("connect_failures"):
        out.append(f"{row['connect_failures']} connect failures")
    if row.get("send_errors"):
        out.append(f"{row['send_errors']} send errors")
    if row.get("disconnects"):
        out.append(f"{row['disconnects']} disconnects")
    if row.get("settled_before") is False:
        out.append("backlog")
    if row.get("late"):
        out.append(f"{row['late']} late")
    if row.get("drain_cut"):
        out.append("cut")
    if "search_feed" in row:
        out.append(f"search feed {'on' if row['search_feed'] else 'off'}")
    if row.get("skipped"):
        out.append(
            f"skipped: {row['skipped']}"
            if isinstance(row["skipped"], str) and ":" in row["skipped"]
            else "skipped: time budget"
        )
    load = row.get("load", {})
    wanted = load.get("rooms", 0) * load.get("members_per_room", 0)
    if row.get("connections") is not None and 0 < row["connections"] < wanted and not row.get("skipped"):
        out.append(f"only {row['connections']} of {wanted} sockets")
    if row.get("load", {}).get("kind") in {"ramp_step", "fixed"} and row.get("held") is False:
        out.append("FAIL")
    if row.get("load", {}).get("kind") == "idle" and row.get("still_open") is not None:
        if row["still_open"] != row.get("connections"):
            out.append(f"only {row['still_open']} still open")
    return ", ".join(out)


def table(rows: list[dict[str, Any]]) -> str:
    head = ["server", "load", "msg/s", "deliv/s", "p50 ms", "p95 ms", "p99 ms", "lost", "conn/s", "KiB/conn"]
    head += ["srv %", "gen %", "µs/deliv", "other %", "flags"]
    lines = [head]
    for row in rows:
        load = row["load"]
        lines.append(
            [
                row["server"],
                ("ramp " if load["kind"] == "ramp_step" else "") + load_label(load),
                _fmt(load["target_rate"], 2) if load["kind"] not in ("idle", "skipped") else "-",
                _fmt(row.get("deliveries_per_s")),
                _fmt(row.get("p50_ms"), 1),
                _fmt(row.get("p95_ms"), 1),
                _fmt(row.get("p99_ms"), 1),
                _fmt(row.get("lost")),
                _fmt(row.get("connect_per_s")),
                _fmt(row.get("rss_per_idle_conn_kb"), 1),
                _fmt(row.get("server_cpu_pct")),
                _fmt(row.get("loadgen_cpu_pct")),
                _fmt(row.get("server_cpu_us_per_delivery")),
                _fmt(row.get("others_cpu_pct")),
                flags(row),
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = []
    for n, line in enumerate(lines):
        cells = [
            cell.rjust(width) if 1 < i < len(head) - 1 else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each Chatsite figure over the same figure of the tutorial peer and of bare.

    Loads are matched by shape and rate, so a ramp step at 1 msg/s is compared with the
    other servers' steps at 1 msg/s; the ramp's best rate is compared as it is.
    """
    by_key: dict[tuple[str, float], dict[str, dict[str, Any]]] = collections.defaultdict(dict)
    for row in rows:
        load = row["load"]
        if load["kind"] == "skipped":
            continue
        rate = 0.0 if load["kind"] in ("idle", "ramp_max") else float(load["target_rate"])
        by_key[(load_label(load), rate)][row["server"]] = row
    metrics = {
        "idle": ["rss_per_idle_conn_kb", "connect_per_s"],
        "max": ["target_rate", "deliveries_per_s"],
        "fixed": ["deliveries_per_s", "p99_ms", "lost", "server_cpu_us_per_delivery"],
    }
    out: list[dict[str, Any]] = []
    for (label, rate), servers in by_key.items():
        for metric in metrics[label.split()[0]]:

            def value(row: dict[str, Any] | None, metric: str = metric) -> float | None:
                if row is None:
                    return None
                v = row["load"][metric] if metric == "target_rate" else row.get(metric)
                return float(v) if isinstance(v, int | float) else None

            peer, bare = value(servers.get("tutorial")), value(servers.get("bare"))
            for name, row in servers.items():
                mine = value(row)
                if not name.startswith("chatsite") or mine is None:
                    continue
                out.append(
                    {
                        "load": f"{label} @{rate:g}" if rate else label,
                        "metric": metric,
                        "server": name,
                        "value": mine,
                        "tutorial": peer,
                        "bare": bare,
                        "vs_tutorial": round(mine / peer, 3) if peer else None,
                        "vs_bare": round(mine / bare, 3) if bare else None,
                    }
                )
    return out


def ratio_table(items: list[dict[str, Any]]) -> str:
    head = f"{'load':<20} {'metric':<27} {'server':<18} {'chatsite':>9} {'tutorial':>11} {'bare':>11}"
    lines = [head + f" {'vs peer':>10} {'vs bare':>7}"]
    for item in items:
        lines.append(
            f"{item['load']:<20} {item['metric']:<27} {item['server']:<18} {_fmt(item['value'], 1):>9} "
            f"{_fmt(item['tutorial'], 1):>11} {_fmt(item['bare'], 1):>11} {_fmt(item['vs_tutorial'], 2):>10} "
            f"{_fmt(item['vs_bare'], 2):>7}"
        )
    return "\n".join(lines)


def prune_scratch(keep: int) -> None:
    """Keep the newest `keep` run directories under var/bench; data directories add up."""
    runs = sorted(d for d in SCRATCH.glob("2*T*") if d.is_dir())
    for old in runs[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def export_commit(rev: str, workdir: Path) -> tuple[Path, str]:
    """A commit's files in workdir/tree (git archive: the working tree is not touched)."""
    tree = workdir / "tree"
    tree.mkdir(parents=True, exist_ok=True)
    sha = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
    ).stdout.strip()
    archive = subprocess.Popen(["git", "archive", sha], cwd=ROOT, stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(tree)], stdin=archive.stdout, check=True, timeout=120)
    if archive.wait(timeout=120):
        raise RuntimeError(f"git archive {rev} failed")
    return tree, sha


def machine_meta(command: list[str]) -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        match = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = match.group(1).strip() if match else cpu
    redis_version = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, timeout=5).stdout
        redis_version = out.split("v=")[1].split()[0] if "v=" in out else out.strip()
    commit = None
    changed: list[str] = []
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        # The servers run the working tree: say which of their files differ from the commit.
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", "chat", "accounts", "chatsite"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
        changed = [line[3:] for line in status.splitlines() if line.strip()]
    packages = ["Django", "channels", "channels-redis", "daphne", "Twisted", "autobahn", "redis", "websockets"]
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(command),
        "git_commit": commit,
        "uncommitted_server_files": changed,
        "machine": {
            "cpu": cpu,
            "cores": psutil.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "kernel": platform.release(),
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "versions": {
            "python": platform.python_version(),
            **{p: _version(p) for p in [*packages, "uvloop", "psutil", "py-spy"]},
            "redis-server": redis_version,
        },
    }


# --- profile ----------------------------------------------------------------------------


def _frame_name(frame: str) -> tuple[str, str]:
    """'func (path/to/file.py:12)' -> ('func (short/file.py)', 'package')."""
    match = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame)
    func, path = (match.group(1), match.group(2)) if match else (frame, "?")
    for marker in ("site-packages/", "/lib/python3.11/", str(ROOT) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    package = path.split("/", 1)[0] if "/" in path else path.removesuffix(".py")
    return f"{func} ({path})", package


# Chatsite's own packages, for the summary's "by Chatsite work" section.
OWN_PACKAGES: Final = ("accounts", "analytics", "chat", "chatsite", "search", "unread", "uploads")
# Frames of the store-call wrappers, named past for the function they carry (chat.services).
_WRAPPERS: Final = {"_guarded", "_queue_bounded.<locals>.call", "call"}


def _work_of(frames: list[tuple[str, str]]) -> str:
    """Which piece of Chatsite's work a sample belongs to: on a worker thread, the function
    sent there (a trip off the event loop: `thread: _connection_admit`); on the event loop,
    the innermost Chatsite frame; else the leaf frame, marked as outside Chatsite."""
    own = [name for name, package in frames if package in OWN_PACKAGES and name.split(" (")[0] not in _WRAPPERS]
    if any(name.startswith("_WorkItem.run ") for name, _ in frames):
        return "thread: " + (own[0] if own else frames[-1][0])
    return "loop: " + (own[-1] if own else "(not Chatsite) " + frames[-1][0])


def summarise_profile(raw: Path, cpu_s: float, units: int, unit: str = "delivery", top: int = 25) -> str:
    """Self and inclusive costs per unit of work from py-spy's raw (collapsed) stacks."""
    self_cost: collections.Counter[str] = collections.Counter()
    incl_cost: collections.Counter[str] = collections.Counter()
    by_package: collections.Counter[str] = collections.Counter()
    by_work: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";")]
        total += count
        self_cost[frames[-1][0]] += count
        by_package[frames[-1][1]] += count
        by_work[_work_of(frames)] += count
        for name in {f[0] for f in frames}:
            incl_cost[name] += count
    if not total or not units:
        return "no samples"
    per = cpu_s * 1e6 / units / total  # µs of server CPU per unit, per sample

    def section(title: str, counter: collections.Counter[str], n: int) -> list[str]:
        out = [title, f"{'µs/' + unit[:6]:>9} {'share':>6}  function (file)"]
        for name, count in counter.most_common(n):
            out.append(f"{count * per:9.1f} {100 * count / total:5.1f}%  {name}")
        return out

    lines = [
        f"{total} samples; server CPU {cpu_s:.2f} s for {units} x {unit} = {cpu_s * 1e6 / units:.1f} µs each",
        "",
        *section("By package (where the CPU is spent, leaf frame):", by_package, 15),
        "",
        *section(
            "By Chatsite work (a worker thread: the function sent there; the loop: innermost own frame):", by_work, 20
        ),
        "",
        *section("Self time (leaf function):", self_cost, top),
        "",
        *section("Inclusive time (function and what it calls):", incl_cost, top),
    ]
    return "\n".join(lines)


# --- main -------------------------------------------------------------------------------


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    """A started server, stopped however the block ends."""
    try:
        yield server
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="the full run (tens of minutes): 5,000 idle sockets")
    parser.add_argument(
        "--servers",
        help=f"any of {','.join(SERVER_NAMES + OPT_IN_SERVERS)} "
        f"(default: {','.join(SERVER_NAMES)}; chatsite with --profile)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    parser.add_argument("--pin", action="store_true", help="pin servers to CPU 0 and the load generator to CPU 1")
    parser.add_argument("--profile", action="store_true", help="py-spy the servers under the 1000-member load")
    parser.add_argument("--profile-rate", type=float, default=2.0, help="messages/s for --profile")
    parser.add_argument(
        "--profile-shape", default="1x1000", help="ROOMSxMEMBERS for --profile (default 1x1000: one big room)"
    )
    parser.add_argument("--profile-seconds", type=float, default=10.0)
    parser.add_argument(
        "--typing", action="store_true", help="a 100-member room at 20 msg/s without and with every member typing"
    )
    parser.add_argument(
        "--presence",
        action="store_true",
        help="5,000 sockets connecting without and with presence frames (with --profile: the sockets ask for them)",
    )
    parser.add_argument(
        "--presence-sockets", type=int, default=5000, help="sockets for --presence, a multiple of 1000 (default 5000)"
    )
    parser.add_argument(
        "--mark-read",
        nargs="?",
        const=100.0,
        type=float,
        metavar="RATE",
        help="20 rooms of 10 at RATE msg/s (100) without and with every member sending markRead once a second",
    )
    parser.add_argument(
        "--search-feed",
        nargs="?",
        const=100.0,
        type=float,
        metavar="RATE",
        help="20 rooms of 10 at RATE msg/s (100), each server started with the search index's feed off and on,"
        " in pairs (off, on, on, off); chatsite unless --servers (chatsite-pg: PostgreSQL)",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for Chatsite's servers (repeatable): CHAT_SEARCH_INDEX_FEED=0 with --profile",
    )
    parser.add_argument("--rounds", type=int, default=1, help="with --search-feed: how many off/on/on/off rounds")
    parser.add_argument(
        "--read-floor",
        action="store_true",
        help="with --mark-read: also the same load with a ping where each markRead would go",
    )
    parser.add_argument(
        "--commit",
        help="run the servers from this commit (exported with git archive) instead of the working tree",
    )
    parser.add_argument(
        "--budget", type=float, help="seconds for the whole run (default: 170 quick, 3600 full, 300 profile)"
    )
    args = parser.parse_args()
    servers = args.servers or (
        "chatsite"
        if args.profile or args.search_feed
        else ",".join(SERVER_NAMES + (FULL_RUN_EXTRA if args.full else []))
    )
    names = [n.strip() for n in servers.split(",") if n.strip()]
    server_env = dict(item.partition("=")[::2] for item in args.server_env)
    for name in names:
        if name not in SERVER_NAMES + OPT_IN_SERVERS:
            parser.error(f"unknown server {name!r}; choose from {', '.join(SERVER_NAMES + OPT_IN_SERVERS)}")

    try:
        rooms, members = (int(n) for n in args.profile_shape.lower().split("x"))
    except ValueError:
        parser.error("--profile-shape is ROOMSxMEMBERS, e.g. 20x10")
    if min(rooms, members) < 1:
        parser.error("--profile-shape is ROOMSxMEMBERS, e.g. 20x10")
    if args.presence_sockets < 1000 or args.presence_sockets % 1000:
        parser.error("--presence-sockets is a multiple of 1000")
    started = time.monotonic()
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    workdir = SCRATCH / run_id
    workdir.mkdir(parents=True, exist_ok=True)
    loads = (
        profile_plan(
            0,
            workdir,
            1,
            1,
            rooms,
            members,
            presence=args.presence,
            mark_read=bool(args.mark_read),
            typing=args.typing,
        )
        if args.profile
        else typing_plan()
        if args.typing
        else presence_plan(args.presence_sockets)
        if args.presence
        else read_plan(args.mark_read, floor=args.read_floor)
        if args.mark_read
        else search_feed_plan(args.search_feed)
        if args.search_feed
        else (full_plan() if args.full else quick_plan())
    )
    budget = args.budget or (300.0 if args.profile else 3600.0 if args.full else 170.0)
    settle_max_s = 20.0 if args.full else 3.0
    # The servers that finish early leave their time to the rest: the cheap ones run first.
    order = sorted(names, key=lambda n: ["bare", "tutorial"].index(n) if n in ("bare", "tutorial") else 2)
    raise_fd_limit(plan_sockets(loads))
    meta = machine_meta([Path(sys.argv[0]).name, *sys.argv[1:]])
    if args.commit:
        global SERVER_ROOT
        SERVER_ROOT, meta["servers_commit"] = export_commit(args.commit, workdir)
        meta["uncommitted_server_files"] = []
    log(f"run {run_id}: servers {', '.join(names)}; scratch in {workdir.relative_to(ROOT)}")

    redis: Redis | None = None
    second_redis: Redis | None = None
    needs_redis = any(n not in ("chatsite", "chatsite-pg", "bare") for n in names)
    template = prepare_chatsite_template(workdir, loads) if any(n.startswith("chatsite") for n in names) else None
    postgres: tuple[str, list[str]] | None = None
    if "chatsite-pg-redis-x2" in names or "chatsite-pg" in names:
        url = create_postgres_database(run_id)
        try:
            postgres = (url, prepare_chatsite_template(workdir, loads, database_url=url)[1])
        except BaseException:
            drop_postgres_database(url)
            raise
    rows: list[dict[str, Any]] = []
    reports: list[str] = []
    try:
        if needs_redis:
            redis = find_or_start_redis(workdir)
            log(f"redis at {redis.url} (pid {redis.pid})")
        if "chatsite-2redis-x2" in names:
            second_redis = start_redis(workdir, "redis-second.log")
            log(f"second redis at {second_redis.url} (pid {second_redis.pid})")
        if args.search_feed:
            rows += run_search_feed(
                order,
                workdir,
                loads,
                template,
                redis,
                postgres,
                rounds=args.rounds,
                pin=args.pin,
                settle_max_s=settle_max_s,
            )
            order = []  # done: the loop below runs the other plans
        for done, name in enumerate(order):
            # Chatsite opens sockets slowest, and bare ramps to the top: they get the larger
            # shares; the tutorial peer fails the ramp's first step and needs the least.
            weights = [1.0 if n == "tutorial" else 1.5 for n in order[done:]]
            share = (budget - (time.monotonic() - started) - 8) * weights[0] / sum(weights)
            if share < 10:
                log(f"{name}: skipped, the run's time budget ({budget:.0f} s) is spent")
                continue
            with running(
                start_server(name, workdir, template, redis, second_redis, postgres, extra_env=server_env)
            ) as server:
                log(f"{name}: up on {', '.join(map(str, server.ports))}")
                if args.profile:
                    pid = server.procs[0].pid
                    plan = profile_plan(
                        pid,
                        workdir,
                        args.profile_rate,
                        args.profile_seconds,
                        rooms,
                        members,
                        presence=args.presence,
                        mark_read=bool(args.mark_read),
                        typing=args.typing,
                    )
                    got = run_loadgen(
                        server, plan, workdir, pin=args.pin, budget_s=share - 3, settle_max_s=settle_max_s
                    )
                    rows += got
                    kinds = [("connect", "connect", "connections"), ("deliver", "delivery", "received")]
                    for row, (what, unit, count_key) in zip(got, kinds, strict=False):
                        raw = workdir / f"profile-{pid}-{what}.raw"
                        if not raw.exists() or not row.get(count_key):
                            continue
                        report = summarise_profile(raw, row["server_cpu_s"], row[count_key], unit)
                        title = (
                            f"{row['connections']} sockets connecting and joining one room"
                            if what == "connect"
                            else f"{args.profile_rate:g} msg/s into {args.profile_shape}"
                        )
                        reports.append(f"== {name} (first process): {title} ==\n{report}")
                else:
                    rows += run_loadgen(
                        server, loads, workdir, pin=args.pin, budget_s=share - 3, settle_max_s=settle_max_s
                    )
    finally:
        for own in (redis, second_redis):
            if own and own.proc:
                stop(own.proc)
        if postgres is not None:
            drop_postgres_database(postgres[0])

    rows.sort(key=lambda r: names.index(r["server"]))  # stable: plan order within a server
    prune_scratch(keep=5)
    meta["seconds"] = round(time.monotonic() - started, 1)
    meta["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    meta["ratios"] = ratios(rows)
    print(table(rows))
    print()
    print(ratio_table(meta["ratios"]))
    print()
    if args.search_feed:
        print(search_feed_table(rows))
        print()
    for row in rows:
        print(json.dumps(row))
    if args.profile:
        text = "\n\n".join(reports)
        print(text)
        out = RESULTS / "profile-latest.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        dirty = (
            f"; uncommitted: {', '.join(meta['uncommitted_server_files'])}" if meta["uncommitted_server_files"] else ""
        )
        head = f"# {meta['command']} at {meta['when']} (commit {meta['git_commit']}{dirty})"
        out.write_text(f"{head}\n\n{text}\n")
        log(f"profile summary in {out.relative_to(ROOT)}; raw stacks in {workdir.relative_to(ROOT)}")
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")
    args.out.with_suffix(".meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    shown = args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out
    log(f"{len(rows)} rows in {shown}; {meta['seconds']} s")


if __name__ == "__main__":
    main()
