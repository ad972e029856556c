"""Unread, mentions and read state in Chromium (issue 16), template UI: two tabs of one user
and a second user. Badges from the server, kept in step across tabs; the "New messages"
divider; mentions highlighted and counted apart; "N new messages ↓"; the notifications button.

One daphne for the module; each test keeps to its own users and rooms.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tests.browser.conftest import SCREENSHOTS, BrowserUser, NewUser, skip_reason
from tests.browser.test_react_ui import app_server, open_app, react_build  # noqa: F401 - fixtures
from tests.browser.test_react_ui import say as react_say
from tests.browser.test_template_ui import create_room, shared_server  # noqa: F401 - a fixture
from tests.browser.test_ui_layout import open_room
from tests.e2e.client import create_room as create_room_over_http
from tests.fixtures.servers import DaphneServer

_reason = skip_reason()
pytestmark = [
    pytest.mark.skipif(_reason is not None, reason=_reason or ""),
    pytest.mark.asyncio(loop_scope="module"),
]
if _reason is None:
    from playwright.async_api import expect


async def say(user: BrowserUser, text: str) -> None:
    box = user.page.locator("#message-input")
    await box.fill(text)
    await box.press("Enter")
    await expect(user.page.locator("#messages li.msg").last).to_contain_text(text)


async def test_unread_follows_the_user_across_tabs_with_divider_mentions_and_jump(
    shared_server: DaphneServer,  # noqa: F811 - the fixture imported above
    new_user: NewUser,
) -> None:
    """Ben writes in a room Ann is not looking at: both of Ann's tabs show the badge; Ann
    reads it in one tab and the other tab's badge goes; a mention is highlighted and counted
    apart; scrolled up, new messages offer "1 new message ↓"."""
    server = shared_server
    ann = await new_user(server, "ann16")
    ben = await new_user(server, "ben16")
    other = await create_room(ann, server, "unread-other")
    room = await create_room(ann, server, "unread-room")
    await open_room(ann, server, other)
    tab2 = await ann.context.new_page()
    await open_room(BrowserUser(name="ann16", context=ann.context, page=tab2), server, other)
    await open_room(ben, server, room)
    for n in range(3):
        await say(ben, f"note {n}")
    for page in (ann.page, tab2):
        badge = page.locator(f'#sidebar a[data-room-id="{room}"] [data-unread]')
        await expect(badge).to_have_text("3")
        await expect(page).to_have_title("(3) unread-other · Chatsite")
    await expect(ann.page.get_by_role("button", name="Turn on notifications")).to_be_visible()

    # Ann reads the room in tab 1: the divider sits above Ben's first message, tab 2's badge goes.
    await ann.page.bring_to_front()
    await ann.page.locator(f'#sidebar a[data-room-id="{room}"]').click()
    divider = ann.page.locator("#messages li.new-divider")
    await expect(divider).to_have_text("New messages")
    await expect(ann.page.locator("#messages li.new-divider + li.msg .text")).to_have_text("note 0")
    await expect(tab2.locator(f'#sidebar a[data-room-id="{room}"] [data-unread]')).to_be_hidden()
    await expect(tab2).to_have_title("unread-other · Chatsite")

    # A mention: highlighted where it is read, counted apart where it is not.
    await say(ben, "@ann16 have a look")
    mention = ann.page.locator("#messages li.msg.mention")
    await expect(mention).to_contain_text("have a look")
    await ann.page.screenshot(path=str(SCREENSHOTS / "unread-divider-mention.png"))

    # Scrolled up, new messages do not arrive silently.
    for n in range(12):
        await say(ben, f"filler line {n} " + "words " * 20)
    # Ann has them all before she scrolls up: only what comes after counts as new below.
    await expect(ann.page.locator("#messages li.msg").last).to_contain_text("filler line 11")
    await ann.page.locator("#scroller").evaluate("s => { s.scrollTop = 0; }")
    await say(ben, "something new")
    jump = ann.page.get_by_role("button", name="1 new message ↓")
    await expect(jump).to_be_visible()
    await ann.page.screenshot(path=str(SCREENSHOTS / "unread-jump.png"))
    await jump.click()
    await expect(jump).to_be_hidden()
    await expect(tab2).to_have_title("unread-other · Chatsite")  # read in tab 1, so in tab 2
    await ann.page.locator(f'#sidebar a[data-room-id="{other}"]').click()
    await say(ben, "@ann16 and again")
    mention_badge = ann.page.locator(f'#sidebar a[data-room-id="{room}"] [data-unread]')
    await expect(mention_badge).to_have_class("badge badge-mention")
    await expect(mention_badge).to_have_text("@1")
    await ann.page.screenshot(path=str(SCREENSHOTS / "unread-mention-badge.png"))
    assert ann.page_errors == [] and ben.page_errors == []


async def test_the_react_app_shows_server_counts_divider_and_mentions(
    app_server: Callable[..., DaphneServer],  # noqa: F811 - the fixture imported above
    new_user: NewUser,
) -> None:
    """The React app: a room's badge and the tab title from the server's counts (the mention
    counted apart), the divider above the first unread message, the mention highlighted, the
    badge gone once read; the notifications button is there, asking nothing on load."""
    server = app_server()
    ann = await new_user(server, "annr")
    ben = await new_user(server, "benr")
    rx_a, rx_b = [
        # Ann's rooms: her sidebar lists the rooms she belongs to (issue 15), Ben writes in them.
        await asyncio.to_thread(create_room_over_http, server.base_url, server.login("annr"), name)
        for name in ("rx-a", "rx-b")
    ]
    await open_app(ann, server, rx_a)
    await open_app(ben, server, rx_b)
    for text in ("first", "second", "@annr over here"):
        await react_say(ben, text)
        await expect(ben.page.locator(".message-list li.message.own[data-seq]").last).to_contain_text(text)
    badge = ann.page.locator(f'nav a[href="#/rooms/{rx_b}"] .badge')
    await expect(badge).to_have_class("badge badge-mention")
    await expect(badge).to_contain_text("@3")
    await expect(ann.page).to_have_title("(3) rx-a · Chatsite")
    await expect(ann.page.get_by_role("button", name="Turn on notifications")).to_be_visible()
    await ann.page.bring_to_front()
    await ann.page.locator(f'nav a[href="#/rooms/{rx_b}"]').click()
    await expect(ann.page.locator(".message-list li.new-divider + li.message .text")).to_have_text("first")
    await expect(ann.page.locator(".message-list li.message.mention .text")).to_have_text("@annr over here")
    await expect(badge).to_have_count(0)
    await expect(ann.page).to_have_title("rx-b · Chatsite")
    await ann.page.screenshot(path=str(SCREENSHOTS / "unread-react.png"))
    box = ann.page.locator("#composer-text")
    await box.press_sequentially("ok @be")
    await expect(ann.page.get_by_role("option", name="@benr")).to_be_visible()
    await box.press("Tab")
    await expect(box).to_have_value("ok @benr ")
    await ann.page.get_by_role("button", name="Mentions").click()
    entry = ann.page.get_by_role("list", name="Messages that mention you").get_by_role("link")
    await expect(entry).to_have_text(f"#{rx_b} · benr: @annr over here")
    assert ann.page_errors == [] and ben.page_errors == []


async def test_the_composer_completes_mentions_and_the_mentions_list_opens(
    shared_server: DaphneServer,  # noqa: F811 - the fixture imported above
    new_user: NewUser,
) -> None:
    """Typing "@" and the start of a name offers the room's writers; Tab takes one; the
    mentioned user finds the message in their mentions list and opens its room from there."""
    server = shared_server
    cara = await new_user(server, "cara16")
    dan = await new_user(server, "dan16")
    complete = await create_room(cara, server, "complete-room")
    await say(cara, "hello")
    await open_room(dan, server, complete)
    box = dan.page.locator("#message-input")
    await box.press_sequentially("thanks @ca")
    option = dan.page.get_by_role("option", name="@cara16")
    await expect(option).to_be_visible()
    await dan.page.screenshot(path=str(SCREENSHOTS / "unread-complete.png"))
    await box.press("Tab")
    await expect(box).to_have_value("thanks @cara16 ")
    await box.press("Enter")
    await expect(cara.page.locator("#messages li.msg.mention")).to_contain_text("thanks @cara16")
    await open_room(cara, server, "general")
    await cara.page.get_by_role("button", name="Mentions").click()
    entry = cara.page.get_by_role("list", name="Messages that mention you").get_by_role("link")
    await expect(entry).to_have_text(f"#{complete} · dan16: thanks @cara16")
    await entry.click()
    await expect(cara.page).to_have_url(f"{server.base_url}/rooms/{complete}/")
    assert cara.page_errors == [] and dan.page_errors == []


async def test_on_a_phone_the_room_list_button_shows_unread_elsewhere(
    shared_server: DaphneServer,  # noqa: F811 - the fixture imported above
    new_user: NewUser,
) -> None:
    """Ann reads one room on a phone, the room list folded into ☰ (an empty room says so):
    Ben writes in another room of hers, and ☰ gets a dot (as in the React app); once she has
    opened that room from the drawer, the dot goes."""
    server = shared_server
    ann = await new_user(server, "ann16p", viewport_width=390)
    ben = await new_user(server, "ben16p")
    other = await create_room(ann, server, "unread-phone-other")
    room = await create_room(ann, server, "unread-phone-room")
    await open_room(ann, server, other)
    await expect(ann.page.locator("#empty-room")).to_have_text("No messages yet. Say hello!")  # as in React
    dot = ann.page.locator("#sidebar-open .dot-badge")
    await expect(dot).to_be_hidden()
    await open_room(ben, server, room)
    await expect(ben.page.locator("#empty-room")).to_be_visible()
    await say(ben, "news for ann")
    await expect(ben.page.locator("#empty-room")).to_be_hidden()
    await expect(dot).to_be_visible()
    await ann.page.screenshot(path=str(SCREENSHOTS / "unread-phone-dot.png"))
    await ann.page.locator("#sidebar-open").click()
    await ann.page.locator(f'#sidebar a[data-room-id="{room}"]').click()
    await expect(ann.page.locator("#messages li.msg .text").last).to_have_text("news for ann")
    await expect(ann.page.locator("#empty-room")).to_be_hidden()
    await expect(dot).to_be_hidden()
    assert ann.page_errors == [] and ben.page_errors == []
