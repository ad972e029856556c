"""Notification levels, read receipts and what counts as seen, in Chromium (issue 16), in both
UIs: the open room's "Notify me about" level (in its Members dialog) and the "Send read receipts" switch are set in
the page and kept by the server (/api/notifications); a hidden tab shows a browser
notification as the level says (all messages, mentions and DMs, nothing); the React app
marks read only what is on screen.

The notifications permission is granted to the context; a recording Notification and a tab
the test hides (document.visibilityState) stand in for a person switching tabs, which
headless Chromium never does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.browser.conftest import SCREENSHOTS, BrowserUser, NewUser, skip_reason
from tests.browser.test_react_ui import app_server, open_app, react_build  # noqa: F401 - fixtures
from tests.browser.test_react_ui import say as react_say
from tests.browser.test_ui_layout import open_room
from tests.browser.test_unread import say as template_say
from tests.e2e.client import ChatClient, create_room
from tests.fixtures.servers import DaphneServer

_reason = skip_reason()
pytestmark = [
    pytest.mark.skipif(_reason is not None, reason=_reason or ""),
    pytest.mark.asyncio(loop_scope="module"),
]
if _reason is None:
    from playwright.async_api import expect

# Every Notification the page shows is recorded; the test decides whether the tab is hidden.
RECORD_NOTIFICATIONS = """
(() => {
  const Real = window.Notification;
  window.__notes = [];
  window.__hidden = false;
  if (Real) {
    window.Notification = class extends Real {
      constructor(title, options) {
        super(title, options);
        window.__notes.push({ title, body: options?.body ?? '' });
      }
    };
  }
  Object.defineProperty(document, 'visibilityState', { get: () => (window.__hidden ? 'hidden' : 'visible') });
  Object.defineProperty(document, 'hidden', { get: () => window.__hidden });
})();
"""


async def recording(user: BrowserUser, server: DaphneServer) -> None:
    """Grant notifications to the user's pages and record what they show."""
    await user.context.grant_permissions(["notifications"], origin=server.base_url)
    await user.context.add_init_script(RECORD_NOTIFICATIONS)


async def hide(user: BrowserUser, hidden: bool = True) -> None:
    await user.page.evaluate(
        "(h) => { window.__hidden = h; document.dispatchEvent(new Event('visibilitychange')); }", hidden
    )


async def notes(user: BrowserUser) -> list[str]:
    shown: list[dict[str, str]] = await user.page.evaluate("() => window.__notes")
    return [note["body"] for note in shown]


async def settings(user: BrowserUser, server: DaphneServer) -> dict[str, Any]:
    """What the server keeps for the user (GET /api/notifications, with the page's cookies)."""
    answer = await user.page.request.get(f"{server.base_url}/api/notifications")
    assert answer.ok
    body: dict[str, Any] = await answer.json()
    return body


async def kept(user: BrowserUser, server: DaphneServer, check: Callable[[dict[str, Any]], bool]) -> None:
    """Wait (bounded) until the server keeps what the page set."""
    for _ in range(100):
        if check(await settings(user, server)):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the server never kept it: {await settings(user, server)}")


@dataclass(frozen=True)
class Ui:
    """What differs between the two UIs for these tests: how a room opens and is written in,
    and where a stored message's line is."""

    open: Callable[[BrowserUser, DaphneServer, str], Awaitable[None]]
    say: Callable[[BrowserUser, str], Awaitable[None]]
    line: str


UIS = {
    "template": Ui(open=open_room, say=template_say, line="#messages li.msg"),
    "react": Ui(open=open_app, say=react_say, line=".message-list li.message[data-seq]"),
}


