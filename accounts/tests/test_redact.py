"""No token reaches a log line: the logging filter and daphne's access log."""

from __future__ import annotations

import io
import logging

from daphne.access import AccessLogGenerator

from accounts.redact import RedactTokensFilter, install_access_log_redaction, redact

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


def test_query_tokens_and_jwts_are_redacted() -> None:
    """token=, id_token=, access_token=, an OAuth ?code= and bare JWTs are blanked; the rest stays."""
    assert redact(f"GET /ws/?room=general&token={JWT}") == "GET /ws/?room=general&token=[redacted]"
    assert (
        redact("/accounts/cognito/callback/?code=abc&state=1") == "/accounts/cognito/callback/?code=[redacted]&state=1"
    )
    assert redact(f"Authorization: Bearer {JWT}") == "Authorization: Bearer [redacted]"
    assert redact("id_token=x access_token=y") == "id_token=[redacted] access_token=[redacted]"
    assert redact("closed with code=4401 after 3 s") == "closed with code=4401 after 3 s"


def test_log_filter_rewrites_records_that_carry_a_token() -> None:
    """A record whose message or arguments hold a token is logged without it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactTokensFilter())
    logger = logging.getLogger("chatsite.test.redact")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("request %s failed", f"/ws/?token={JWT}")
        logger.warning("plain %d", 42)
    finally:
        logger.removeHandler(handler)
    assert JWT not in stream.getvalue()
    assert "token=[redacted]" in stream.getvalue() and "plain 42" in stream.getvalue()


def test_daphne_access_log_never_shows_a_token() -> None:
    """daphne's HTTP access lines carry the full URI: the token in it is redacted."""
    install_access_log_redaction()
    install_access_log_redaction()  # idempotent
    stream = io.StringIO()
    access = AccessLogGenerator(stream)
    access(
        "http",
        "complete",
        {"client": "127.0.0.1:5", "path": f"/ws/?token={JWT}", "status": 404, "size": 10, "method": "GET"},
    )
    access("websocket", "connecting", {"client": "127.0.0.1:6", "path": "/ws/"})
    assert JWT not in stream.getvalue()
    assert '"GET /ws/?token=[redacted]" 404' in stream.getvalue() and "WSCONNECTING /ws/" in stream.getvalue()
