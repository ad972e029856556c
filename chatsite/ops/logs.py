"""Structured JSON logs: one JSON object per line, with the request and connection in context.

`bind(...)` puts connectionId, userId, roomId or requestId into a context variable; every
log line written in that context (the consumer's task, a request, and the threads that
sync_to_async runs for them, which copy the context) carries them. `JsonFormatter` writes
the line. A chat message's text and credentials never appear: extra fields with a
sensitive name are dropped, and token-shaped strings (JWTs, bearer tokens, token=...
query parameters) are redacted from every message and traceback.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any, Final

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponseBase
from django.utils.decorators import sync_and_async_middleware

_CONTEXT: ContextVar[Mapping[str, str]] = ContextVar("chatsite_log_context", default={})  # noqa: B039 - never mutated

# Python field names -> the names in the log line (the wire protocol's camelCase).
_FIELDS: Final = {
    "request_id": "requestId",
    "connection_id": "connectionId",
    "user_id": "userId",
    "room_id": "roomId",
}

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRS: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}

# `extra=` keys that are never written: chat text and credentials.
_SENSITIVE_KEYS: Final = frozenset(
    {
        "text",
        "message_text",
        "body",
        "data",
        "token",
        "id_token",
        "access_token",
        "refresh_token",
        "password",
        "secret",
        "authorization",
        "cookie",
        "headers",
    }
)

_REDACTIONS: Final = (
    # A JWT: three base64url segments, the first a JSON header ("eyJ" is '{"').
    (re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), "[redacted-jwt]"),
    (re.compile(r"(?i)\b(bearer\s+)[^\s,;\"']+"), r"\1[redacted]"),
    (
        re.compile(r"(?i)\b((?:id_|access_|refresh_)?token|password|secret|authorization)=[^&\s\"']+"),
        r"\1=[redacted]",
    ),
    (
        re.compile(r"(?i)(\"(?:token|idToken|accessToken|refreshToken|password)\"\s*:\s*)\"[^\"]*\""),
        r'\1"[redacted]"',
    ),
)

# A client-supplied request id is kept only when it is short and plain.
_SAFE_REQUEST_ID: Final = re.compile(r"^[A-Za-z0-9._:=;-]{1,128}$")

request_log = logging.getLogger("chatsite.request")
connection_log = logging.getLogger("chatsite.connection")


class Sampled:
    """A log line that can come in floods: at most `burst` lines per `interval` per key.

    Past the burst, lines are counted, not written, until the interval is over; the next
    line written says how many were left out: a flood of 1000 bad tokens used to be 1000
    WARNING lines, a few milliseconds of CPU each (issue 24). The count of the last
    interval of a flood appears with the next line of the same key.
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval: float = 10.0,
        burst: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.burst = burst
        self.clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int]] = {}  # key -> (its interval's start, lines written)
        self._left_out: dict[str, int] = {}

    def warning(self, key: str, message: str, *args: object) -> None:
        with self._lock:
            now = self.clock()
            start, written = self._windows.get(key, (now, 0))
            if now - start >= self.interval:
                start, written = now, 0
            if written >= self.burst:
                self._left_out[key] = self._left_out.get(key, 0) + 1
                return
            if len(self._windows) > 1000:  # keys are a bounded vocabulary; this is a backstop
                self._windows.clear()
                self._left_out.clear()
            self._windows[key] = (start, written + 1)
            left_out = self._left_out.pop(key, 0)
        if left_out:
            message += " (and %d more like it not logged, at most one line per %g s)"
            args = (*args, left_out, self.interval)
        self.logger.warning(message, *args)


def redact(text: str) -> str:
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


# Context --------------------------------------------------------------------------------


def bind(**fields: str | None) -> Token[Mapping[str, str]]:
    """Add fields (request_id, connection_id, user_id, room_id) to the current log context."""
    current = dict(_CONTEXT.get())
    for name, value in fields.items():
        key = _FIELDS[name]
        if value is None:
            current.pop(key, None)
        else:
            current[key] = value
    return _CONTEXT.set(current)


