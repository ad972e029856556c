"""A small production-shaped Chatsite on loopback, for fault tests and the soak.

HAProxy (round robin, health-checked) in front of two daphne processes that share one
database (SQLite, the local backend) and one Redis (the pub/sub channel layer), with a
fault proxy between the processes and Redis. Every process and port is 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.test_load_balancer import HAPROXY, HAProxy
from tests.faults.harness import FaultClient, Stored, set_up, sqlite_reader
from tests.fixtures.faultproxy import FaultProxy
from tests.fixtures.redis import RedisServer, redis_server_binary
from tests.fixtures.servers import DaphneServer, base_env

__all__ = ["HAPROXY", "Cluster", "close_all", "next_address", "start_cluster"]

CRASH_TEXT = "crash right after the store"  # CHAT_TEST_CRASH_AFTER_STORE of the cluster
METRICS_TOKEN = "fault-suite-metrics-token-0123456789abcdef"  # the cluster's METRICS_TOKEN
# HAProxy checks each process every 200 ms and needs two good checks to send it traffic.
BALANCER_RISE_SECONDS = 0.6


@dataclass
class Cluster:
    data_dir: Path
    redis: RedisServer
    redis_proxy: FaultProxy
    servers: list[DaphneServer]
    balancer: HAProxy
    cookies: dict[str, str]

    @property
    def db_path(self) -> Path:
        return self.data_dir / "db.sqlite3"

    def read_store(self, room_id: str) -> list[Stored]:
        return sqlite_reader(self.db_path)(room_id)

    def metrics(self, index: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Process `index`'s /metrics (straight from it, not through the balancer):
        (sample name, its labels) -> value."""
        return self.servers[index].metrics(METRICS_TOKEN)

    def metric(self, name: str, **labels: str) -> float:
        """The sum over the cluster's processes of every `name` sample that has `labels`."""
        wanted = set(labels.items())
        return sum(
            value
            for index in range(len(self.servers))
            for (sample, have), value in self.metrics(index).items()
            if sample == name and wanted <= have
        )

    def running(self, index: int) -> bool:
        proc = self.servers[index].proc
        return proc is not None and proc.poll() is None

    def ensure_running(self) -> None:
        """Start every process that is down (killed, crashed, stopped) and let the balancer see it."""
        down = [server for index, server in enumerate(self.servers) if not self.running(index)]
        if down:
            with ThreadPoolExecutor(len(down)) as pool:
                list(pool.map(DaphneServer.start, down))
            time.sleep(BALANCER_RISE_SECONDS)

    def exit_codes(self, wait: float) -> list[int]:
        """Exit codes of the processes that have exited, once at least one has (within `wait` s)."""
        deadline = time.monotonic() + wait
        while True:
            codes = [s.proc.returncode for s in self.servers if s.proc is not None and s.proc.poll() is not None]
            if codes or time.monotonic() > deadline:
                return codes
            time.sleep(0.05)

    def signal(self, index: int, sig: int) -> None:
        proc = self.servers[index].proc
        assert proc is not None and proc.poll() is None
        os.kill(proc.pid, sig)

    async def clients(
        self, users: list[str], room: str | None, count: int, *, origin: str | None = None
    ) -> list[FaultClient]:
        """`count` clients of `users` (in turn) through the balancer, joined to `room`.

        Consecutive sockets alternate between the processes (round robin). Each call's
        clients come from a loopback address of their own, as different people's would."""
        clients = []
        address = next_address()
        for n in range(count):
            user = users[n % len(users)]
            client = await FaultClient.open(
                self.balancer.ws_url,
                cookie=self.cookies[user],
                origin=origin or self.balancer.origin,
                name=f"{user}#{n}",
                local_host=address,
            )
            if room is not None:
                await client.join(room)
            clients.append(client)
        return clients

    def stop(self) -> None:
        for server in self.servers:
            if server.proc is not None and server.proc.poll() is None:
                os.kill(server.proc.pid, signal.SIGCONT)
            server.stop()
        self.balancer.stop()
        self.redis_proxy.stop()
        self.redis.stop()


def start_cluster(
    data_dir: Path,
    migrated_db: Path,
    *,
    count: int = 2,
    users: dict[str, list[str]] | None = None,
    rooms: Iterable[str] = (),
    private: dict[str, list[str]] | None = None,
    daphne_args: tuple[str, ...] = (),
    **env: str,
) -> Cluster:
    """Start Redis, its fault proxy, `count` daphne processes and HAProxy in front of them,
    with `users` (name: groups) signed in (`Cluster.cookies`) and `rooms` created."""
    binary = redis_server_binary()
    assert binary is not None, "no redis-server"
    shutil.copy(migrated_db, data_dir / "db.sqlite3")
    redis = RedisServer(binary, data_dir).start()
    proxy = FaultProxy("127.0.0.1", redis.port).start()
    servers = [
        DaphneServer(
            data_dir,
            base_env(
                data_dir,
                REDIS_URL=f"redis://{proxy.address}/0",
                CHAT_INSTANCE_ID=f"fault-{index}",
                CHAT_LAYER_WATCHDOG_SECONDS="0.5",
                CHAT_TEST_CRASH_AFTER_STORE=CRASH_TEXT,
                METRICS_TOKEN=METRICS_TOKEN,
                **env,
            ),
            args=("--proxy-headers", *daphne_args),
        )
        for index in range(count)
    ]
    with ThreadPoolExecutor(count + 1) as pool:
        # Users, sessions and rooms are written while the processes start.
        cookies = pool.submit(set_up, base_env(data_dir), users=users or {}, rooms=rooms, private=private)
        list(pool.map(DaphneServer.start, servers))
        balancer = HAProxy(servers, data_dir).start()
        time.sleep(BALANCER_RISE_SECONDS)
        return Cluster(
            data_dir=data_dir,
            redis=redis,
            redis_proxy=proxy,
            servers=servers,
            balancer=balancer,
            cookies=cookies.result(),
        )


_addresses = itertools.count()


def next_address() -> str:
    """A loopback address no other test has connected from (127.0.2.1, 127.0.2.2, ...)."""
    n = next(_addresses)
    return f"127.0.{2 + n // 250}.{n % 250 + 1}"


async def close_all(clients: list[FaultClient]) -> None:
    await asyncio.gather(*(asyncio.wait_for(c.close(), 5) for c in clients), return_exceptions=True)
