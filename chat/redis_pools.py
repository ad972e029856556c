"""Redis connection pools that wait for a free connection instead of opening another.

redis-py's asyncio pool opens a new connection whenever every pooled one is busy. A burst of
commands, such as a stopping process's 2,500 sockets each reporting its presence and
publishing it, opened hundreds at once: each a TCP connect, a HELLO and two CLIENT SETINFO,
with redis-py reading its own package's metadata to name itself. That was about 40 % of the
stopping process's CPU in `bench.storm` (docs/performance.md, "A burst's Redis commands on a
few connections"), and every one of those connections stayed open in the pool afterwards,
counted against Redis's `maxclients`. A command is one round trip: a few connections carry a
burst when the rest of it waits its turn.

Used by the pub/sub layer's publishing (chat.layers) and by presence (chat.presence). A
Sentinel host keeps channels_redis's own pool.
"""

from __future__ import annotations

from typing import Any, Final

from channels_redis.utils import create_pool
from redis.asyncio import BlockingConnectionPool, ConnectionPool

BURST_CONNECTIONS: Final = 32
# How long a command waits for a free connection before it fails as a Redis error would.
WAIT_SECONDS: Final = 5.0


def waiting_pool(host: dict[str, Any]) -> ConnectionPool:
    """A pool for `host` (a channel layer host entry) of at most BURST_CONNECTIONS (fewer if
    the host asks), where a command waits for a free connection."""
    host = dict(host)
    if "master_name" in host:
        pool: ConnectionPool = create_pool(host)
        return pool
    host["max_connections"] = min(int(host.get("max_connections") or BURST_CONNECTIONS), BURST_CONNECTIONS)
    wait = float(host.get("socket_timeout") or WAIT_SECONDS)
    if "address" in host:
        return BlockingConnectionPool.from_url(host.pop("address"), timeout=wait, **host)
    return BlockingConnectionPool(timeout=wait, **host)
