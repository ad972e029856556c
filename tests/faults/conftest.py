"""Fault and abuse tests (issue 8): one production-shaped cluster for the whole directory.

The cluster (tests/faults/cluster.py: HAProxy, two daphne processes, Redis behind a fault
proxy, one SQLite database) runs with the abuse limits switched on and short timeouts, so
every module shares it instead of paying for its own processes:

- rate limits: 5 sends/s per socket (burst 5), 8 per 16 s per user, 60 frames per 2 s per socket,
  5 connections per 60 s per user, 20 per 10 s per client address, 4429 after 3 refusals. The
  per-user buckets refill slowly on purpose: a test that spends one must not see it refilled
  because a busy machine made the spending slow (per-user buckets use Redis's clock, which a
  test cannot own);
- daphne pings an idle socket every second and drops it 2 s after an unanswered ping;
- a socket may hold 128 KiB of unsent frames before it is dropped;
- CHAT_TEST_CRASH_AFTER_STORE is set (tests/faults/cluster.py's CRASH_TEXT).

Each test's clients connect from a loopback address of their own (cluster.next_address),
as different people's would, so one test never spends another's per-address budget.
Scenario users are bots (exempt from rate limits, so a fault, not a limit, is what they
meet); abuse tests take ordinary `people` and a `fresh_room` each. Users, sessions and rooms
are made once, up front (harness.set_up), because signing up through the site hashes a
password per user.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tests.faults.cluster import Cluster, close_all, start_cluster
from tests.faults.harness import FaultClient, check_invariants
from tests.fixtures.faultproxy import fault_proxy_factory

__all__ = ["fault_proxy_factory"]

BOTS = [f"bot{i}" for i in range(10)]
PEOPLE = [f"person{i}" for i in range(40)]
MODERATOR = "moderator"
ROOMS = [f"room{i}" for i in range(60)]
PRIVATE_ROOM = "private"  # members: MEMBER only (and moderators see every room)
MEMBER = "member"
APP_ORIGIN = "https://app.example.com"

CLUSTER_ENV = {
    "CHAT_RATE_LIMIT_SEND_PER_CONNECTION": "5/1",
    "CHAT_RATE_LIMIT_SEND_PER_USER": "8/16",
    "CHAT_RATE_LIMIT_FRAMES_PER_CONNECTION": "60/2",
    "CHAT_RATE_LIMIT_CONNECT_PER_USER": "5/60",
    "CHAT_RATE_LIMIT_CONNECT_PER_ADDRESS": "20/10",
    "CHAT_RATE_LIMIT_STRIKES": "3",
    "CHAT_MAX_SEND_BUFFER_BYTES": str(128 * 1024),
    "CHAT_ALLOWED_ORIGINS": APP_ORIGIN,
}
PING_INTERVAL = 1
PING_TIMEOUT = 2
# daphne checks its sockets every 2 s: a silent peer is dropped within interval + 2 + timeout.
DEAD_PEER_SECONDS = PING_INTERVAL + 2.0 + PING_TIMEOUT


@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory, migrated_db: Path) -> Iterator[Cluster]:
    users: dict[str, list[str]] = {
        **{name: ["bots"] for name in BOTS},
        **{name: [] for name in PEOPLE},
        MODERATOR: ["moderators"],
        MEMBER: [],
    }
    running = start_cluster(
        tmp_path_factory.mktemp("faults-cluster"),
        migrated_db,
        users=users,
        rooms=ROOMS,
        private={PRIVATE_ROOM: [MEMBER]},
        daphne_args=("--ping-interval", str(PING_INTERVAL), "--ping-timeout", str(PING_TIMEOUT)),
        **CLUSTER_ENV,
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def up(cluster: Cluster) -> Iterator[Cluster]:
    """The cluster with every process running and Redis healthy, before and after the test."""
    cluster.ensure_running()
    yield cluster
    cluster.redis_proxy.heal()
    cluster.redis.resume()
    cluster.ensure_running()


class Pool:
    """Hands out names nobody has used yet in this session (users, rooms)."""

    def __init__(self, names: list[str]) -> None:
        self.names = list(names)

    def take(self) -> str:
        assert self.names, "the fault suite ran out of pre-made names: add more in tests/faults/conftest.py"
        return self.names.pop(0)


@pytest.fixture(scope="package")
def people_pool() -> Pool:
    return Pool(PEOPLE)


@pytest.fixture(scope="package")
def room_pool() -> Pool:
    return Pool(ROOMS)


@pytest.fixture
def person(people_pool: Pool) -> Callable[[], str]:
    """An ordinary user (rate-limited) no other test has used."""
    return people_pool.take


@pytest.fixture
def fresh_room(room_pool: Pool) -> Callable[[], str]:
    """A room (already created) no other test has used."""
    return room_pool.take


class Room:
    """A room with two bystanders who must not notice anything."""

    def __init__(self, cluster: Cluster, room_id: str, bystanders: list[FaultClient]) -> None:
        self.cluster = cluster
        self.room_id = room_id
        self.bystanders = bystanders

    async def unharmed(self, *others: FaultClient) -> None:
        """The invariant check: everyone hears a probe, the store and every view agree."""
        await check_invariants(self.room_id, [*self.bystanders, *others], self.cluster.read_store, recover=False)
        for client in (*self.bystanders, *others):
            assert client.close_codes == [], f"{client.name} was disturbed"


@pytest.fixture
async def room(up: Cluster, fresh_room: Callable[[], str]) -> AsyncIterator[Room]:
    room_id = fresh_room()
    bystanders = await up.clients(BOTS, room_id, 2)
    await bystanders[0].send_reliably(room_id, "hello")
    yield Room(up, room_id, bystanders)
    await close_all(bystanders)