@contextmanager
def bound(**fields: str | None) -> Iterator[None]:
    token = bind(**fields)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def context() -> Mapping[str, str]:
    return _CONTEXT.get()


def request_id_from_headers(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The balancer's or client's request id when plain, else a new one.

    An ALB adds X-Amzn-Trace-Id; a proxy in front may add X-Request-Id.
    """
    found: dict[bytes, str] = {}
    for name, value in headers:
        lowered = name.lower()
        if lowered in (b"x-request-id", b"x-amzn-trace-id"):
            found[lowered] = value.decode("latin-1").strip()
    for header in (b"x-request-id", b"x-amzn-trace-id"):
        candidate = found.get(header, "")
        if _SAFE_REQUEST_ID.match(candidate):
            return candidate
    return uuid.uuid4().hex


def bind_connection(scope: Mapping[str, Any], *, connection_id: str, user_id: str) -> None:
    """Called once a WebSocket is authenticated: its log lines carry the ids from now on."""
    bind(request_id=request_id_from_headers(scope.get("headers", ())), connection_id=connection_id, user_id=user_id)
    connection_log.info("websocket connected")


def connection_closed(code: int | None) -> None:
    connection_log.info("websocket closed", extra={"closeCode": code})


# Formatter ------------------------------------------------------------------------------


class PlainFormatter(logging.Formatter):
    """The development format, one record per line: line breaks and other control characters
    that a client put in a request path, a username or a frame are escaped (\\n, \\x00), so
    no input can forge a log line. A traceback keeps its lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return _escape_controls(super().formatMessage(record))


def _escape_controls(text: str) -> str:
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the bound ids, extras."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        line.update(_CONTEXT.get())
        for key, value in record.__dict__.items():
            if key in _RECORD_ATTRS or key.startswith("_") or key.lower() in _SENSITIVE_KEYS:
                continue
            line[key] = value if isinstance(value, (int, float, bool)) or value is None else redact(str(value))
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            line["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False, default=str)


# HTTP middleware ------------------------------------------------------------------------


def _begin(request: HttpRequest) -> tuple[str, Token[Mapping[str, str]]]:
    headers = ((k.encode("latin-1"), v.encode("latin-1", "replace")) for k, v in request.headers.items())
    request_id = request_id_from_headers(headers)
    return request_id, bind(request_id=request_id)


def _finish(request: HttpRequest, response: HttpResponseBase, request_id: str, started: float) -> None:
    response["X-Request-Id"] = request_id
    # The path only: a query string can carry a token.
    request_log.info(
        "%s %s %s",
        request.method,
        request.path,
        response.status_code,
        extra={"status": response.status_code, "durationMs": round((time.perf_counter() - started) * 1000, 2)},
    )


@sync_and_async_middleware
def request_id_middleware(
    get_response: Callable[[HttpRequest], Any],
) -> Callable[[HttpRequest], Any]:
    """Give every HTTP request an id (logged, and echoed as X-Request-Id) and one access line."""
    if iscoroutinefunction(get_response):

        async def async_middleware(request: HttpRequest) -> HttpResponseBase:
            started = time.perf_counter()
            request_id, token = _begin(request)
            try:
                response: HttpResponseBase = await get_response(request)
                _finish(request, response, request_id, started)
                return response
            finally:
                _CONTEXT.reset(token)

        return async_middleware

    def middleware(request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        request_id, token = _begin(request)
        try:
            response: HttpResponseBase = get_response(request)
            _finish(request, response, request_id, started)
            return response
        finally:
            _CONTEXT.reset(token)

    return middleware


__all__ = [
    "JsonFormatter",
    "bind",
    "bind_connection",
    "bound",
    "connection_closed",
    "context",
    "redact",
    "request_id_from_headers",
    "request_id_middleware",
]
