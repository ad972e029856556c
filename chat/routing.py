"""WebSocket URL routes."""

from __future__ import annotations

from channels.generic.websocket import AsyncWebsocketConsumer
from django.urls import path, re_path

from chat.consumers import ChatConsumer


class RefusedSocket(AsyncWebsocketConsumer):
    """Every other path: only /ws/ speaks WebSocket (admin and the pages are HTTP only).
    Closing before accept answers the handshake with HTTP 403, where no route was a 500."""

    async def connect(self) -> None:
        await self.close()


websocket_urlpatterns = [
    path("ws/", ChatConsumer.as_asgi()),
    re_path(r"", RefusedSocket.as_asgi()),
]
