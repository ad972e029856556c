"""ASGI entry point: HTTP through Django, WebSockets through Channels.

The WebSocket stack checks the Origin header against an explicit allow-list (the hosts
in DJANGO_ALLOWED_HOSTS plus the origins in CHAT_ALLOWED_ORIGINS), then loads the session.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from chat import wire  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402
from chatsite.ops import emf  # noqa: E402

emf.start_from_settings()  # CloudWatch EMF lines when METRICS_EMF=1
wire.install()  # under daphne: room messages framed once, written to every socket (chat.wire)


def allowed_origins() -> list[str]:
    return [*settings.ALLOWED_HOSTS, *settings.CHAT_ALLOWED_ORIGINS]


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": OriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)), allowed_origins()),
    }
)
