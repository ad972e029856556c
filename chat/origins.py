"""Which WebSocket handshakes may proceed, by their Origin: exact origins, no host patterns.

A browser attaches the session cookie to a WebSocket handshake whatever page opened it, so
the Origin header is the only thing that tells the site's own pages from a page elsewhere
(cross-site WebSocket hijacking). Channels' OriginValidator matches an Origin's host against
ALLOWED_HOSTS patterns and ignores scheme and port: a page on another port of the same host,
or any sub-domain behind a leading-dot entry, could read a signed-in user's rooms. So the
rule here compares whole origins (scheme, host and port, default ports made explicit):

- the site itself: the origin of the handshake's own URL (its scheme and Host header, the
  Host one Django would answer to, so a rebound DNS name is no "site");
- or one of CHAT_ALLOWED_ORIGINS, exactly (a React app on CloudFront, say).

A client that sends no session cookie carries no ambient credential: nothing of the user's
travels without its consent, so it needs no Origin at all (wscat, the AWS sample's client,
a server-side bot authenticating by token). If it does send one, the same rule applies: a
foreign page is refused whatever it authenticates with. `null` (sandboxed frames, file:
pages) is never an allowed origin.

Pure functions with no settings or I/O, tested without a server (chat/tests/test_origins.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
# The scheme of the page a WebSocket's handshake URL belongs to.
_PAGE_SCHEMES: Final = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


def normalize_origin(value: str) -> str | None:
    """`scheme://host:port` in lower case with the port explicit, or None if `value` is not a
    serialised http(s) origin (a path, user info, a query, `null`, an unknown scheme)."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host or parts.username is not None or parts.password is not None:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or value.strip().endswith(("?", "#")):
        return None
    if ":" in host:
        host = f"[{host}]"  # IPv6, bracketed again as in the header
    return f"{scheme}://{host}:{port if port is not None else _DEFAULT_PORTS[scheme]}"


def site_origin(scheme: str, host_header: str | None) -> str | None:
    """The origin of the page a handshake belongs to: its URL's scheme and its Host header."""
    page_scheme = _PAGE_SCHEMES.get(scheme.lower())
    if page_scheme is None or not host_header:
        return None
    return normalize_origin(f"{page_scheme}://{host_header}")


def allowed_origin_set(origins: Iterable[str]) -> frozenset[str]:
    """Settings' exact origins, normalised. Raises ValueError naming an entry that is not one."""
    normalised = set()
    for entry in origins:
        origin = normalize_origin(entry)
        if origin is None:
            raise ValueError(f"{entry!r} is not an exact origin (scheme://host[:port], no path, no wildcard)")
        normalised.add(origin)
    return frozenset(normalised)


@dataclass(frozen=True, slots=True)
class OriginPolicy:
    """The allow-list one process checks every handshake against."""

    allowed: frozenset[str]

    def permits(self, origin: str | None, *, site: str | None, ambient_credential: bool) -> bool:
        """Whether a handshake with this Origin header (None: no header) may proceed.

        `site` is the handshake's own origin (`site_origin`, None if its Host is not one the
        site answers to); `ambient_credential` is whether it carries the session cookie.
        """
        if origin is None:
            return not ambient_credential
        exact = normalize_origin(origin)
        if exact is None:
            return False
        return exact == site or exact in self.allowed
