"""Read receipts on screen, a clicked notification, and the room list's counts across a server
restart, in Chromium, in both UIs (issue 16).

The other members' reading is done over their own sockets (`markRead`, as their tabs send
it): what is under test is what Ann sees. The notifications permission is granted and the
tab hidden as in test_unread_settings.py; the kept Notification is clicked by calling
its onclick, as the browser does when a person clicks it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.conftest import SCREENSHOTS, BrowserUser, NewUser, skip_reason
from tests.browser.test_react_ui import app_server, open_app, react_build  # noqa: F401 - fixtures
from tests.browser.test_ui_layout import open_room
from tests.browser.test_unread_settings import hide, kept, notes, recording
from tests.e2e.client import ChatClient
from tests.fixtures.servers import DaphneServer

if TYPE_CHECKING:
    from playwright.async_api import Locator, Page

_reason = skip_reason()
pytestmark = [
    pytest.mark.skipif(_reason is not None, reason=_reason or ""),
    pytest.mark.asyncio(loop_scope="module"),
]
if _reason is None:
    from playwright.async_api import expect

# After test_unread_settings' recording script: each Notification object is kept too, to be clicked.
KEEP_NOTIFICATIONS = """
(() => {
  const Recorded = window.Notification;
  window.__kept = [];
  if (Recorded) {
    window.Notification = class extends Recorded {
      constructor(title, options) {
        super(title, options);
        window.__kept.push(this);
      }
    };
  }
})();
"""


@dataclass(frozen=True)
class Ui:
    """Where the two UIs differ for these tests."""

    open: Callable[[BrowserUser, DaphneServer, str], Any]
    lines: str  # a stored message's line
    badge: Callable[[Page, str], Locator]  # a room's unread badge in the room list

    def line(self, page: Page, text: str) -> Locator:
        return page.locator(self.lines).filter(has_text=text)


UIS = {
    "template": Ui(
        open=open_room,
        lines="#messages li.msg",
        badge=lambda page, room: page.locator(f'#sidebar a[data-room-id="{room}"] [data-unread]'),
    ),
    "react": Ui(
        open=open_app,
        lines=".message-list li.message[data-seq]",
        badge=lambda page, room: page.locator(f'nav a[href="#/rooms/{room}"] .badge'),
    ),
}


@asynccontextmanager
async def socket(server: DaphneServer, cookie: str) -> AsyncIterator[ChatClient]:
    client = await ChatClient.connect(server.ws_url, cookie=cookie, origin=server.origin)
    try:
        yield client
    finally:
        await client.close()


async def done(client: ChatClient, frame: dict[str, Any]) -> dict[str, Any]:
    """Send an action and return its `done` (per-user frames such as roomAdded may come first)."""
    mark = len(client.frames)
    await client.send_json(frame)
    answer = await client.wait_for(
        lambda f: f["type"] in ("done", "error") and f.get("action", frame["action"]) == frame["action"], after=mark
    )
    assert answer["type"] == "done", answer
    return answer


async def say(client: ChatClient, room_id: str, text: str) -> int:
    ack = await client.send_message(room_id, text)
    assert ack["type"] == "ack", ack
    return int(ack["seq"])


async def mark_read(client: ChatClient, room_id: str, seq: int) -> None:
    """What a member's tab sends once it has shown the message (answered on their other sockets only)."""
    await client.send_json({"action": "markRead", "roomId": room_id, "seq": seq})


@pytest.mark.parametrize("ui_name", list(UIS))
async def test_seen_by_shows_under_the_last_message_each_member_read_and_moves_on(
    app_server: Callable[..., DaphneServer],  # noqa: F811 - the fixture imported above
    new_user: NewUser,
    ui_name: str,
) -> None:
    """In a small private room Ann sees "Seen by bob" under the last message Bob read; as he
    reads further it leaves that line for the later one, where Dan's name joins his; Cara,
    who turned receipts off, is never listed though she read everything."""
    ui = UIS[ui_name]
    server = app_server()
    ann = await new_user(server, f"annrc{ui_name}")
    cara = await new_user(server, f"cararc{ui_name}")
    bob, dan = f"bobrc{ui_name}", f"danrc{ui_name}"
    cookies = {name: await asyncio.to_thread(server.signup, name) for name in (bob, dan)}
    async with AsyncExitStack() as stack:
        owner = await stack.enter_async_context(socket(server, server.login(ann.name)))
        made = await done(owner, {"action": "createRoom", "name": f"receipts {ui_name}", "private": True})
        room = str(made["roomId"])
        for name in (bob, cara.name, dan):
            await done(owner, {"action": "addMember", "roomId": room, "username": name})
        await owner.join(room)
        seqs = [await say(owner, room, text) for text in ("one", "two", "three")]

        # Cara turns receipts off in the page, then reads everything.
        await ui.open(cara, server, room)
        await cara.page.get_by_label("Send read receipts").uncheck()
        await kept(cara, server, lambda s: s["receipts"] is False)
        readers = {}
        for name, cookie in (*cookies.items(), (cara.name, server.login(cara.name))):
            readers[name] = await stack.enter_async_context(socket(server, cookie))
            await readers[name].join(room)
        await mark_read(readers[cara.name], room, seqs[2])
        await mark_read(readers[bob], room, seqs[0])
        await asyncio.sleep(0.5)  # nothing to wait on: markRead answers the reader's other sockets only

        await ui.open(ann, server, room)
        seen = ann.page.locator(f"{ui.lines} .seen-by")
        await expect(ui.line(ann.page, "one").locator(".seen-by")).to_have_text(f"Seen by {bob}")
        await expect(seen).to_have_count(1)

        # Bob reads on: his name moves; Dan reads too and is listed beside him.
        await mark_read(readers[bob], room, seqs[2])
        await expect(ui.line(ann.page, "three").locator(".seen-by")).to_have_text(f"Seen by {bob}")
        await expect(ui.line(ann.page, "one").locator(".seen-by")).to_have_count(0)
        await mark_read(readers[dan], room, seqs[2])
        await expect(ui.line(ann.page, "three").locator(".seen-by")).to_have_text(f"Seen by {bob}, {dan}")
        await expect(seen).to_have_count(1)
        await ann.page.screenshot(path=str(SCREENSHOTS / f"unread-seen-by-{ui_name}.png"))

        # After a reload (the receipts asked afresh) Cara is still not listed.
        await ann.page.reload()
        await expect(ui.line(ann.page, "three").locator(".seen-by")).to_have_text(f"Seen by {bob}, {dan}")
        await expect(seen).to_have_count(1)
    assert ann.page_errors == [] and cara.page_errors == []


