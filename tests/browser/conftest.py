"""Real-browser fixtures: Debian's Chromium driven by async Playwright, one browser per module.

Playwright never downloads a browser here: it launches /usr/bin/chromium (`apt-get install
-y chromium`; CI installs it through scripts/system-deps.sh). Where Chromium or Playwright is
missing, every browser test skips and says why. Async Playwright because the sync API
clashes with pytest-asyncio in one run.

A module's tests share its browser and event loop, so they are marked
`pytest.mark.asyncio(loop_scope="module")`; each test gets fresh contexts (cookie jars),
so users never leak into one another.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio

from tests.fixtures.servers import DaphneServer

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Dialog, Page, WebSocketRoute

CHROMIUM = Path(os.environ.get("CHATSITE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
# Screenshots a person looks at (never committed: var/ is ignored).
SCREENSHOTS = ROOT / "var" / "screenshots"
WS_URL = re.compile(r"/ws/$")
TIMEOUT_FACTOR = float(os.environ.get("CHAT_TEST_TIMEOUT_FACTOR", "1"))


def timeout_ms(seconds: float) -> float:
    """A browser wait in milliseconds, scaled for slow machines."""
    return seconds * 1000 * TIMEOUT_FACTOR


def skip_reason() -> str | None:
    """Why browser tests cannot run on this machine, or None when they can."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -r requirements-dev.txt)"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install -y chromium)"
    return None


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium for the whole module."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=timeout_ms(10))
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class BrowserUser:
    """A signed-in user in their own browser context, with every dialog that opened."""

    name: str
    context: BrowserContext
    page: Page
    dialogs: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)


def cookies_for(server: DaphneServer, header: str) -> list[dict[str, str]]:
    """A Cookie header (from DaphneServer.signup/login) as Playwright cookies."""
    jar: SimpleCookie = SimpleCookie()
    jar.load(header)
    return [{"name": name, "value": morsel.value, "url": server.base_url} for name, morsel in jar.items()]


async def browser_user(
    browser: Browser, server: DaphneServer, name: str | None, *, viewport_width: int = 1000
) -> BrowserUser:
    """A fresh browser context: signed up as `name` on `server`, or signed out when name is None."""
    context = await browser.new_context(viewport={"width": viewport_width, "height": 720})
    context.set_default_timeout(timeout_ms(10))
    if name is not None:
        header = await asyncio.to_thread(server.signup, name)
        await context.add_cookies(cookies_for(server, header))  # type: ignore[arg-type]
    page = await context.new_page()
    user = BrowserUser(name=name or "", context=context, page=page)

    async def on_dialog(dialog: Dialog) -> None:
        user.dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda error: user.page_errors.append(str(error)))
    return user


NewUser = Callable[..., Awaitable[BrowserUser]]


@pytest_asyncio.fixture(loop_scope="module")
async def new_user(browser: Browser) -> AsyncIterator[NewUser]:
    """`await new_user(server, "alice")`: a signed-up user in a fresh context (None: a visitor), closed after."""
    made: list[BrowserUser] = []

    async def make(server: DaphneServer, name: str | None, *, viewport_width: int = 1000) -> BrowserUser:
        user = await browser_user(browser, server, name, viewport_width=viewport_width)
        made.append(user)
        return user

    yield make
    for user in made:
        await user.context.close()


@dataclass
class SocketLink:
    """The path from a page's sockets to daphne, which a test can cut while HTTP keeps working.

    Route a context's sockets through `serve` (`context.route_web_socket(WS_URL, link.serve)`):
    while up, each socket is passed through to the server and every frame the page sends is
    recorded; `cut()` closes the open sockets with 1012 (service restart) and every new one
    at once, as a restarting server does, so the page stays offline while reloads still load.
    """

    down: bool = False
    routes: list[WebSocketRoute] = field(default_factory=list)
    sent: list[dict[str, object]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)  # what the server sent the page

    async def serve(self, ws: WebSocketRoute) -> None:
        if self.down:
            await ws.close(code=1012, reason="restarting")
            return
        server_side = ws.connect_to_server()
        self.routes.append(ws)

        def up(message: str | bytes) -> None:
            self.sent.append(json.loads(message))
            server_side.send(message)

        def down(message: str | bytes) -> None:
            self.received.append(json.loads(message))
            ws.send(message)

        ws.on_message(up)
        server_side.on_message(down)

    def edit_and_remove(self, room_id: str, edit: str, remove: str) -> None:
        """Send the open page protocol-v2 events, as a server with room events would: `edit`'s
        message edited, then `remove`'s removed by its author, each with the room's next seqs."""
        messages = {f["message"]: f for f in self.received if f.get("type") == "message" and f.get("roomId") == room_id}
        last = max(int(f["seq"]) for f in messages.values())
        events = [
            {
                "type": "messageEdited",
                "roomId": room_id,
                "seq": last + 1,
                "messageId": messages[edit]["messageId"],
                "message": f"{edit}, edited",
                "editedAt": "2026-12-02T10:00:00Z",
            },
            {
                "type": "messageRemoved",
                "roomId": room_id,
                "seq": last + 2,
                "messageId": messages[remove]["messageId"],
                "messageSeq": messages[remove]["seq"],
                "removedBy": "author",
            },
        ]
        for event in events:
            self.routes[-1].send(json.dumps(event))

    async def cut(self) -> None:
        self.down = True
        routes, self.routes = self.routes, []
        for ws in routes:
            await ws.close(code=1012, reason="restarting")

    def sends(self, text: str) -> list[dict[str, object]]:
        """Every sendMessage of `text` that reached the server."""
        return [f for f in self.sent if f.get("action") == "sendMessage" and f.get("message") == text]


async def outbox_keys(page: Page) -> list[str]:
    """The unsent messages this browser keeps (static/chat/core/outbox.js), by localStorage key."""
    keys: list[str] = await page.evaluate(
        "() => Object.keys(localStorage).filter((key) => key.startsWith('chatsite.outbox.'))"
    )
    return keys
