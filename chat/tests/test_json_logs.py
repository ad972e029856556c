"""Structured JSON logs: one object per line, with ids in context and no secrets or chat text."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from chatsite.ops import logs

JWT = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz"


def line(message: str, *args: Any, exc: bool = False, **extra: Any) -> dict[str, Any]:
    record = logging.LogRecord("chat.test", logging.WARNING, __file__, 1, message, args or None, None)
    if exc:
        try:
            raise ValueError(f"bad token {JWT}")
        except ValueError:
            record.exc_info = sys.exc_info()
    for key, value in extra.items():
        setattr(record, key, value)
    data = json.loads(logs.JsonFormatter().format(record))
    assert isinstance(data, dict)
    return data


def test_a_line_is_one_json_object_with_time_level_logger_and_message() -> None:
    """Each record becomes a JSON object with an ISO UTC time, level, logger and message."""
    data = line("room %s joined", "general")
    assert data["level"] == "WARNING"
    assert data["logger"] == "chat.test"
    assert data["message"] == "room general joined"
    assert data["time"].endswith("Z") and "T" in data["time"]


def test_bound_ids_appear_on_every_line_in_their_context() -> None:
    """connectionId, userId, roomId and requestId bound in a context are on its lines, and only there."""
    with logs.bound(connection_id="c1", user_id="42", room_id="general", request_id="r-1"):
        data = line("something happened")
    assert (data["connectionId"], data["userId"], data["roomId"], data["requestId"]) == ("c1", "42", "general", "r-1")
    assert "connectionId" not in line("outside")


async def test_context_does_not_leak_between_concurrent_connections() -> None:
    """Two sockets' tasks each log with their own ids, never the other's."""

    async def socket(connection_id: str) -> dict[str, Any]:
        logs.bind(connection_id=connection_id, user_id=connection_id.upper())
        await asyncio.sleep(0.01)
        # A sync helper run by sync_to_async sees the same context.
        return await sync_to_async(line)("from a thread")

    first, second = await asyncio.gather(asyncio.create_task(socket("aaa")), asyncio.create_task(socket("bbb")))
    assert (first["connectionId"], first["userId"]) == ("aaa", "AAA")
    assert (second["connectionId"], second["userId"]) == ("bbb", "BBB")


@pytest.mark.parametrize(
    ("message", "secret"),
    [
        (f"verifying {JWT}", JWT),
        ("GET /ws/?token=s3cr3t-value&x=1", "s3cr3t-value"),
        ("header Authorization: Bearer abc.def-ghi", "abc.def-ghi"),
        ('body {"token": "tok-123", "roomId": "general"}', "tok-123"),
        ("login password=hunter22", "hunter22"),
    ],
)
def test_tokens_are_redacted_from_messages(message: str, secret: str) -> None:
    """JWTs, bearer tokens, token= parameters, JSON token fields and passwords never reach a line."""
    data = line(message)
    assert secret not in json.dumps(data)
    assert "redacted" in data["message"]


def test_tokens_are_redacted_from_tracebacks() -> None:
    """An exception whose text carries a token is logged with the token redacted."""
    data = line("failed", exc=True)
    assert "ValueError" in data["exception"]
    assert JWT not in data["exception"]


def test_chat_text_and_credentials_passed_as_extras_are_dropped() -> None:
    """Extra fields named like message text or credentials are never written; others are."""
    data = line("sent", text="the chat message", token="t", password="p", seq=7, durationMs=1.5)
    assert "the chat message" not in json.dumps(data)
    assert "token" not in data and "password" not in data and "text" not in data
    assert data["seq"] == 7 and data["durationMs"] == 1.5


@pytest.mark.django_db
def test_requests_get_an_id_echoed_in_the_response_and_logged(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    """Each HTTP request gets an X-Request-Id (the balancer's when plain), on its access line."""
    with caplog.at_level(logging.INFO, logger="chatsite.request"):
        response = client.get("/accounts/login/?token=abc", HTTP_X_REQUEST_ID="req-abc.123")
        generated = client.get("/accounts/login/", HTTP_X_REQUEST_ID="<script>")
    assert response["X-Request-Id"] == "req-abc.123"
    assert generated["X-Request-Id"] != "<script>" and len(generated["X-Request-Id"]) == 32
    access = [r for r in caplog.records if r.name == "chatsite.request"]
    assert len(access) == 2
    assert access[0].getMessage() == "GET /accounts/login/ 200"  # the path only: no query string
    formatted = json.loads(logs.JsonFormatter().format(access[0]))
    assert formatted["status"] == 200 and formatted["durationMs"] >= 0


def test_an_amazon_trace_id_serves_as_the_request_id() -> None:
    """Behind an ALB, its X-Amzn-Trace-Id becomes the request id."""
    trace = "Root=1-67891233-abcdef012345678912345678"
    assert logs.request_id_from_headers([(b"X-Amzn-Trace-Id", trace.encode())]) == trace
