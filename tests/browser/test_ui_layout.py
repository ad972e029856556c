"""The template UI's layout (issue 20) in Chromium: rooms in a sidebar, switching rooms in
place, the per-message menu (Report through an in-page dialog), grouping, avatars, links.

One daphne for the module; each test keeps to its own users and rooms.
"""

from __future__ import annotations

import pytest

from tests.browser.conftest import SCREENSHOTS, BrowserUser, NewUser, skip_reason
from tests.browser.test_template_ui import create_room, shared_server  # noqa: F401 - a fixture
from tests.fixtures.servers import DaphneServer

_reason = skip_reason()
pytestmark = [
    pytest.mark.skipif(_reason is not None, reason=_reason or ""),
    pytest.mark.asyncio(loop_scope="module"),
]
if _reason is None:
    from playwright.async_api import expect


async def open_room(user: BrowserUser, server: DaphneServer, room_id: str) -> None:
    await user.page.goto(f"{server.base_url}/rooms/{room_id}/")
    await expect(user.page.locator("#status")).to_have_attribute("data-state", "live")


async def say(user: BrowserUser, text: str) -> None:
    box = user.page.locator("#message-input")
    await box.fill(text)
    await box.press("Enter")
    await expect(user.page.locator("#messages li.msg").filter(has_text=text).last).to_have_attribute(
        "data-state", "sent"
    )


async def test_rooms_switch_in_the_sidebar_without_a_page_load(
    shared_server: DaphneServer,  # noqa: F811 - the fixture imported above
    new_user: NewUser,
) -> None:
    """The sidebar lists the rooms; a click opens one in the main pane on the same page and socket,
    the composer focused; a message in another room raises that room's unread badge; Back returns."""
    server = shared_server
    ann = await new_user(server, "ann")
    switch_a = await create_room(ann, server, "switch-a")
    switch_b = await create_room(ann, server, "switch-b")
    await say(ann, "only in b")
    await open_room(ann, server, switch_a)
    page = ann.page
    await page.evaluate("window.__samePage = true")
    sockets: list[object] = []
    page.on("websocket", lambda ws: sockets.append(ws))

    sidebar = page.get_by_role("navigation", name="Rooms")
    await sidebar.get_by_role("link", name="switch-b").click()
    await expect(page).to_have_url(f"{server.base_url}/rooms/{switch_b}/")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("switch-b")
    await expect(page.locator("#messages li.msg .text")).to_have_text(["only in b"])
    await expect(sidebar.get_by_role("link", name="switch-b")).to_have_attribute("aria-current", "page")
    await expect(page.locator("#message-input")).to_be_focused()
    await expect(page.locator("#status")).to_have_attribute("data-state", "live")
    assert await page.evaluate("window.__samePage") is True
    assert sockets == []  # the same connection

    ben = await new_user(server, "ben")
    await open_room(ben, server, switch_a)
    await say(ben, "psst in a")
    badge = sidebar.locator(f'a[data-room-id="{switch_a}"] [data-unread]')
    await expect(badge).to_have_text("1")
    await expect(page).to_have_title("(1) switch-b · Chatsite")

    await page.go_back()
    await expect(page).to_have_url(f"{server.base_url}/rooms/{switch_a}/")
    await expect(page.locator("#messages li.msg .text")).to_have_text(["psst in a"])
    await expect(badge).to_be_hidden()
    assert await page.evaluate("window.__samePage") is True
    assert ann.page_errors == [] and ben.page_errors == []


