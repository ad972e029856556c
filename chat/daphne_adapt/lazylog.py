"""Format autobahn's per-connection debug line only when debug logging would show it.

autobahn 26.10.2's WebSocketProtocol._connectionMade logs every protocol option on every new
TCP connection: `self.log.debug("\\n{attrs}", attrs=pformat(configAttrLog))`. The `pformat`
runs before the logger decides to drop the debug line, so each connection, a good socket or
a flood of bad tokens, pretty-prints some thirty options for nothing: about a quarter of
the main thread's CPU per refused socket (profile and figures in docs/reliability.md,
issue 24.7). Here the module's `pformat` returns a value that formats itself only when a
log observer renders it. Its one other use, `Timings.__str__`, must return a str, so it is
given pprint's own.
"""

from __future__ import annotations

import pprint
import sys
from typing import Any


class LazyFormat:
    """pprint.pformat(value), computed when the log line is rendered (never, at info level)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __str__(self) -> str:
        return pprint.pformat(self.value)

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def lazy_pformat(value: Any, *args: Any, **kwargs: Any) -> Any:
    return LazyFormat(value) if not args and not kwargs else pprint.pformat(value, *args, **kwargs)


def install() -> bool:
    """Make autobahn's WebSocket protocol module format its debug values lazily (idempotent)."""
    module: Any = sys.modules.get("autobahn.websocket.protocol")
    if module is None or getattr(module, "pformat", None) not in (pprint.pformat, lazy_pformat):
        return False
    timings: Any = getattr(module, "Timings", None)
    if timings is None:  # pragma: no cover - another autobahn
        return False
    timings.__str__ = _timings_str
    module.pformat = lazy_pformat
    return True


def _timings_str(timings: Any) -> str:
    return pprint.pformat(timings._timings)
