"""The soak: a few hundred clients chatting for half an hour, with churn and deploys.

    python -m bench.soak                      # make soak: 30 minutes, 300 clients
    python -m bench.soak --minutes 3 --clients 60 --deploy-every 1   # a quick look

Not part of `make test`. It runs the fault suite's cluster (tests/faults/cluster.py: HAProxy,
two daphne processes, Redis, one SQLite database) with production's rate limits and daphne
flags, and the fault suite's model client (tests/faults/harness.py). Every client sends at
random intervals (RATE messages a second in all), and every so often drops its socket and
resumes; every --deploy-every minutes one process gets SIGTERM and is started again (a
rolling deploy). Every SAMPLE seconds it records each daphne's memory, Redis's keys and
memory, and the connection rows against the sockets open.

At the end it stops the senders, lets every client resume, runs the invariant check in
every room (every ack stored once; every client's view the room's history with no gap,
duplicate or reordering ever shown; a probe reaches every socket), and checks that memory,
Redis keys and connection rows stayed level. It writes a JSON summary (default
var/soak/latest.json) and exits non-zero if anything failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
import redis

from tests.faults.cluster import Cluster, close_all, start_cluster
from tests.faults.harness import FaultClient, check_invariants
from tests.fixtures.servers import ROOT, base_env

SAMPLE_SECONDS = 15.0
# Production's limits (chatsite/settings.py) and daphne flags (Makefile DAPHNE_FLAGS).
PRODUCTION_LIMITS = {
    "CHAT_RATE_LIMIT_FRAMES_PER_CONNECTION": "120/10",
    "CHAT_RATE_LIMIT_SEND_PER_CONNECTION": "20/10",
    "CHAT_RATE_LIMIT_SEND_PER_USER": "30/10",
    "CHAT_RATE_LIMIT_CONNECT_PER_USER": "30/60",
}
DAPHNE_ARGS = ("--ping-interval", "25", "--ping-timeout", "30")
# What "level" means: the last third's median against the middle third's.
RSS_GROWTH_LIMIT = 0.25  # and at least this many bytes before it counts:
RSS_GROWTH_FLOOR = 30 * 1024 * 1024


@dataclass
class Sample:
    at: float
    pids: list[int]
    rss: list[int]
    redis_keys: int
    redis_memory: int
    rows: int
    open_sockets: int


@dataclass
class Totals:
    sent: int = 0
    send_failures: int = 0
    reconnects: int = 0
    deploys: int = 0
    samples: list[Sample] = field(default_factory=list)


def migrated_template(scratch: Path) -> Path:
    template = scratch / "template"
    template.mkdir()
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=base_env(template),
        check=True,
    )
    return template / "db.sqlite3"


def live_rows(cluster: Cluster) -> int:
    with contextlib.closing(sqlite3.connect(cluster.db_path, timeout=20)) as db:
        row = db.execute("SELECT COUNT(*) FROM chat_connection WHERE ttl > ?", (int(time.time()),)).fetchone()
    return int(row[0])


def sample(cluster: Cluster, clients: list[FaultClient], started: float) -> Sample:
    pids, rss = [], []
    for server in cluster.servers:
        pid = server.proc.pid if server.proc else 0
        try:
            rss.append(psutil.Process(pid).memory_info().rss if pid else 0)
        except psutil.NoSuchProcess:
            rss.append(0)
        pids.append(pid)
    with redis.Redis(port=cluster.redis.port, socket_timeout=5) as admin:
        keys = int(admin.dbsize())
        memory = int(admin.info("memory")["used_memory"])
    return Sample(
        at=round(time.monotonic() - started, 1),
        pids=pids,
        rss=rss,
        redis_keys=keys,
        redis_memory=memory,
        rows=live_rows(cluster),
        open_sockets=sum(not c.closed for c in clients),
    )


async def chat(
    client: FaultClient, room: str, mean_gap: float, churn_every: float, stop: asyncio.Event, totals: Totals
) -> None:
    """Send at random intervals; now and then drop the socket and resume, as a phone does.
    A socket the server closed (a deploy) is reopened at once, as a browser tab would."""
    rng = random.Random()
    next_churn = time.monotonic() + rng.expovariate(1 / churn_every)
    n = 0
    while not stop.is_set():
        send_at = time.monotonic() + rng.expovariate(1 / mean_gap)
        while not stop.is_set() and time.monotonic() < send_at:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(1.0, max(0.0, send_at - time.monotonic())))
            if client.closed and not stop.is_set():
                with contextlib.suppress(TimeoutError, OSError):
                    await client.recover(wait=60)
        if stop.is_set():
            return
        if time.monotonic() >= next_churn:
            next_churn = time.monotonic() + rng.expovariate(1 / churn_every)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), 5)
            totals.reconnects += 1
        try:
            await client.send_reliably(room, f"{client.name} {n}", wait=60)
            totals.sent += 1
        except (TimeoutError, AssertionError):
            totals.send_failures += 1
        n += 1


async def deploys(cluster: Cluster, every: float, stop: asyncio.Event, totals: Totals) -> None:
    """A rolling deploy every `every` seconds: SIGTERM one process, start it again."""
    index = 0
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
        if stop.is_set():
            return
        await asyncio.to_thread(cluster.servers[index].stop)
        await asyncio.to_thread(cluster.ensure_running)
        totals.deploys += 1
        index = (index + 1) % len(cluster.servers)


async def sampler(
    cluster: Cluster, clients: list[FaultClient], stop: asyncio.Event, totals: Totals, started: float
) -> None:
    while not stop.is_set():
        now = await asyncio.to_thread(sample, cluster, clients, started)
        totals.samples.append(now)
        mib = ", ".join(f"{r / 2**20:.0f}" for r in now.rss)
        print(
            f"[{now.at:7.1f} s] rss MiB {mib} | redis keys {now.redis_keys} ({now.redis_memory / 2**20:.1f} MiB) | "
            f"rows {now.rows} / open {now.open_sockets} | sent {totals.sent} (failed {totals.send_failures}) | "
            f"reconnects {totals.reconnects} | deploys {totals.deploys}",
            flush=True,
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SAMPLE_SECONDS)


def levels(samples: list[Sample]) -> dict[str, Any]:
    """Did memory, Redis keys and rows stay level? The last third against the middle third:
    of the whole run for keys, of each process's life (a deploy starts a new one) for memory."""
    third = max(1, len(samples) // 3)
    middle, last = samples[third : 2 * third] or samples, samples[-third:]
    findings: dict[str, Any] = {"problems": [], "rss_mib": {}}
    lives: dict[int, list[int]] = {}
    for s in samples:
        for pid, rss in zip(s.pids, s.rss, strict=True):
            if pid and rss:
                lives.setdefault(pid, []).append(rss)
    for pid, series in lives.items():
        part = len(series) // 3
        if part < 3:
            continue  # too short a life to say
        before, after = statistics.median(series[part : 2 * part]), statistics.median(series[-part:])
        findings["rss_mib"][pid] = [round(before / 2**20, 1), round(after / 2**20, 1)]
        if after - before > max(RSS_GROWTH_FLOOR, RSS_GROWTH_LIMIT * before):
            findings["problems"].append(f"daphne pid {pid} grew from {before / 2**20:.0f} to {after / 2**20:.0f} MiB")
    key_max = max(s.redis_keys for s in samples)
    findings["redis_keys_max"] = key_max
    if statistics.median(s.redis_keys for s in last) > 2 * max(10, statistics.median(s.redis_keys for s in middle)):
        findings["problems"].append("Redis keys kept growing")
    findings["rows_minus_open_max"] = max(s.rows - s.open_sockets for s in samples)
    return findings


async def soak(args: argparse.Namespace) -> int:
    scratch = Path(tempfile.mkdtemp(prefix="chatsite-soak-"))
    users = [f"soak{i}" for i in range(args.users)]
    rooms = [f"soak-{i}" for i in range(args.rooms)]
    template = migrated_template(scratch)
    (scratch / "cluster").mkdir()
    cluster = start_cluster(
        scratch / "cluster",
        template,
        users={name: [] for name in users},
        rooms=rooms,
        daphne_args=DAPHNE_ARGS,
        DJANGO_SETTINGS_MODULE="chatsite.settings",  # production's, not the tests' (tests/settings.py)
        **PRODUCTION_LIMITS,
    )
    totals = Totals()
    clients: list[FaultClient] = []
    problems: list[str] = []
    try:
        started = time.monotonic()
        for n in range(args.clients):
            client = FaultClient(
                cluster.balancer.ws_url,
                cookie=cluster.cookies[users[n % len(users)]],
                origin=cluster.balancer.origin,
                name=f"c{n}",
                local_host=f"127.0.{3 + n // 250}.{n % 250 + 1}",
            )
            await client.recover(wait=60, resume=False)
            await client.join(rooms[n % len(rooms)], wait=60)
            clients.append(client)
        print(f"{len(clients)} clients in {len(rooms)} rooms after {time.monotonic() - started:.0f} s", flush=True)

        stop = asyncio.Event()
        mean_gap = args.clients / args.rate
        tasks = [
            asyncio.create_task(chat(c, rooms[n % len(rooms)], mean_gap, args.churn_seconds, stop, totals))
            for n, c in enumerate(clients)
        ]
        tasks.append(asyncio.create_task(sampler(cluster, clients, stop, totals, started)))
        if args.deploy_every:
            tasks.append(asyncio.create_task(deploys(cluster, args.deploy_every * 60, stop, totals)))
        await asyncio.sleep(args.minutes * 60)
        stop.set()
        await asyncio.gather(*tasks)

        # Quiet: every client resumes, then the invariant check in every room.
        await asyncio.gather(*(c.recover(wait=120) for c in clients if c.closed))
        reports = {}
        for index, room in enumerate(rooms):
            members = [c for n, c in enumerate(clients) if n % len(rooms) == index]
            try:
                reports[room] = str(await check_invariants(room, members, cluster.read_store, recover=True, wait=120))
            except AssertionError as failure:
                problems.append(f"{room}: {failure}")
        await asyncio.sleep(1)
        totals.samples.append(await asyncio.to_thread(sample, cluster, clients, started))
        found = levels(totals.samples)
        problems += found.pop("problems")
        final = totals.samples[-1]
        if final.rows != final.open_sockets:
            problems.append(f"{final.rows} connection rows for {final.open_sockets} open sockets")
        if totals.send_failures:
            problems.append(f"{totals.send_failures} sends never acked within 60 s")
        summary = {
            "minutes": args.minutes,
            "clients": args.clients,
            "rooms": args.rooms,
            "rate": args.rate,
            "sent": totals.sent,
            "reconnects": totals.reconnects,
            "deploys": totals.deploys,
            "levels": found,
            "rooms_checked": reports,
            "problems": problems,
            "samples": [asdict(s) for s in totals.samples],
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=2))
        print(json.dumps({k: v for k, v in summary.items() if k != "samples"}, indent=2))
        print(f"summary written to {args.out}")
        return 1 if problems else 0
    finally:
        await close_all(clients)
        cluster.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=300)
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--users", type=int, default=60)
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second, all clients together")
    parser.add_argument("--churn-seconds", type=float, default=120.0, help="mean time between a client's reconnects")
    parser.add_argument("--deploy-every", type=float, default=10.0, help="minutes between rolling deploys (0: none)")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "soak" / "latest.json")
    return asyncio.run(soak(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
