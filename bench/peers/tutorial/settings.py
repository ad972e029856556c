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
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")]},
    }
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
