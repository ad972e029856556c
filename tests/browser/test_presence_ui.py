"""Presence dots and typing indicators in both UIs, in Chromium (issue 15).

Three users in one room: the others see "bob is typing…" while bob writes, "bob and carol
are typing…" with two, and the line clears when bob's message arrives; each author's dot is
green while they are online and turns offline (with a last-seen tooltip) when they leave.
The same state code (static/chat/core/presence.js, typing.js) drives both UIs.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.conftest import SCREENSHOTS, BrowserUser, NewUser, skip_reason
from tests.browser.test_react_ui import react_build  # noqa: F401 - the fixture that builds frontend/dist
from tests.fixtures.servers import DaphneServer

if TYPE_CHECKING:
    from playwright.async_api import Locator

_reason = skip_reason()
pytestmark = [
    pytest.mark.skipif(_reason is not None, reason=_reason or ""),
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(180),
]
if _reason is None:
    from playwright.async_api import expect

DaphneFactory = Callable[..., DaphneServer]

# Each UI: how to open a room, the composer, the typing line, a message line, its author's dot.
UIS = {
    "template": {
        "url": "/rooms/{room}/",
        "live": ("#status", "data-state", "live"),
        "composer": "#message-input",
        "typing": "#typing-line",
        "line": "#messages li.msg",
    },
    "react": {
        "url": "/app/#/rooms/{room}",
        "live": (".connection", "data-state", "live"),
        "composer": "#composer-text",
        "typing": ".typing-line",
        "line": ".message-list li.message",
    },
}


async def open_room(user: BrowserUser, server: DaphneServer, ui: dict, room: str) -> None:
    await user.page.goto(server.base_url + ui["url"].format(room=room))
    selector, attribute, value = ui["live"]
    await expect(user.page.locator(selector)).to_have_attribute(attribute, value)


def dot_of(user: BrowserUser, ui: dict, text: str) -> Locator:
    return user.page.locator(ui["line"]).filter(has=user.page.get_by_text(text, exact=True)).locator(".presence-dot")


@pytest.mark.usefixtures("react_build")
@pytest.mark.parametrize("ui_name", ["template", "react"])
async def test_typing_and_presence_show_live_in_both_uis(
    ui_name: str, daphne_factory: DaphneFactory, new_user: NewUser
) -> None:
    ui = UIS[ui_name]
    server = daphne_factory()
    room = "general"
    tag = uuid.uuid4().hex[:4]
    alice = await new_user(server, f"alice{tag}")
    bob = await new_user(server, f"bob{tag}")
    carol = await new_user(server, f"carol{tag}")
    for user in (alice, bob, carol):
        await open_room(user, server, ui, room)

    typing = alice.page.locator(ui["typing"])
    await bob.page.locator(ui["composer"]).press_sequentially("hello")
    await expect(typing).to_have_text(f"bob{tag} is typing…")
    await carol.page.locator(ui["composer"]).press_sequentially("hi")
    await expect(typing).to_have_text(re.compile(rf"^(bob{tag} and carol{tag}|carol{tag} and bob{tag}) are typing…$"))
    await expect(bob.page.locator(ui["typing"])).to_have_text(f"carol{tag} is typing…")  # never oneself
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await alice.page.screenshot(path=str(SCREENSHOTS / f"presence-{ui_name}-typing.png"))

    await bob.page.locator(ui["composer"]).press("Enter")  # bob's message arrives: he stops typing
    await expect(typing).to_have_text(f"carol{tag} is typing…")
    await expect(typing).to_have_text("", timeout=15_000)  # carol stopped: gone after 6 s

    bob_dot = dot_of(alice, ui, "hello")
    await expect(bob_dot).to_have_attribute("data-status", "online")
    await expect(bob.page.locator(ui["line"]).filter(has_text="hello")).to_have_count(1)
    await expect(dot_of(bob, ui, "hello")).to_have_count(0)  # no dot on one's own line: never "offline" to oneself
    await alice.page.screenshot(path=str(SCREENSHOTS / f"presence-{ui_name}-online.png"))
    await bob.context.close()
    await expect(bob_dot).to_have_attribute("data-status", "offline")
    await expect(bob_dot).to_have_attribute("title", re.compile(r"^offline · last seen "))
    await alice.page.screenshot(path=str(SCREENSHOTS / f"presence-{ui_name}-offline.png"))
    assert alice.page_errors == [] and carol.page_errors == []


@pytest.mark.usefixtures("react_build")
@pytest.mark.parametrize("ui_name", ["template", "react"])
async def test_a_frame_listing_several_users_shows_each_of_them(
    ui_name: str, daphne_factory: DaphneFactory, new_user: NewUser
) -> None:
    """The server tells a window's presence changes in one frame (`users`, docs/protocol.md);
    a socket's first picture of a room is one such frame. bob and carol are in the room when
    alice opens it: her page gets them in one frame and shows both online."""
    ui = UIS[ui_name]
    server = daphne_factory(CHAT_PRESENCE_BATCH_SECONDS="10")  # the longest: first pictures only
    tag = uuid.uuid4().hex[:4]
    alice = await new_user(server, f"alice{tag}")
    others = [await new_user(server, f"{name}{tag}") for name in ("bob", "carol")]
    for user, text in zip(others, ("from bob", "from carol"), strict=True):
        await open_room(user, server, ui, "general")
        await user.page.locator(ui["composer"]).fill(text)
        await user.page.locator(ui["composer"]).press("Enter")
        await expect(user.page.locator(ui["line"]).filter(has_text=text)).to_have_count(1)
    lists: list[list[str]] = []

    def on_socket(socket: Any) -> None:
        def received(payload: str | bytes) -> None:
            frame = json.loads(payload)
            if frame.get("type") == "presence" and isinstance(frame.get("users"), list):
                lists.append(sorted(u["userId"] for u in frame["users"]))

        socket.on("framereceived", received)

    alice.page.on("websocket", on_socket)
    await open_room(alice, server, ui, "general")
    for text in ("from bob", "from carol"):
        await expect(dot_of(alice, ui, text)).to_have_attribute("data-status", "online")
    assert lists and all(len(users) == 2 for users in lists), lists
    await alice.page.screenshot(path=str(SCREENSHOTS / f"presence-{ui_name}-listed.png"))
    assert alice.page_errors == []
