"""ASGI entry point: HTTP through Django, WebSockets through Channels.

The WebSocket entry (chat.entry) checks the Origin header against exact origins (the site's
own, and those in CHAT_ALLOWED_ORIGINS: chat.origins), routes /ws/
to the chat and parses the cookies; the chat reads the session when the socket authenticates.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from chat import connections, daphne_adapt  # noqa: E402
from chat.entry import WebSocketEntry  # noqa: E402
from chatsite.ops import collector, drain, emf, inflight  # noqa: E402

if settings.PRODUCTION:
    from accounts.demo import refuse_demo_accounts

    refuse_demo_accounts()  # alice and bob of `make run`, with their published password
emf.start_from_settings()  # CloudWatch EMF lines when METRICS_EMF=1


def _on_shutdown() -> asyncio.Future[Any]:
    """A stop: the sockets drain, and meanwhile the HTTP requests still in a thread finish."""
    drained = connections.begin_drain()  # None: no socket to close
    settled = inflight.settle(settings.CHAT_STOP_REQUEST_SECONDS)
    return asyncio.gather(settled, *([drained] if drained is not None else []))


async def _at_start() -> None:
    """daphne is listening: everything start-up allocated is in place."""
    collector.set_for_a_server()
    await connections.at_start()


# Under daphne, once: what Chatsite adds to daphne, Twisted and autobahn (chat.daphne_adapt).
daphne_adapt.install(on_shutdown=_on_shutdown, on_start=_at_start, on_stopped=inflight.exit_if_abandoned)
drain.install_signal_handler()  # SIGUSR1 drains this process before a release stops it


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": WebSocketEntry(),
    }
)
