"""Keep tokens out of every log line, daphne's access log included.

Chatsite's own code never logs a token. This is the net under everything else:
- `RedactTokensFilter`, on the log handlers in settings.LOGGING, rewrites any record whose
  text carries a `token=` style query parameter or something shaped like a JWT;
- `install_access_log_redaction` wraps daphne's access log writer, which is not a logging
  handler: its WebSocket lines carry only the path, but its HTTP lines carry the full URI,
  query string included (a plain GET of /ws/?token=... would land there).
"""

from __future__ import annotations

import logging
import re
from typing import Any, Final

REDACTED: Final = "[redacted]"
# token=... anywhere; code=... only as a query parameter (an OAuth authorization code).
_QUERY_SECRET: Final = re.compile(
    r"(?i)((?<![A-Za-z0-9_])(?:token|access_token|id_token|refresh_token)=|[?&]code=)[^&;\s\"']*"
)
_JWT: Final = re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")


def redact(text: str) -> str:
    """`text` with query-string secrets and JWT-shaped strings replaced by [redacted]."""
    if "=" not in text and "eyJ" not in text:
        return text
    return _JWT.sub(REDACTED, _QUERY_SECRET.sub(rf"\1{REDACTED}", text))


class RedactTokensFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the handler's problem, not ours
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_installed = False


def install_access_log_redaction() -> None:
    """Redact the request field of daphne's access log entries (idempotent)."""
    global _installed
    if _installed:
        return
    try:
        from daphne.access import AccessLogGenerator
    except ImportError:  # not served by daphne
        return
    original = AccessLogGenerator.write_entry

    def write_entry(self: Any, host: Any, date: Any, request: Any, *args: Any, **kwargs: Any) -> None:
        original(self, host, date, redact(request) if isinstance(request, str) else request, *args, **kwargs)

    AccessLogGenerator.write_entry = write_entry  # type: ignore[method-assign]
    _installed = True
