"""The WebSocket entry: origin check, route and cookies in one ASGI application.

Channels' usual stack, `OriginValidator(AuthMiddlewareStack(URLRouter(...)))`, is five
applications nested in one another; each copies the scope and stays suspended, holding its
copy, for as long as the socket is open, and the session and a lazy user stay in the scope.
Measured on 1000 idle sockets (docs/performance.md) that was about 6 KiB of each socket's
40, for work done once, at the handshake. So this one application does those steps in one
frame: the Origin check (Channels' own matching rules, with the same allow-list), the route
(`/ws/` is the chat; any other path is refused with HTTP 403), and the cookies. The
session is read by `accounts.identity` when the socket authenticates and is not kept.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from channels.security.websocket import OriginValidator, WebsocketDenier
from django.http.cookie import parse_cookie

from chat.consumers import ChatConsumer

CHAT_PATH = "/ws/"


class WebSocketEntry:
    def __init__(self, allowed_origins: list[str]) -> None:
        self.origins = OriginValidator(None, allowed_origins)
        self.chat = ChatConsumer.as_asgi()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            raise ValueError("WebSocketEntry serves WebSocket connections only")
        if not self.origins.valid_origin(origin_of(scope)) or route_path(scope) != CHAT_PATH:
            # Closed before accept: HTTP 403 to the handshake. Only /ws/ speaks WebSocket
            # (the admin and the pages are HTTP only).
            await WebsocketDenier()(scope, receive, send)
            return
        await self.chat(dict(scope, cookies=cookies_of(scope)), receive, send)


def origin_of(scope: dict[str, Any]) -> Any:
    """The parsed Origin header (the last one, as Channels' OriginValidator reads it), or None."""
    parsed = None
    for name, value in scope.get("headers") or ():
        if name == b"origin":
            try:
                parsed = urlparse(value.decode("latin1"))
            except UnicodeDecodeError:
                pass
    return parsed


def route_path(scope: dict[str, Any]) -> str:
    """The path below the server's root path (daphne --root-path), as Channels' router sees it."""
    path: str = scope.get("path") or ""
    root: str = scope.get("root_path") or ""
    return path[len(root) :] if root and path.startswith(root) else path


def cookies_of(scope: dict[str, Any]) -> dict[str, str]:
    """The request's cookies, every Cookie header joined (as Channels' CookieMiddleware does)."""
    headers = [value for name, value in scope.get("headers") or () if name == b"cookie"]
    return parse_cookie(b"; ".join(headers).decode("latin1")) if headers else {}
