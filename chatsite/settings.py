"""Chatsite settings: one module, read from the environment, embedded defaults.

With no environment at all, Chatsite runs on its embedded default: SQLite, the in-memory
channel layer, the local storage backend and built-in accounts. Production parts are
switched on by environment variables (see docs/operations.md for the full table); each
fails at startup with a clear message when half-configured. Secrets have no default in
production (CHATSITE_ENV=production).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from chatsite.dburl import database_from_url
from chatsite.env import env_bool, env_float, env_int, env_list, env_str, require_together

BASE_DIR = Path(__file__).resolve().parent.parent

CHATSITE_ENV = env_str("CHATSITE_ENV", "development")
if CHATSITE_ENV not in {"development", "production"}:
    raise ImproperlyConfigured(f"CHATSITE_ENV must be development or production, got {CHATSITE_ENV!r}")
PRODUCTION = CHATSITE_ENV == "production"

# Runtime data of the embedded default (SQLite file, signing key) lives outside the repo's
# tracked files.
DATA_DIR = Path(env_str("CHATSITE_DATA_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DJANGO_DEBUG", default=not PRODUCTION)

SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is required when CHATSITE_ENV=production")
    if not DEBUG:
        # The development key is public (it is in this file): a run without DEBUG is one that
        # others may reach, and their sessions and signed cookies would be forgeable.
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is required when DJANGO_DEBUG=0: the development key is public "
            "(generate one with: openssl rand -base64 48)"
        )
    SECRET_KEY = "chatsite-development-only-not-secret"  # noqa: S105 - development default

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "[::1]"])
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS is required when CHATSITE_ENV=production")

# Browser origins allowed to open the WebSocket besides the site's own (a React app served
# from a CloudFront domain, say). Exact origins: scheme://host[:port].
CHAT_ALLOWED_ORIGINS = env_list("CHAT_ALLOWED_ORIGINS")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "chat.admin_apps.ChatAdminConfig",  # django.contrib.admin with the moderation pages
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "accounts",
    "chat",
    "analytics",
    "unread",
    "uploads",
    "search",  # user search over the rooms they read (issue 19)
]

MIDDLEWARE = [
    "chatsite.ops.health.HealthCheckMiddleware",  # first: before host checks and the HTTPS redirect
    "chatsite.ops.inflight.RequestThreadsMiddleware",  # the first in a worker thread: a stop waits for them
    "chatsite.ops.logs.request_id_middleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.sessions.SessionCutoffMiddleware",  # "sign out everywhere" ends older sessions
    "accounts.middleware.BearerTokenMiddleware",  # Authorization: Bearer on /api/
    "accounts.middleware.RefusedUserMiddleware",  # a banned user calls no /api/ endpoint
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "chatsite.urls"
ASGI_APPLICATION = "chatsite.asgi.application"
WSGI_APPLICATION = "chatsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "uploads.context.uploads",  # the bucket's origin for the pages' CSP (issue 18)
            ],
        },
    },
]


# Every wait on the database is bounded, well inside a client's patience (its ack timeout is
# 15 s, its pong timeout 10 s, static/chat/chat.js): a process frozen while it holds the write
# lock (SQLite) or a room's row lock (PostgreSQL) once stalled every writer of the cluster with
# no error at all (issue 24). Past a bound the store call fails, and the client gets a retryable
# storage_unavailable with retryAfter (chat.services._store_call); nothing was written.
# - how long a statement waits for a lock (PostgreSQL lock_timeout, SQLite's busy timeout);
DATABASE_LOCK_TIMEOUT = env_float("DATABASE_LOCK_TIMEOUT", 3.0)
# - how long one statement may run (PostgreSQL statement_timeout; 0: unbounded, for a long
#   migration run by hand);
DATABASE_STATEMENT_TIMEOUT = env_float("DATABASE_STATEMENT_TIMEOUT", 10.0)
# - how long a transaction may sit idle holding its locks (PostgreSQL
#   idle_in_transaction_session_timeout): the server ends a frozen process's transaction,
#   and with it the row lock every other writer of the room waits for.
DATABASE_IDLE_TRANSACTION_TIMEOUT = env_float("DATABASE_IDLE_TRANSACTION_TIMEOUT", 5.0)
for _name, _value in (
    ("DATABASE_LOCK_TIMEOUT", DATABASE_LOCK_TIMEOUT),
    ("DATABASE_STATEMENT_TIMEOUT", DATABASE_STATEMENT_TIMEOUT),
    ("DATABASE_IDLE_TRANSACTION_TIMEOUT", DATABASE_IDLE_TRANSACTION_TIMEOUT),
):
    if not 0 <= _value <= 600:
        raise ImproperlyConfigured(f"{_name} must be between 0 and 600 seconds")
if DATABASE_LOCK_TIMEOUT <= 0:
    raise ImproperlyConfigured("DATABASE_LOCK_TIMEOUT must be positive: an unbounded lock wait stalls every writer")
# Threads a process gives a socket's opening reads and writes on PostgreSQL, each with its own
# connection (chatsite.db.side_by_side); the rest keeps Django's one sync thread. 1: all on that
# thread. SQLite always uses the one thread. A process then holds up to this many connections more.
DATABASE_OPEN_THREADS = env_int("DATABASE_OPEN_THREADS", 4, minimum=1)
if DATABASE_OPEN_THREADS > 32:
    raise ImproperlyConfigured(f"DATABASE_OPEN_THREADS must be at most 32, got {DATABASE_OPEN_THREADS}")


def _postgres_timeouts() -> str:
    """libpq `options`: the server-side bounds, set for every session (milliseconds)."""
    bounds = {
        "lock_timeout": DATABASE_LOCK_TIMEOUT,
        "statement_timeout": DATABASE_STATEMENT_TIMEOUT,
        "idle_in_transaction_session_timeout": DATABASE_IDLE_TRANSACTION_TIMEOUT,
    }
    return " ".join(f"-c {name}={round(seconds * 1000)}" for name, seconds in bounds.items())


def _bounded(database: dict[str, object]) -> dict[str, object]:
    """The database entry with the waits above applied: server-side options for PostgreSQL
    (added to any `options` the URL gave), the busy timeout for SQLite."""
    options = dict(database.get("OPTIONS") or {})  # type: ignore[call-overload]
    if database["ENGINE"] in {"chatsite.db.postgresql", "django.db.backends.postgresql"}:
        options["options"] = " ".join(filter(None, [_postgres_timeouts(), options.get("options", "")]))
    else:
        options.setdefault("timeout", DATABASE_LOCK_TIMEOUT)
    return {**database, "OPTIONS": options}


_database_url = env_str("DATABASE_URL")
if _database_url:
    DATABASES = {
        "default": _bounded(
            database_from_url(
                _database_url,
                password=env_str("DATABASE_PASSWORD"),
                password_secret=env_str("DATABASE_PASSWORD_SECRET"),
            )
        )
    }
else:
    if PRODUCTION:
        raise ImproperlyConfigured("DATABASE_URL is required when CHATSITE_ENV=production")
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "db.sqlite3",
            # Several writers (daphne processes) share one SQLite file: wait for the write
            # lock, but no longer than DATABASE_LOCK_TIMEOUT. Write-ahead log, still synced on
            # every commit (durable): a stored message costs one sync instead of the rollback
            # journal's several, and readers never wait for a writer (measured: 10 % of a
            # small room's CPU per message, docs/performance.md).
            "OPTIONS": {
                "timeout": DATABASE_LOCK_TIMEOUT,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
            },
            # Keep connections across requests and socket events: opening a SQLite
            # connection (and registering its functions) per call was ~8 % of a connect's CPU.
            "CONN_MAX_AGE": 600,
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat:rooms"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(BASE_DIR / "staticfiles")))
# The React client's build (frontend/, `make frontend`): served at /app/ by chat/spa.py from
# here, and pushed to S3 by deploy/push_static.py from here. Not a static files directory:
# collected, it would be a second copy of the build (with the build's own config.json).
FRONTEND_DIST = Path(env_str("CHATSITE_FRONTEND_DIST", str(BASE_DIR / "frontend" / "dist")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "chatsite.static_storage.StaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- Security (Django's deployment checklist) -------------------------------------------
# Django's database sessions, their read written out (every socket opened reads one).
SESSION_ENGINE = "accounts.session_store"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
if PRODUCTION:
    SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    # On by default: behind an ALB or CloudFront, X-Forwarded-Proto says https and nothing
    # redirects; the balancer's plain-HTTP health probe is answered before this
    # (chatsite.ops.health sits first in MIDDLEWARE).
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31_536_000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
    if not SECURE_HSTS_PRELOAD:
        # Preloading is a deliberate, hard-to-undo submission to the browsers' lists, for the
        # owner of the registrable domain to opt into (DJANGO_HSTS_PRELOAD=1); not a default.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Channel layer ----------------------------------------------------------------------
# REDIS_URL (or REDIS_SENTINELS + REDIS_SENTINEL_MASTER) switches to channels-redis. The
# pub/sub layer is the default: measured here it costs a fifth of the core layer's CPU per
# delivery, never drops at a capacity, and re-subscribes by itself after a Redis restart.
# docs/operations.md ("Channel layer") has the numbers and the trade-offs.
REDIS_URL = env_str("REDIS_URL")
# Several Redis primaries (comma-separated URLs) instead of REDIS_URL: channels-redis spreads
# channels and groups over them by consistent hashing, so each room's group lives on one
# host and the pub/sub load is shared (docs/operations.md, "Past one Redis").
REDIS_URLS = env_list("REDIS_URLS")
if REDIS_URLS and (REDIS_URL or env_list("REDIS_SENTINELS")):
    raise ImproperlyConfigured("REDIS_URLS replaces REDIS_URL and REDIS_SENTINELS: set one of them")
# The AUTH token, when it is not in REDIS_URL (on ECS it is injected from Secrets Manager).
REDIS_PASSWORD = env_str("REDIS_PASSWORD")
REDIS_SENTINELS = env_list("REDIS_SENTINELS")  # host:port,host:port
REDIS_SENTINEL_MASTER = env_str("REDIS_SENTINEL_MASTER")
if bool(REDIS_SENTINELS) != bool(REDIS_SENTINEL_MASTER):
    raise ImproperlyConfigured("Redis Sentinel needs both REDIS_SENTINELS and REDIS_SENTINEL_MASTER")
CHANNEL_LAYER = env_str("CHANNEL_LAYER", "pubsub")
if CHANNEL_LAYER not in {"pubsub", "core"}:
    raise ImproperlyConfigured(f"CHANNEL_LAYER must be pubsub or core, got {CHANNEL_LAYER!r}")


def _redis_host(address: str = REDIS_URL) -> dict[str, object]:
    # redis-py 8 caps its asyncio pool at 100 and raises instead of waiting; a burst of
    # handshakes doing group_add needs more.
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    pool: dict[str, object] = {
        "max_connections": env_int("REDIS_MAX_CONNECTIONS", 1000, minimum=10),
        # redis-py's asyncio connections do not retry by default: after a Redis restart every
        # pooled connection would fail once (a join answered with an error, a broadcast lost).
        # A retried command may run twice; receivers drop a seq they already have.
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), 3),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
    }
    if REDIS_PASSWORD:
        pool["password"] = REDIS_PASSWORD
    if REDIS_SENTINELS:
        sentinels = []
        for entry in REDIS_SENTINELS:
            host, _, port = entry.rpartition(":")
            if not host or not port.isdigit():
                raise ImproperlyConfigured(f"REDIS_SENTINELS entries are host:port, got {entry!r}")
            sentinels.append((host, int(port)))
        return {"sentinels": sentinels, "master_name": REDIS_SENTINEL_MASTER, **pool}
    return {"address": address, **pool}


if REDIS_URL or REDIS_URLS or REDIS_SENTINELS:
    _redis_hosts = [_redis_host(url) for url in REDIS_URLS] if REDIS_URLS else [_redis_host()]
    if CHANNEL_LAYER == "pubsub":
        from chat.layer_backends import PUBSUB_BACKEND

        CHANNEL_LAYERS = {
            "default": {
                # channels_redis's pub/sub layer, publishing outside its shard lock (chat.layers).
                "BACKEND": PUBSUB_BACKEND,
                "CONFIG": {"hosts": _redis_hosts},
            }
        }
    else:
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {
                    # redis-py 8's default socket timeout (5 s) equals the layer's BZPOPMIN
                    # timeout (5 s): the read can time out first and kill the process's
                    # receive loop after 5 idle seconds (measured by bench/, see
                    # docs/performance.md). Give reads room above it.
                    "hosts": [
                        {**host, "socket_timeout": env_float("REDIS_SOCKET_TIMEOUT", 30.0)} for host in _redis_hosts
                    ],
                    # Past capacity a channel drops silently (logged at INFO); seq repair fills
                    # the hole, but a large capacity keeps repairs rare.
                    "capacity": env_int("CHANNEL_LAYER_CAPACITY", 10_000, minimum=100),
                    # Must exceed the longest socket life (daphne --websocket_timeout, 86,400 s
                    # by default), or a long-lived socket silently leaves its rooms.
                    "group_expiry": env_int("CHANNEL_LAYER_GROUP_EXPIRY", 2 * 86_400, minimum=60),
                    "expiry": 60,
                },
            }
        }
else:
    if PRODUCTION:
        raise ImproperlyConfigured(
            "REDIS_URL is required when CHATSITE_ENV=production: the in-memory channel layer "
            "cannot broadcast between daphne processes"
        )
    # channels' in-memory layer, its expiry sweep bounded to once a second (chat.memory_layer).
    CHANNEL_LAYERS = {"default": {"BACKEND": "chat.memory_layer.InMemoryLayer", "CONFIG": {"capacity": 10_000}}}
# How often each daphne process asks Redis for its run_id: a new one means Redis restarted
# (or failed over) and lost the groups, so every local socket rejoins and catches up.
CHAT_LAYER_WATCHDOG_SECONDS = env_float("CHAT_LAYER_WATCHDOG_SECONDS", 2.0)

# --- Chat -------------------------------------------------------------------------------
CHAT_STORAGE_BACKEND = env_str("CHAT_STORAGE_BACKEND", "local")
if CHAT_STORAGE_BACKEND not in {"local", "dynamodb"}:
    raise ImproperlyConfigured(f"CHAT_STORAGE_BACKEND must be local or dynamodb, got {CHAT_STORAGE_BACKEND!r}")
# DynamoDB backend (chat.storage.dynamodb). boto3 reads AWS_ENDPOINT_URL /
# AWS_ENDPOINT_URL_DYNAMODB itself, for a local stand-in such as moto.
AWS_REGION = env_str("AWS_REGION", env_str("AWS_DEFAULT_REGION", "us-east-1"))
DYNAMODB_CONNECTIONS_TABLE = env_str("DYNAMODB_CONNECTIONS_TABLE")
DYNAMODB_MESSAGES_TABLE = env_str("DYNAMODB_MESSAGES_TABLE")
DYNAMODB_ROOMS_TABLE = env_str("DYNAMODB_ROOMS_TABLE")
if CHAT_STORAGE_BACKEND == "dynamodb":
    _missing = [
        name
        for name in ("DYNAMODB_CONNECTIONS_TABLE", "DYNAMODB_MESSAGES_TABLE", "DYNAMODB_ROOMS_TABLE")
        if not env_str(name)
    ]
    if _missing:
        raise ImproperlyConfigured(f"CHAT_STORAGE_BACKEND=dynamodb needs {', '.join(_missing)}")
# How long one DynamoDB call may take: botocore's timeouts and attempts (its "standard"
# retries back off between them). A send whose write fails them all is answered with a
# retryable storage_unavailable; the fault tests shorten them.
DYNAMODB_CONNECT_TIMEOUT = env_float("DYNAMODB_CONNECT_TIMEOUT", 2.0)
DYNAMODB_READ_TIMEOUT = env_float("DYNAMODB_READ_TIMEOUT", 5.0)
DYNAMODB_MAX_ATTEMPTS = env_int("DYNAMODB_MAX_ATTEMPTS", 4, minimum=1)

# --- Shared files (issue 18: uploads/, docs/operations.md "File sharing") -----------------
# S3 through django-storages when CHAT_UPLOADS_BUCKET is set: browsers post straight to the
# bucket (presigned POST) and fetch from CloudFront (a signed URL for the CHAT_UPLOADS_CDN_*
# distribution, whose response-headers policy adds the nosniff S3 cannot), no file byte
# through daphne. Without it, Django's FileSystemStorage under CHAT_UPLOADS_DIR (the embedded
# default).
CHAT_UPLOADS_BUCKET = env_str("CHAT_UPLOADS_BUCKET")
# The uploads distribution (deploy/README.md "Shared files"): its host name, the id of the
# CloudFront public key its key group trusts, and that key's private half (PEM). All or none;
# required in production with a bucket. Without them, S3 downloads stream through the site.
CHAT_UPLOADS_CDN_DOMAIN = env_str("CHAT_UPLOADS_CDN_DOMAIN")
CHAT_UPLOADS_CDN_KEY_ID = env_str("CHAT_UPLOADS_CDN_KEY_ID")
# "\n" stands for a line break: a PEM fits one line of an environment file.
CHAT_UPLOADS_CDN_PRIVATE_KEY = env_str("CHAT_UPLOADS_CDN_PRIVATE_KEY").replace("\\n", "\n")
CHAT_UPLOADS_DIR = Path(env_str("CHAT_UPLOADS_DIR", str(DATA_DIR / "uploads")))
# boto3's own variables name a stand-in (moto); the browser must reach the same endpoint.
CHAT_UPLOADS_ENDPOINT_URL = env_str("AWS_ENDPOINT_URL_S3", env_str("AWS_ENDPOINT_URL")).rstrip("/")
CHAT_MAX_UPLOAD_BYTES = env_int("CHAT_MAX_UPLOAD_BYTES", 25 * 1024 * 1024, minimum=1)
CHAT_UPLOAD_BYTES_PER_USER_PER_DAY = env_int("CHAT_UPLOAD_BYTES_PER_USER_PER_DAY", 500 * 1024 * 1024, minimum=0)
CHAT_UPLOAD_BYTES_PER_ROOM = env_int("CHAT_UPLOAD_BYTES_PER_ROOM", 5 * 1024**3, minimum=0)
CHAT_UPLOAD_TYPES = env_list(
    "CHAT_UPLOAD_TYPES",
    ["image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain", "application/zip",
     "application/gzip", "application/x-7z-compressed"],
)  # fmt: skip
CHAT_UPLOAD_SLOT_SECONDS = env_int("CHAT_UPLOAD_SLOT_SECONDS", 300, minimum=10)  # a slot's (presigned POST's) life
# A frame's download URL: minutes, so a leaked link dies soon; clients ask for fresh ones
# (GET /api/uploads/<id>) when one has expired. What it redirects to lives a minute.
CHAT_UPLOAD_URL_SECONDS = env_int("CHAT_UPLOAD_URL_SECONDS", 300, minimum=10)
CHAT_UPLOAD_REDIRECT_SECONDS = env_int("CHAT_UPLOAD_REDIRECT_SECONDS", 60, minimum=5)
CHAT_UPLOAD_UNATTACHED_SECONDS = env_int("CHAT_UPLOAD_UNATTACHED_SECONDS", 3600, minimum=60)  # then purged
CHAT_UPLOAD_MAX_PIXELS = env_int("CHAT_UPLOAD_MAX_PIXELS", 40_000_000, minimum=1)  # Pillow's bomb limit
CHAT_MAX_ATTACHMENTS = env_int("CHAT_MAX_ATTACHMENTS", 10, minimum=1)


def _uploads_storage() -> tuple[dict[str, Any], str]:
    """The "uploads" storage and the origin browsers reach it on (for CSP); clear errors
    for a half-configured one."""
    from uploads.rules import KNOWN_TYPES  # pure module: no Django

    unknown = sorted(set(CHAT_UPLOAD_TYPES) - set(KNOWN_TYPES))
    if unknown:
        raise ImproperlyConfigured(
            f"CHAT_UPLOAD_TYPES: {', '.join(unknown)} cannot be recognised from a file's bytes; "
            f"choose among {', '.join(sorted(KNOWN_TYPES))}"
        )
    if CHAT_MAX_UPLOAD_BYTES > 5 * 1024**3:
        raise ImproperlyConfigured("CHAT_MAX_UPLOAD_BYTES must be at most 5 GiB (S3's limit for one POST)")
    cdn = [CHAT_UPLOADS_CDN_DOMAIN, CHAT_UPLOADS_CDN_KEY_ID, CHAT_UPLOADS_CDN_PRIVATE_KEY]
    if any(cdn) and not all(cdn):
        raise ImproperlyConfigured(
            "set CHAT_UPLOADS_CDN_DOMAIN, CHAT_UPLOADS_CDN_KEY_ID and CHAT_UPLOADS_CDN_PRIVATE_KEY together"
        )
    if not CHAT_UPLOADS_BUCKET:
        if any(cdn):
            raise ImproperlyConfigured("CHAT_UPLOADS_CDN_* serve the uploads bucket: set CHAT_UPLOADS_BUCKET too")
        return {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(CHAT_UPLOADS_DIR), "base_url": "/api/uploads/"},
        }, ""
    if env_str("CHAT_UPLOADS_DIR"):
        raise ImproperlyConfigured("set CHAT_UPLOADS_BUCKET (S3) or CHAT_UPLOADS_DIR (the file system), not both")
    import re

    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", CHAT_UPLOADS_BUCKET):
        raise ImproperlyConfigured(f"CHAT_UPLOADS_BUCKET {CHAT_UPLOADS_BUCKET!r} is not an S3 bucket name")
    try:
        import storages  # noqa: F401
    except ImportError:
        raise ImproperlyConfigured("CHAT_UPLOADS_BUCKET needs django-storages (see requirements.txt)") from None
    from urllib.parse import urlsplit

    endpoint = urlsplit(CHAT_UPLOADS_ENDPOINT_URL) if CHAT_UPLOADS_ENDPOINT_URL else None
    if endpoint is not None and (endpoint.scheme not in {"http", "https"} or not endpoint.netloc):
        raise ImproperlyConfigured(f"AWS_ENDPOINT_URL_S3 {CHAT_UPLOADS_ENDPOINT_URL!r} is not an http(s) URL")
    origin = (
        f"{endpoint.scheme}://{endpoint.netloc}"
        if endpoint is not None
        else f"https://{CHAT_UPLOADS_BUCKET}.s3.{AWS_REGION}.amazonaws.com"
    )
    options = {
        "bucket_name": CHAT_UPLOADS_BUCKET,
        "region_name": AWS_REGION,
        "endpoint_url": CHAT_UPLOADS_ENDPOINT_URL or None,
        # A stand-in answers on its own host (path style); AWS on the bucket's host, which is
        # the origin in the CSP.
        "addressing_style": "path" if endpoint is not None else "virtual",
        "signature_version": "s3v4",
        "default_acl": None,
        "querystring_auth": True,
        "file_overwrite": True,
    }
    if PRODUCTION and not all(cdn):
        raise ImproperlyConfigured(
            "CHAT_UPLOADS_BUCKET in production needs CHAT_UPLOADS_CDN_DOMAIN, CHAT_UPLOADS_CDN_KEY_ID and "
            "CHAT_UPLOADS_CDN_PRIVATE_KEY (deploy/README.md): without the distribution, downloads would pass "
            "through daphne, or miss X-Content-Type-Options"
        )
    if all(cdn):
        if not re.fullmatch(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?(:[0-9]{1,5})?", CHAT_UPLOADS_CDN_DOMAIN):
            raise ImproperlyConfigured(f"CHAT_UPLOADS_CDN_DOMAIN {CHAT_UPLOADS_CDN_DOMAIN!r} is not a host name")
        from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        try:
            key = load_pem_private_key(CHAT_UPLOADS_CDN_PRIVATE_KEY.encode(), password=None)
        except (ValueError, TypeError):
            key = None
        if not isinstance(key, RSAPrivateKey):
            raise ImproperlyConfigured("CHAT_UPLOADS_CDN_PRIVATE_KEY is not an unencrypted RSA private key (PEM)")
        # django-storages signs CloudFront URLs (canned policy) when these three are set.
        options.update(
            custom_domain=CHAT_UPLOADS_CDN_DOMAIN,
            cloudfront_key_id=CHAT_UPLOADS_CDN_KEY_ID,
            cloudfront_key=CHAT_UPLOADS_CDN_PRIVATE_KEY,
            url_protocol="https:",
        )
        origin = f"{origin} https://{CHAT_UPLOADS_CDN_DOMAIN}"
    return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}, origin


STORAGES["uploads"], CHAT_UPLOADS_ORIGIN = _uploads_storage()

CHAT_MAX_MESSAGE_LENGTH = env_int("CHAT_MAX_MESSAGE_LENGTH", 4000, minimum=1)
# A frame larger than this gets an error frame; daphne's own --websocket-max-message-size
# (see the Makefile) closes with 1009 far above it.
CHAT_MAX_FRAME_BYTES = env_int("CHAT_MAX_FRAME_BYTES", 64 * 1024, minimum=1024)
CHAT_MESSAGE_TTL_SECONDS = env_int("CHAT_MESSAGE_TTL_SECONDS", 30 * 86_400, minimum=60)
# Every CHAT_CONNECTION_HEARTBEAT_SECONDS each daphne process with open sockets records that
# it is alive until now + CHAT_INSTANCE_TTL_SECONDS (one write per process, chat.connections).
# A process that dies without cleaning up is dead once that passes, and the next heartbeat of
# any live process deletes its connection rows: they stop counting within the instance ttl
# plus one heartbeat, as they did within one connection ttl when every row was refreshed.
CHAT_CONNECTION_HEARTBEAT_SECONDS = env_float("CHAT_CONNECTION_HEARTBEAT_SECONDS", 60.0)
CHAT_INSTANCE_TTL_SECONDS = env_int("CHAT_INSTANCE_TTL_SECONDS", 180, minimum=3)
# A connection row's own ttl, pushed forward by its process's heartbeat once less than half of
# it is left. It used to be 180 s, refreshed every minute: one write per socket a minute, on
# DynamoDB three write units with the row's two indexes, more than API Gateway charges for
# holding the connection (issue 22.4). Now it only bounds a row no live process sweeps (the
# whole fleet gone at once), so it can be long: two hours, one write per socket an hour.
CHAT_CONNECTION_TTL_SECONDS = env_int("CHAT_CONNECTION_TTL_SECONDS", 7200, minimum=3)
if not 0 < CHAT_CONNECTION_HEARTBEAT_SECONDS * 2 <= min(CHAT_CONNECTION_TTL_SECONDS, CHAT_INSTANCE_TTL_SECONDS):
    raise ImproperlyConfigured(
        "CHAT_CONNECTION_HEARTBEAT_SECONDS must be positive and at most half of each ttl (connection, instance)"
    )
# A resume that misses more than this many messages is told to reload the room.
CHAT_REPLAY_CAP = env_int("CHAT_REPLAY_CAP", 500, minimum=1)
# Events from two publishers reach a process in either order: a seq past the next one waits
# this long for the missing ones before the gap counts as lost and is read (chat.delivery).
CHAT_REORDER_WINDOW_SECONDS = 0.25
CHAT_HISTORY_PAGE = env_int("CHAT_HISTORY_PAGE", 50, minimum=1)
CHAT_HISTORY_MAX_PAGE = env_int("CHAT_HISTORY_MAX_PAGE", 200, minimum=1)
# Changes to messages (chat.message_changes, chat.reactions): how long an author may edit
# (0: always), and how many distinct emoji one message may carry.
CHAT_EDIT_WINDOW_SECONDS = env_int("CHAT_EDIT_WINDOW_SECONDS", 3600, minimum=0)
CHAT_MAX_REACTIONS_PER_MESSAGE = env_int("CHAT_MAX_REACTIONS_PER_MESSAGE", 20, minimum=1)
CHAT_DEFAULT_ROOM = "general"
# Which daphne instance holds a connection row (several processes behind a balancer).
CHAT_INSTANCE_ID = env_str("CHAT_INSTANCE_ID")
# A drain (chatsite/ops/drain.py: SIGUSR1, or ECS stopping the task) closes the open sockets
# with 1001 evenly over this window, so their clients reconnect elsewhere at a steady rate;
# the balancer's deregistration delay must outlast it. A SIGTERM with no drain before it
# closes them over the shorter CHAT_STOP_DRAIN_SECONDS, which the stop timeouts outlast.
CHAT_DRAIN_SECONDS = env_float("CHAT_DRAIN_SECONDS", 20.0)
CHAT_STOP_DRAIN_SECONDS = env_float("CHAT_STOP_DRAIN_SECONDS", 5.0)
# A stop also waits, meanwhile, for HTTP requests still running in a thread (chatsite/ops/inflight.py):
# at most this long, so the stop timeouts (ECS 30 s, systemd 40 s) outlast it.
CHAT_STOP_REQUEST_SECONDS = env_float("CHAT_STOP_REQUEST_SECONDS", 10.0)
if not all(0 <= value <= 300 for value in (CHAT_DRAIN_SECONDS, CHAT_STOP_DRAIN_SECONDS, CHAT_STOP_REQUEST_SECONDS)):
    raise ImproperlyConfigured(
        "CHAT_DRAIN_SECONDS, CHAT_STOP_DRAIN_SECONDS and CHAT_STOP_REQUEST_SECONDS must be between 0 and 300"
    )


def _env_rate(name: str, default: str) -> str:
    """A rate limit, "<count>/<seconds>" or "off" (chat/ratelimit.py), checked at startup."""
    from chat.ratelimit import parse_rate

    value = env_str(name, default)
    try:
        parse_rate(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None
    return value


# Rate limits (chat/ratelimit.py, docs/protocol.md "Rate limits"): "<count>/<seconds>" is a
# burst of <count>, refilled evenly over <seconds>; "off" switches one off. On by default in
# production; off by default in development, whose tests and benchmarks drive one account
# hard. Moderators and members of AUTH_BOT_GROUP are exempt.
_RATE_DEFAULT_ON = PRODUCTION
CHAT_RATE_LIMIT_FRAMES_PER_CONNECTION = _env_rate(
    "CHAT_RATE_LIMIT_FRAMES_PER_CONNECTION", "120/10" if _RATE_DEFAULT_ON else "off"
)
CHAT_RATE_LIMIT_SEND_PER_CONNECTION = _env_rate(
    "CHAT_RATE_LIMIT_SEND_PER_CONNECTION", "20/10" if _RATE_DEFAULT_ON else "off"
)
CHAT_RATE_LIMIT_SEND_PER_USER = _env_rate("CHAT_RATE_LIMIT_SEND_PER_USER", "30/10" if _RATE_DEFAULT_ON else "off")
CHAT_RATE_LIMIT_CONNECT_PER_USER = _env_rate("CHAT_RATE_LIMIT_CONNECT_PER_USER", "30/60" if _RATE_DEFAULT_ON else "off")
# Per client address, before credentials are checked. On by default in production, and
# generous, since many users can share an address (an office, a carrier's NAT): a flood of
# 1000 bad tokens in 10 s from one address once slowed every socket of its process (issue
# 24). Behind a balancer it needs daphne --proxy-headers.
CHAT_RATE_LIMIT_CONNECT_PER_ADDRESS = _env_rate(
    "CHAT_RATE_LIMIT_CONNECT_PER_ADDRESS", "120/60" if _RATE_DEFAULT_ON else "off"
)
# Read frames (joinRoom, history, ping) per user, over all their sockets: each costs store
# reads, and CHAT_RATE_LIMIT_FRAMES_PER_CONNECTION alone lets a user multiply it by sockets.
CHAT_RATE_LIMIT_READS_PER_USER = _env_rate("CHAT_RATE_LIMIT_READS_PER_USER", "60/10" if _RATE_DEFAULT_ON else "off")
# Per-user quotas (chat/quota.py, docs/auth.md "Quotas"), counted from the store; 0 is off.
# Open sockets: the next one is refused with 4429. Rooms a user may create in 24 hours
# (moderators and bots are exempt): like the rate limits, off by default in development,
# whose tests make a room per test.
CHAT_MAX_SOCKETS_PER_USER = env_int("CHAT_MAX_SOCKETS_PER_USER", 20, minimum=0)
CHAT_ROOMS_PER_USER_PER_DAY = env_int("CHAT_ROOMS_PER_USER_PER_DAY", 20 if PRODUCTION else 0, minimum=0)
# Refused frames a socket may send in a row before it is closed with 4429.
CHAT_RATE_LIMIT_STRIKES = env_int("CHAT_RATE_LIMIT_STRIKES", 10, minimum=0)
# People and rooms (chat/people.py): the most people in a group DM (its opener included), and
# the page size of the `members` answer.
CHAT_MAX_DIRECT_MEMBERS = env_int("CHAT_MAX_DIRECT_MEMBERS", 8, minimum=2)
CHAT_MEMBERS_PAGE = env_int("CHAT_MEMBERS_PAGE", 100, minimum=1)
AUTH_BOT_GROUP = env_str("AUTH_BOT_GROUP", "bots")  # the Django group of bot accounts
# What daphne may hold for one socket whose client does not read (chat/daphne_adapt/sendbuffer.py): past
# it the connection is dropped (the client sees 1006, reconnects and resumes). It must hold
# the largest history page (CHAT_HISTORY_MAX_PAGE messages of CHAT_MAX_MESSAGE_LENGTH).
CHAT_MAX_SEND_BUFFER_BYTES = env_int("CHAT_MAX_SEND_BUFFER_BYTES", 8 * 1024 * 1024, minimum=16 * 1024)

# Unread, mentions and notifications (unread/, docs/operations.md "Push notifications").
# Read receipts are kept in private rooms of at most this many members.
CHAT_READ_RECEIPTS_MAX_MEMBERS = env_int("CHAT_READ_RECEIPTS_MAX_MEMBERS", 10, minimum=2)
# markReads reaching a process within this window are stored in one transaction, and each is
# answered after its commit (unread.services; 0: the first goes at once, the rest of those
# that come while it is stored go together next). Clients mark a room at most once a second.
CHAT_MARK_READ_GATHER_SECONDS = env_float("CHAT_MARK_READ_GATHER_SECONDS", 0.1)
# Web Push (VAPID): both or neither (half of it stops the start, unread.push.check_settings).
require_together("Web Push", ["CHAT_VAPID_PRIVATE_KEY", "CHAT_VAPID_SUBJECT"])
CHAT_VAPID_PRIVATE_KEY = env_str("CHAT_VAPID_PRIVATE_KEY", "")
CHAT_VAPID_SUBJECT = env_str("CHAT_VAPID_SUBJECT", "")
# Mobile push: an SNS platform application per platform ("" is off).
CHAT_PUSH_SNS_APNS_ARN = env_str("CHAT_PUSH_SNS_APNS_ARN", "")
CHAT_PUSH_SNS_FCM_ARN = env_str("CHAT_PUSH_SNS_FCM_ARN", "")
CHAT_PUSH_SNS_ENDPOINT_URL = env_str("CHAT_PUSH_SNS_ENDPOINT_URL", "")  # tests: a moto server
# A burst in one room sends one notification per user after this many seconds.
CHAT_PUSH_BATCH_SECONDS = max(0.0, env_float("CHAT_PUSH_BATCH_SECONDS", 5.0))
# Push endpoints on loopback or private addresses, or plain http: refused in production
# (no request forgery through the push sender); tests and development use a local one.
CHAT_PUSH_ALLOW_PRIVATE_ENDPOINTS = env_bool("CHAT_PUSH_ALLOW_PRIVATE_ENDPOINTS", default=not PRODUCTION)

# User search's index feed (search.indexer): every stored room change is written to the
# search index soon after its ack. Off (0), nothing is indexed while the process runs: search
# finds only what was indexed before, until `manage.py reindex_search` catches up. For a
# site that does not offer search, or to measure what indexing costs (bench.run --search-feed).
CHAT_SEARCH_INDEX_FEED = env_bool("CHAT_SEARCH_INDEX_FEED", True)

# Analytics (docs/moderation.md): N > 0 keeps the dashboard's message counts in memory and
# writes them every N seconds in one transaction (a hard crash loses at most N seconds of
# counts, never a message); 0 writes each in the message's own transaction. Batched by
# default, the embedded default as production: written through, the count was most of a
# message's statements (docs/performance.md).
ANALYTICS_FLUSH_SECONDS = env_float("ANALYTICS_FLUSH_SECONDS", 2.0)
if ANALYTICS_FLUSH_SECONDS < 0:
    raise ImproperlyConfigured("ANALYTICS_FLUSH_SECONDS must be 0 (write through) or more")

# A test hook for tests/faults, refused in production: a message whose text is exactly this
# makes the process exit (os._exit) right after the store has it, before its broadcast and
# its ack, the worst moment to die.
CHAT_TEST_CRASH_AFTER_STORE = env_str("CHAT_TEST_CRASH_AFTER_STORE")
if CHAT_TEST_CRASH_AFTER_STORE and PRODUCTION:
    raise ImproperlyConfigured("CHAT_TEST_CRASH_AFTER_STORE is a test hook: it is refused when CHATSITE_ENV=production")

DEMO_PASSWORD = env_str("CHATSITE_DEMO_PASSWORD", "chatsite-demo")

# --- Authentication: built-in accounts or Amazon Cognito (docs/auth.md) -----------------
# Cognito is switched on by its three required variables; without them Chatsite is its
# own token issuer. boto3 reads AWS_ENDPOINT_URL itself, for a local stand-in such as moto.
_COGNITO_REQUIRED = ["COGNITO_REGION", "COGNITO_USER_POOL_ID", "COGNITO_APP_CLIENT_ID"]
_COGNITO_OPTIONAL = ["COGNITO_APP_CLIENT_SECRET", "COGNITO_DOMAIN", "COGNITO_JWKS_URL"]
COGNITO_ENABLED = require_together("Cognito sign-in", _COGNITO_REQUIRED, optional=_COGNITO_OPTIONAL)
if not COGNITO_ENABLED and any(env_str(name) for name in _COGNITO_OPTIONAL):
    raise ImproperlyConfigured(
        f"Cognito sign-in is half-configured: {', '.join(n for n in _COGNITO_OPTIONAL if env_str(n))} set but "
        f"{', '.join(_COGNITO_REQUIRED)} missing"
    )
COGNITO_REGION = env_str("COGNITO_REGION")
COGNITO_USER_POOL_ID = env_str("COGNITO_USER_POOL_ID")
if COGNITO_ENABLED and not COGNITO_USER_POOL_ID.startswith(COGNITO_REGION + "_"):
    raise ImproperlyConfigured(
        f"COGNITO_USER_POOL_ID {COGNITO_USER_POOL_ID!r} is not a pool of COGNITO_REGION {COGNITO_REGION!r}"
    )
COGNITO_APP_CLIENT_ID = env_str("COGNITO_APP_CLIENT_ID")
COGNITO_APP_CLIENT_SECRET = env_str("COGNITO_APP_CLIENT_SECRET")
COGNITO_DOMAIN = env_str("COGNITO_DOMAIN")  # the Hosted UI; off when empty
# Where the pool's keys are fetched. The issuer (iss) is always the AWS URL of the pool,
# so a stand-in that serves the keys elsewhere needs only this.
COGNITO_JWKS_URL = env_str("COGNITO_JWKS_URL") or (
    f"https://cognito-idp.{COGNITO_REGION}.amazonaws.com/{COGNITO_USER_POOL_ID}/.well-known/jwks.json"
    if COGNITO_ENABLED
    else ""
)
# Cognito groups that make a user staff / a moderator, applied at every sign-in.
COGNITO_STAFF_GROUPS = env_list("COGNITO_STAFF_GROUPS")
COGNITO_MODERATOR_GROUPS = env_list("COGNITO_MODERATOR_GROUPS", ["moderators"])
AUTH_MODERATOR_GROUP = "moderators"  # the Django group that carries moderator rights
# Which tokens open a socket or call the API: ID tokens, access tokens, or both.
AUTH_TOKEN_USES = env_list("AUTH_TOKEN_USE", ["id", "access"])
if not AUTH_TOKEN_USES or not set(AUTH_TOKEN_USES) <= {"id", "access"}:
    raise ImproperlyConfigured(f"AUTH_TOKEN_USE must be id, access or id,access, got {AUTH_TOKEN_USES!r}")
# Clock skew allowed on exp / nbf / iat; a token is valid until exp + leeway.
AUTH_TOKEN_LEEWAY = env_int("AUTH_TOKEN_LEEWAY", 5, minimum=0)
if AUTH_TOKEN_LEEWAY > 300:
    raise ImproperlyConfigured("AUTH_TOKEN_LEEWAY must be at most 300 seconds")
# An unknown kid fetches the JWKS again at most this often; a flood of made-up kids
# cannot flood the JWKS endpoint.
AUTH_JWKS_REFETCH_INTERVAL = env_int("AUTH_JWKS_REFETCH_INTERVAL", 10, minimum=1)
AUTH_JWKS_MAX_AGE = env_int("AUTH_JWKS_MAX_AGE", 3600, minimum=60)
# How long a token check waits for a JWKS fetch in flight before the token is refused
# (4401; the client may retry): a slow key endpoint must not hold sockets or threads.
AUTH_JWKS_WAIT = env_float("AUTH_JWKS_WAIT", 2.0)
if not 0 < AUTH_JWKS_WAIT <= 30:
    raise ImproperlyConfigured("AUTH_JWKS_WAIT must be between 0 and 30 seconds")
# The built-in issuer (no Cognito): its key is created on first run, outside the repo.
AUTH_SIGNING_KEY_FILE = Path(env_str("AUTH_SIGNING_KEY_FILE", str(DATA_DIR / "auth-signing-key.pem")))
# Several hosts share the issuer's keys (accounts/issuer.py): a Secrets Manager secret (name
# or ARN), re-read every AUTH_SIGNING_KEYS_MAX_AGE seconds, or the same text in the
# environment. Either replaces the local key file, which is right for one host only.
AUTH_SIGNING_KEYS = env_str("AUTH_SIGNING_KEYS")
AUTH_SIGNING_KEYS_SECRET = env_str("AUTH_SIGNING_KEYS_SECRET")
if AUTH_SIGNING_KEYS and AUTH_SIGNING_KEYS_SECRET:
    raise ImproperlyConfigured("set AUTH_SIGNING_KEYS or AUTH_SIGNING_KEYS_SECRET, not both")
AUTH_SIGNING_KEYS_MAX_AGE = env_int("AUTH_SIGNING_KEYS_MAX_AGE", 300, minimum=1)
AUTH_TOKEN_LIFETIME = env_int("AUTH_TOKEN_LIFETIME", 3600, minimum=1)  # ID and access tokens, like Cognito
AUTH_REFRESH_TOKEN_LIFETIME = env_int("AUTH_REFRESH_TOKEN_LIFETIME", 30 * 86_400, minimum=60)
# Sign-in throttling (accounts/throttle.py, docs/auth.md): failed sign-ins allowed per
# username and per client address in a window, "<count>/<seconds>" or "off"; past them
# /api/auth/token, /api/auth/refresh and /accounts/login/ answer 429 until the window ends.
AUTH_SIGNIN_FAILURES_PER_ACCOUNT = env_str("AUTH_SIGNIN_FAILURES_PER_ACCOUNT", "5/900")
AUTH_SIGNIN_FAILURES_PER_ADDRESS = env_str("AUTH_SIGNIN_FAILURES_PER_ADDRESS", "50/900")
# Sign-ups per client address (accounts/views.py), "<count>/<seconds>" or "off". Off by
# default in development, whose tests sign up many users from 127.0.0.1.
AUTH_SIGNUPS_PER_ADDRESS = env_str("AUTH_SIGNUPS_PER_ADDRESS", "10/3600" if PRODUCTION else "off")


def _check_window(name: str) -> None:
    from accounts.throttle import Window

    try:
        Window.parse(globals()[name])
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None


for _name in ("AUTH_SIGNIN_FAILURES_PER_ACCOUNT", "AUTH_SIGNIN_FAILURES_PER_ADDRESS", "AUTH_SIGNUPS_PER_ADDRESS"):
    _check_window(_name)
# A WebSocket without a session cookie must send {"action": "authenticate"} this soon.
# How long the server waits for a client to answer its close frame before it drops the
# connection (chat.daphne_adapt.closing; autobahn's default of 1 s reset the connection under load, and
# the client saw 1006 instead of 4401, 4403, 4429 or 1001).
CHAT_CLOSE_HANDSHAKE_TIMEOUT = env_float("CHAT_CLOSE_HANDSHAKE_TIMEOUT", 5.0)
if not 0 < CHAT_CLOSE_HANDSHAKE_TIMEOUT <= 60:
    raise ImproperlyConfigured("CHAT_CLOSE_HANDSHAKE_TIMEOUT must be between 0 and 60 seconds")
CHAT_AUTH_TIMEOUT = env_float("CHAT_AUTH_TIMEOUT", 10.0)
if not 0 < CHAT_AUTH_TIMEOUT <= 300:
    raise ImproperlyConfigured("CHAT_AUTH_TIMEOUT must be between 0 and 300 seconds")
# A socket signed in by the session cookie is checked against its session at least this often
# (the process's connection keeper, all its sockets in one pass) and closed with 4401 when the
# session has ended: flushed, expired, or made stale by a password change.
CHAT_SESSION_RECHECK_SECONDS = env_float("CHAT_SESSION_RECHECK_SECONDS", 300.0)
if not 0 < CHAT_SESSION_RECHECK_SECONDS <= 86_400:
    raise ImproperlyConfigured("CHAT_SESSION_RECHECK_SECONDS must be between 0 and 86400 seconds")
# Presence and typing (chat.presence, chat.typing_service; docs/operations.md). A user whose
# sockets are all idle this long (or hidden) is away; a process that dies without closing its
# sockets stops showing their users online after CHAT_PRESENCE_TTL_SECONDS (it renews every third).
CHAT_AWAY_AFTER_SECONDS = env_float("CHAT_AWAY_AFTER_SECONDS", 300.0)
CHAT_PRESENCE_TTL_SECONDS = env_float("CHAT_PRESENCE_TTL_SECONDS", 45.0)
CHAT_TYPING_INTERVAL_SECONDS = env_float("CHAT_TYPING_INTERVAL_SECONDS", 2.0)
# A room's typing frames reaching a process within this window are published together and go
# to each socket in one write (0: at once).
CHAT_TYPING_BATCH_SECONDS = env_float("CHAT_TYPING_BATCH_SECONDS", 0.25)
# Presence is pushed in rooms up to this many users present (per process, for the push):
# past it, a connect storm would send every watcher a frame per user (issue 22); clients
# read a crowd's presence with the member list instead.
CHAT_PRESENCE_ROOM_LIMIT = env_int("CHAT_PRESENCE_ROOM_LIMIT", 200, minimum=0)
if not (0 < CHAT_AWAY_AFTER_SECONDS <= 86_400 and 0.3 <= CHAT_PRESENCE_TTL_SECONDS <= 3600):
    raise ImproperlyConfigured("CHAT_AWAY_AFTER_SECONDS must be 0-86400 s and CHAT_PRESENCE_TTL_SECONDS 0.3-3600 s")
# The presence changes a socket is told within this window go to it in one frame (a
# `presence` frame with `users` when there are several; 0: each at once): a room connecting
# at once costs each watcher a frame per window, not one per user (issue 22).
CHAT_PRESENCE_BATCH_SECONDS = env_float("CHAT_PRESENCE_BATCH_SECONDS", 0.5)
if not 0 <= CHAT_PRESENCE_BATCH_SECONDS <= 10:
    raise ImproperlyConfigured("CHAT_PRESENCE_BATCH_SECONDS must be between 0 and 10 seconds")

# --- Operations (chatsite/ops: health, metrics, logs; docs/operations.md) ---------------
# /metrics answers a bearer token or a staff session; there is no default token.
METRICS_TOKEN = env_str("METRICS_TOKEN")
# Each /readyz check's budget: well inside an ALB health check's default 5 s timeout.
CHAT_READY_CHECK_TIMEOUT_SECONDS = env_float("CHAT_READY_CHECK_TIMEOUT_SECONDS", 2.0)
if not 0 < CHAT_READY_CHECK_TIMEOUT_SECONDS <= 60:
    raise ImproperlyConfigured("CHAT_READY_CHECK_TIMEOUT_SECONDS must be between 0 and 60 seconds")
if METRICS_TOKEN and len(METRICS_TOKEN) < 32:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 32 characters (try: openssl rand -hex 32)")
# CloudWatch Embedded Metric Format lines on stdout (chatsite/ops/emf.py).
METRICS_EMF = env_bool("METRICS_EMF", False)
METRICS_EMF_NAMESPACE = env_str("METRICS_EMF_NAMESPACE", "Chatsite")
METRICS_EMF_SERVICE = env_str("METRICS_EMF_SERVICE", "chatsite")
METRICS_EMF_INTERVAL = env_int("METRICS_EMF_INTERVAL", 60, minimum=1)
LOG_FORMAT = env_str("LOG_FORMAT", "json" if PRODUCTION else "plain")
if LOG_FORMAT not in {"json", "plain"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or plain, got {LOG_FORMAT!r}")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"()": "chatsite.ops.logs.PlainFormatter", "format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "chatsite.ops.logs.JsonFormatter"},
    },
    # No token reaches a log line, whoever logs it (accounts/redact.py).
    "filters": {"redact_tokens": {"()": "accounts.redact.RedactTokensFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["redact_tokens"]},
        # Counts the group messages channels-redis drops at capacity (logged at INFO only).
        "layer_drops": {"class": "chat.metrics.LayerDropHandler", "level": "INFO"},
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django": {"level": "INFO"},
        "daphne": {"level": "WARNING"},
        "channels_redis": {"level": "INFO", "handlers": ["layer_drops"]},
    },
}
