"""The WebSocket entry: origin check, route and cookies in one ASGI application.

Channels' usual stack, `OriginValidator(AuthMiddlewareStack(URLRouter(...)))`, is five
applications nested in one another; each copies the scope and stays suspended, holding its
copy, for as long as the socket is open, and the session and a lazy user stay in the scope.
Measured on 1000 idle sockets (docs/performance.md) that was about 6 KiB of each socket's
40, for work done once, at the handshake. So this one application does those steps in one
frame: the Origin check (exact origins, chat.origins: the site itself or CHAT_ALLOWED_ORIGINS;
no Origin only for a client without the session cookie), the route (`/ws/` is the chat; any
other path is refused with HTTP 403), and the cookies. The session is read by
`accounts.identity` when the socket authenticates and is not kept.
"""

from __future__ import annotations

from typing import Any

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http.cookie import parse_cookie
from django.http.request import split_domain_port, validate_host

from chat.consumers import ChatConsumer
from chat.origins import OriginPolicy, allowed_origin_set, site_origin

CHAT_PATH = "/ws/"


class WebSocketEntry:
    def __init__(self) -> None:
        self._policy_for: tuple[str, ...] | None = None
        self._policy = self.policy()  # a bad CHAT_ALLOWED_ORIGINS entry stops the start-up
        self.chat = ChatConsumer.as_asgi()

    def policy(self) -> OriginPolicy:
        """The allow-list from CHAT_ALLOWED_ORIGINS (made again when the setting changes, as in tests)."""
        configured = tuple(settings.CHAT_ALLOWED_ORIGINS)
        if configured != self._policy_for:
            try:
                self._policy = OriginPolicy(allowed=allowed_origin_set(configured))
            except ValueError as error:
                raise ImproperlyConfigured(f"CHAT_ALLOWED_ORIGINS: {error}") from None
            self._policy_for = configured
        return self._policy

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            raise ValueError("WebSocketEntry serves WebSocket connections only")
        cookies = cookies_of(scope)
        permitted = self.policy().permits(
            header(scope, b"origin"),
            site=handshake_site(scope),
            ambient_credential=settings.SESSION_COOKIE_NAME in cookies,
        )
        if not permitted or route_path(scope) != CHAT_PATH:
            # Closed before accept: HTTP 403 to the handshake. Only /ws/ speaks WebSocket
            # (the admin and the pages are HTTP only).
            await WebsocketDenier()(scope, receive, send)
            return
        await self.chat(dict(scope, cookies=cookies), receive, send)


def header(scope: dict[str, Any], name: bytes) -> str | None:
    """The last value of a request header (as Channels' OriginValidator reads Origin), or None."""
    found = None
    for key, value in scope.get("headers") or ():
        if key == name:
            found = value.decode("latin1")
    return found


def handshake_site(scope: dict[str, Any]) -> str | None:
    """The site's own origin for this handshake: its scheme and Host, if Django answers to that host."""
    host = header(scope, b"host")
    if not host:
        return None
    domain, _port = split_domain_port(host)
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]  # as Django's HttpRequest.get_host
    if not domain or not validate_host(domain, allowed_hosts):
        return None
    return site_origin(str(scope.get("scheme") or "ws"), host)


def route_path(scope: dict[str, Any]) -> str:
    """The path below the server's root path (daphne --root-path), as Channels' router sees it."""
    path: str = scope.get("path") or ""
    root: str = scope.get("root_path") or ""
    return path[len(root) :] if root and path.startswith(root) else path


def cookies_of(scope: dict[str, Any]) -> dict[str, str]:
    """The request's cookies, every Cookie header joined (as Channels' CookieMiddleware does)."""
    headers = [value for name, value in scope.get("headers") or () if name == b"cookie"]
    return parse_cookie(b"; ".join(headers).decode("latin1")) if headers else {}
