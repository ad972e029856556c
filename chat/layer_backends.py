"""Which kind of channel layer a CHANNEL_LAYERS entry names, without importing the layer.

The rate limits' shared buckets, the Redis watchdog, presence and the live dashboard ask
whether the process's layer is Redis. Answering from the BACKEND's dotted path keeps
channels-redis and redis (about 0.1 s of a process's start) out of a process whose layer is
the embedded in-memory one; chat.layers, which subclasses channels-redis, is imported by
Channels only when CHANNEL_LAYERS names it.
"""

from __future__ import annotations

from typing import Any, Final

# The pub/sub layer with publishing outside the shard's lock (chat.layers).
PUBSUB_BACKEND: Final = "chat.layers.PubSubChannelLayer"


def redis_backed(layer: dict[str, Any]) -> bool:
    """Whether a CHANNEL_LAYERS entry is a Redis layer: channels_redis's own, or chat.layers'.

    A test on the library's name alone once switched the shared buckets and the watchdog off
    when the pub/sub layer became Chatsite's own."""
    backend = str(layer.get("BACKEND", ""))
    return backend.startswith(("channels_redis.", "chat.layers."))