async def test_report_is_in_the_message_menu_by_keyboard_with_an_in_page_dialog(
    shared_server: DaphneServer,  # noqa: F811 - the fixture imported above
    new_user: NewUser,
) -> None:
    """Tab reaches the message list as one stop; Enter opens the line's menu, Esc closes it; Report…
    opens a dialog with reasons (no window.prompt), and the thanks is not an error."""
    server = shared_server
    cora = await new_user(server, "cora")
    dan = await new_user(server, "dan")
    menu_room = await create_room(cora, server, "menu-room")
    await say(cora, "first from cora")
    await say(cora, "second from cora")
    await open_room(dan, server, menu_room)
    page = dan.page
    lines = page.locator("#messages li.msg")
    await expect(lines).to_have_count(2)

    # One Tab stop for the whole list: the last line, then ↑ to the first.
    await expect(lines.nth(1)).to_have_attribute("tabindex", "0")
    await expect(lines.nth(0)).to_have_attribute("tabindex", "-1")
    assert await page.locator("#messages button[tabindex='0']").count() == 1
    await lines.nth(1).focus()
    await page.keyboard.press("ArrowUp")
    await expect(lines.nth(0)).to_be_focused()

    await page.keyboard.press("Enter")
    menu = page.get_by_role("menu", name="Message actions")
    await expect(menu).to_be_visible()
    await expect(menu.get_by_role("menuitem", name="Report…")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(menu).to_be_hidden()
    await expect(lines.nth(0).locator(".msg-menu-button")).to_be_focused()

    await page.keyboard.press("Enter")
    await page.keyboard.press("Enter")  # Report…
    dialog = page.get_by_role("dialog", name="Report this message")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("first from cora")
    await dialog.get_by_label("Spam or advertising").check()
    await dialog.get_by_label("Details (optional)").fill("sells pills")
    await dialog.get_by_role("button", name="Send report").click()
    await expect(dialog).to_be_hidden()
    notice = page.locator("#notice")
    await expect(notice).to_contain_text("the moderators will look at this message")
    await expect(notice).to_have_attribute("role", "status")
    await expect(lines.nth(0).locator(".reported-mark")).to_have_text("Reported")

    # Your own messages offer no Report (but Edit and Delete: issue 17).
    await cora.page.locator("#messages li.msg").first.locator(".msg-menu-button").click()
    await expect(cora.page.get_by_role("menu").get_by_role("menuitem", name="Edit")).to_be_visible()
    await expect(cora.page.get_by_role("menu")).not_to_contain_text("Report")
    assert dan.dialogs == [] and dan.page_errors == [] and cora.page_errors == []


async def test_one_senders_run_is_grouped_with_one_avatar_and_links_are_clickable(
    shared_server: DaphneServer,  # noqa: F811 - the fixture imported above
    new_user: NewUser,
) -> None:
    """Consecutive messages of one sender show name and avatar once; another sender starts a new
    group; http(s) and www. links are links, markup stays text; own sent messages say nothing."""
    server = shared_server
    eve = await new_user(server, "eve")
    fay = await new_user(server, "fay")
    group_room = await create_room(eve, server, "group-room")
    await open_room(fay, server, group_room)
    await say(eve, "one")
    await say(eve, "two, see www.example.org and https://example.com/x.")
    await say(fay, "three")
    page = fay.page
    lines = page.locator("#messages li.msg")
    await expect(lines).to_have_count(3)
    assert [await lines.nth(i).evaluate("li => li.classList.contains('grouped')") for i in range(3)] == [
        False,
        True,
        False,
    ]
    await expect(lines.nth(0).locator(".avatar")).to_have_text("E")
    assert await lines.nth(1).locator(".avatar").is_hidden()
    await expect(lines.nth(1).locator(".author")).to_have_text("eve")  # still read out
    background = "a => getComputedStyle(a).backgroundColor"
    colours = {await lines.nth(i).locator(".avatar").evaluate(background) for i in (0, 2)}
    assert len(colours) == 2

    links = lines.nth(1).locator(".text a")
    await expect(links).to_have_count(2)
    assert [await a.get_attribute("href") for a in await links.all()] == [
        "https://www.example.org/",
        "https://example.com/x",
    ]
    await expect(links.first).to_have_attribute("rel", "noopener noreferrer nofollow ugc")
    # Own sent lines carry no "Sent" text.
    own = fay.page.locator("#messages li.msg.mine")
    await expect(own).to_have_attribute("data-state", "sent")
    assert await own.locator(".delivery").is_hidden()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / "template-room-grouped.png"))
    assert eve.page_errors == [] and fay.page_errors == []
