"""channels_redis's pub/sub layer, with publishing outside the shard's lock.

channels_redis (4.3) gives each Redis host one `RedisSingleShardConnection`, and its
`publish` holds the shard's asyncio lock around the PUBLISH, the same lock every subscribe
and unsubscribe of the process takes. While Redis is down, redis-py's retries (settings:
three, backing off 0.1 + 0.2 + 0.4 s) run inside that lock: every other room's publish and
every join of the process queued behind one failing message (issue 24). The lock guards
the shard's subscriber (its pubsub connection and the set of subscribed channels); a
PUBLISH needs neither, and the shard's client takes a pooled connection per command, so
here it runs without the lock.

Checked against channels_redis 4.3.0: a version whose shards lack the attributes used here
is reported once and published through the library's own path, never silently dropped.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer, RedisSingleShardConnection
from channels_redis.utils import _wrap_close
from redis.asyncio import Redis

from chat.redis_pools import waiting_pool

log = logging.getLogger(__name__)


class WaitingShard(RedisSingleShardConnection):  # type: ignore[misc]
    """A shard whose client waits for one of a few connections (chat.redis_pools) instead of
    opening one more for each publish of a burst."""

    _redis: Redis | None
    _pubsub: Any

    def _ensure_redis(self) -> None:
        if self._redis is None:
            client = Redis(connection_pool=waiting_pool(self.host))
            self._redis, self._pubsub = client, client.pubsub()


class PubSubLoopLayer(RedisPubSubLoopLayer):  # type: ignore[misc]
    warned = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for shard in getattr(self, "_shards", ()):
            if type(shard) is RedisSingleShardConnection:
                shard.__class__ = WaitingShard

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        group_channel = self._get_group_channel_name(group)
        shard = self._get_shard(group_channel)
        ensure = getattr(shard, "_ensure_redis", None)
        if ensure is None or not hasattr(shard, "_redis"):  # pragma: no cover - another channels_redis
            if not PubSubLoopLayer.warned:
                PubSubLoopLayer.warned = True
                log.error("chat.layers: channels_redis's shard changed; publishing under its lock")
            await super().group_send(group, message)
            return
        ensure()  # creates the client on first use; nothing here yields, so no lock is needed
        await shard._redis.publish(group_channel, self.channel_layer.serialize(message))


class PubSubChannelLayer(RedisPubSubChannelLayer):  # type: ignore[misc]
    """RedisPubSubChannelLayer whose per-loop layers are PubSubLoopLayer."""

    def _get_layer(self) -> PubSubLoopLayer:
        loop = asyncio.get_running_loop()
        layer: PubSubLoopLayer | None = self._layers.get(loop)
        if layer is None:
            layer = PubSubLoopLayer(*self._args, **self._kwargs, channel_layer=self)
            self._layers[loop] = layer
            _wrap_close(self, loop)
        return layer