@pytest.mark.parametrize("ui_name", list(UIS))
async def test_a_clicked_notification_opens_the_room_at_its_message(
    app_server: Callable[..., DaphneServer],  # noqa: F811 - the fixture imported above
    new_user: NewUser,
    ui_name: str,
) -> None:
    """Ann's tab is hidden on another room; Ben mentions her between two screens of other
    lines; clicking the notification opens Ben's room with the mention on screen and focused."""
    ui = UIS[ui_name]
    server = app_server()
    ann = await new_user(server, f"annclick{ui_name}")
    ben = f"benclick{ui_name}"
    await recording(ann, server)
    await ann.context.add_init_script(KEEP_NOTIFICATIONS)
    async with socket(server, await asyncio.to_thread(server.signup, ben)) as writer:
        busy = str((await done(writer, {"action": "createRoom", "name": f"busy {ui_name}"}))["roomId"])
        quiet = str((await done(writer, {"action": "createRoom", "name": f"quiet {ui_name}"}))["roomId"])
        for room in (busy, quiet):  # Ann a member of both: her sidebar lists them, live
            await done(writer, {"action": "addMember", "roomId": room, "username": ann.name})
        await writer.join(busy)
        await ui.open(ann, server, busy)
        await ui.open(ann, server, quiet)
        await hide(ann)
        for n in range(25):
            await say(writer, busy, f"before {n} " + "words " * 12)
        await say(writer, busy, f"@{ann.name} the line to find")
        for n in range(25):
            await say(writer, busy, f"after {n} " + "words " * 12)
        for _ in range(100):  # bounded: the notification follows the message at once
            if await notes(ann):
                break
            await asyncio.sleep(0.1)
        assert await notes(ann) == [f"@{ann.name} the line to find"]

    await hide(ann, False)
    await ann.page.evaluate("() => window.__kept[0].onclick(new Event('click'))")
    wanted = ui.line(ann.page, "the line to find")
    await expect(wanted).to_be_focused()
    await expect(wanted).to_be_in_viewport()
    await expect(ui.line(ann.page, "after 24")).not_to_be_in_viewport()
    if ui_name == "template":
        await expect(ann.page).to_have_url(f"{server.base_url}/rooms/{busy}/")
    else:
        await expect(ann.page).to_have_url(f"{server.base_url}/app/#/rooms/{busy}")
    await ann.page.screenshot(path=str(SCREENSHOTS / f"unread-notification-click-{ui_name}.png"))
    assert ann.page_errors == []


@pytest.mark.parametrize("ui_name", list(UIS))
async def test_the_room_list_counts_are_the_same_after_a_server_restart(
    app_server: Callable[..., DaphneServer],  # noqa: F811 - the fixture imported above
    new_user: NewUser,
    ui_name: str,
) -> None:
    """Unread and mention counts come from what the server keeps: stopped and started again
    on the same database, Ann's freshly loaded room list shows the same badges and title."""
    ui = UIS[ui_name]
    server = app_server()
    ann = await new_user(server, f"annrestart{ui_name}")
    ben = f"benrestart{ui_name}"
    async with (
        socket(server, await asyncio.to_thread(server.signup, ben)) as writer,
        socket(server, server.login(ann.name)) as reader,
    ):
        plain = str((await done(writer, {"action": "createRoom", "name": f"plain {ui_name}"}))["roomId"])
        called = str((await done(writer, {"action": "createRoom", "name": f"called {ui_name}"}))["roomId"])
        home = str((await done(writer, {"action": "createRoom", "name": f"home {ui_name}"}))["roomId"])
        for room in (plain, called, home):
            await done(reader, {"action": "addMember", "roomId": room})
            await writer.join(room)
        seqs = [await say(writer, plain, f"plain {n}") for n in range(5)]
        await reader.join(plain)
        await mark_read(reader, plain, seqs[1])  # two read, three not
        await say(writer, called, "hello")
        await say(writer, called, f"@{ann.name} look")
        await ui.open(ann, server, home)

    async def counts() -> tuple[str, str, str | None, str]:
        plain_badge, called_badge = ui.badge(ann.page, plain), ui.badge(ann.page, called)
        await expect(plain_badge).to_contain_text("3")
        await expect(called_badge).to_contain_text("@")
        return (
            await plain_badge.inner_text(),
            await called_badge.inner_text(),
            await called_badge.get_attribute("class"),
            await ann.page.title(),
        )

    before = await counts()
    assert before[0].startswith("3") and before[1].startswith("@2"), before
    assert "badge-mention" in (before[2] or ""), before
    assert before[3].startswith("(5) "), before

    await asyncio.to_thread(server.stop)
    await asyncio.to_thread(server.start)
    await ui.open(ann, server, home)
    assert await counts() == before
    await ann.page.screenshot(path=str(SCREENSHOTS / f"unread-after-restart-{ui_name}.png"))