@pytest.mark.parametrize("ui_name", list(UIS))
async def test_the_level_and_receipts_are_set_in_the_page_and_notifications_follow_the_level(
    app_server: Callable[..., DaphneServer],  # noqa: F811 - the fixture imported above
    new_user: NewUser,
    ui_name: str,
) -> None:
    """In either UI: at the default level a hidden tab shows mentions only; set to "All
    messages" it shows every message, set to "Nothing" none; the level and "Send read
    receipts" are kept by the server and shown again after a reload."""
    ui = UIS[ui_name]
    server = app_server()
    ann = await new_user(server, f"ann{ui_name}")
    ben = await new_user(server, f"ben{ui_name}")
    room_id = await asyncio.to_thread(create_room, server.base_url, server.login(ben.name), f"level-{ui_name}")
    await recording(ann, server)
    await ui.open(ann, server, room_id)
    await ui.open(ben, server, room_id)
    # The level is in the room's Members dialog (the room head keeps the room's name).
    members = ann.page.locator("#members-dialog")
    await ann.page.get_by_role("button", name="Members").click()
    level = members.get_by_label("Notify me about")
    await expect(level).to_have_value("mentions")
    await expect(ann.page.get_by_label("Send read receipts")).to_be_checked()

    async def ben_says(text: str) -> None:
        await ui.say(ben, text)
        await expect(ann.page.locator(ui.line).last).to_contain_text(text)

    await hide(ann)
    await ben_says("plain at the default")
    await ben_says(f"@{ann.name} a mention")
    assert await notes(ann) == [f"@{ann.name} a mention"]

    await hide(ann, False)
    await level.select_option("all")
    await kept(ann, server, lambda s: s["rooms"].get(room_id, {}).get("level") == "all")
    await expect(level).to_be_enabled()
    await hide(ann)
    await ben_says("plain at all")
    assert await notes(ann) == [f"@{ann.name} a mention", "plain at all"]

    await hide(ann, False)
    await level.select_option("nothing")
    await kept(ann, server, lambda s: s["rooms"][room_id]["level"] == "nothing")
    await expect(level).to_be_enabled()
    await hide(ann)
    await ben_says(f"@{ann.name} not now")
    assert await notes(ann) == [f"@{ann.name} a mention", "plain at all"]

    await hide(ann, False)
    await members.get_by_role("button", name="Close").click()
    receipts = ann.page.get_by_label("Send read receipts")
    await receipts.uncheck()
    await kept(ann, server, lambda s: s["receipts"] is False)
    await ann.page.reload()
    await ann.page.get_by_role("button", name="Members").click()
    await expect(members.get_by_label("Notify me about")).to_have_value("nothing")
    await expect(ann.page.get_by_label("Send read receipts")).not_to_be_checked()
    await ann.page.screenshot(path=str(SCREENSHOTS / f"unread-settings-{ui_name}.png"))
    assert ann.page_errors == [] and ben.page_errors == []


async def test_react_marks_read_only_what_is_on_screen(
    app_server: Callable[..., DaphneServer],  # noqa: F811 - the fixture imported above
    new_user: NewUser,
) -> None:
    """Scrolled up, new messages stay unread; scrolled until the first of them is on screen,
    that one is read and the ones below it are not (the badge in Ann's other tab says how
    many); at the bottom, all are read."""
    server = app_server()
    ann = await new_user(server, "annseen")
    ben = await new_user(server, "benseen")
    seen_room, seen_other = [
        await asyncio.to_thread(create_room, server.base_url, server.login("benseen"), name)
        for name in ("seen-room", "seen-other")
    ]
    # Ann joins both as a member: her sidebar lists the rooms she belongs to (sidebarRooms).
    joiner = await ChatClient.connect(
        server.ws_url, cookie=await asyncio.to_thread(server.login, "annseen"), origin=server.origin
    )
    try:
        for room in (seen_room, seen_other):
            mark = len(joiner.frames)
            await joiner.send_json({"action": "addMember", "roomId": room})
            await joiner.wait_for(lambda f: f["type"] == "done" and f.get("action") == "addMember", after=mark)
    finally:
        await joiner.close()
    other = BrowserUser(name="annseen", context=ann.context, page=await ann.context.new_page())
    await open_app(other, server, seen_other)
    await open_app(ann, server, seen_room)
    await open_app(ben, server, seen_room)
    lines = ann.page.locator(".message-list li.message[data-seq] .text")
    for n in range(12):
        await react_say(ben, f"filler {n} " + "words " * 30)
    await expect(lines.last).to_contain_text("filler 11")
    badge = other.page.locator(f'nav a[href="#/rooms/{seen_room}"] .badge')
    await ann.page.bring_to_front()
    await expect(badge).to_have_count(0)  # all read: Ann was at the bottom, looking

    await ann.page.locator(".messages").evaluate("s => { s.scrollTop = 0; }")
    for n in range(4):
        await react_say(ben, f"new {n} " + "words " * 30)
    await expect(lines.last).to_contain_text("new 3")
    await expect(badge).to_contain_text("4")  # out of view: unread, though they arrived

    # The first new message scrolled to the bottom edge: it is seen, the three below are not.
    await (
        ann.page.locator(".message-list li.message[data-seq]")
        .filter(has_text="new 0")
        .evaluate("li => li.scrollIntoView({ block: 'end' })")
    )
    await expect(badge).to_contain_text("3")
    await ann.page.screenshot(path=str(SCREENSHOTS / "unread-react-seen.png"))
    await ann.page.locator(".messages").evaluate("s => { s.scrollTop = s.scrollHeight; }")
    await expect(badge).to_have_count(0)
    assert ann.page_errors == [] and ben.page_errors == [] and other.page_errors == []
