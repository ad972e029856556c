"""Settings of the tutorial peer: the tutorial's own choices, Redis from BENCH_REDIS_URL."""

from __future__ import annotations

import os

SECRET_KEY = "bench-tutorial-peer-not-secret"  # a loopback benchmark peer
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "daphne",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "channels",
]
ROOT_URLCONF = "bench.peers.tutorial.urls"
ASGI_APPLICATION = "bench.peers.tutorial.asgi.application"
# The tutorial's AuthMiddlewareStack never touches the database unless a consumer reads
# scope["user"]; this one does not.
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
USE_TZ = True
# The tutorial's layer config: only the host; capacity, expiry and the pool stay default.
_host: str | dict[str, object] = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
# One change from the tutorial, or the peer goes deaf at once (docs/performance.md):
# redis-py 8's default socket timeout (5 s) equals channels_redis's BZPOPMIN timeout
# (5 s), and when a process has been idle that long the read can time out first, killing
# the receive loop every consumer of the process shares. BENCH_TUTORIAL_SOCKET_TIMEOUT=0
# runs the pure defaults.
_socket_timeout = float(os.environ.get("BENCH_TUTORIAL_SOCKET_TIMEOUT") or "30")
if _socket_timeout:
    _host = {"address": _host, "socket_timeout": _socket_timeout}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [_host]},
    }
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
