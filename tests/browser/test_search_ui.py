"""Search in both UIs (issue 19), in Chromium against a real daphne: type in the search box,
see the matching words marked, click a result, and land in its room at that message, loaded
from history (the server's first page holds only the newest messages), marked in context.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.browser.conftest import SCREENSHOTS, BrowserUser, NewUser, skip_reason
from tests.browser.test_react_ui import react_build  # noqa: F401 - a fixture
from tests.browser.test_template_ui import create_room
from tests.fixtures.servers import DaphneServer

_reason = skip_reason()
pytestmark = [
    pytest.mark.skipif(_reason is not None, reason=_reason or ""),
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(180),
]
if _reason is None:
    from playwright.async_api import expect

DaphneFactory = Callable[..., DaphneServer]
FILLER = [f"filler message {n}" for n in range(1, 9)]


async def say_template(user: BrowserUser, text: str) -> None:
    box = user.page.locator("#message-input")
    await box.fill(text)
    await box.press("Enter")
    await expect(user.page.locator("#messages li.msg").filter(has_text=text).last).to_have_attribute(
        "data-state", "sent"
    )


async def test_template_ui_searches_and_opens_a_result_in_context(
    daphne_factory: DaphneFactory, new_user: NewUser
) -> None:
    """A word typed in the sidebar's box lists the message with the word marked; a click
    opens its room (from another room) at that message, loaded from history and marked."""
    server = daphne_factory(CHAT_HISTORY_PAGE="4")
    ann = await new_user(server, "ann")
    haystack = await create_room(ann, server, "haystack")
    await say_template(ann, "the Needle is in here, café included")
    for text in FILLER:
        await say_template(ann, text)
    await create_room(ann, server, "elsewhere")
    page = ann.page
    await expect(page.locator("#messages li.msg")).to_have_count(0)

    box = page.get_by_role("searchbox", name="Search messages")
    await box.fill("needl")
    results = page.get_by_role("list", name="Search results")
    result = results.get_by_role("button").filter(has_text="is in here")
    await expect(result).to_have_count(1)
    await expect(result.locator("mark")).to_have_text(["Needle"])
    await expect(result).to_contain_text("#haystack")  # the room's name
    await page.screenshot(path=str(SCREENSHOTS / "search-template-results.png"))

    await result.click()
    await expect(page).to_have_url(f"{server.base_url}/rooms/{haystack}/")
    found = page.locator("#messages li.msg.found")
    await expect(found).to_contain_text("the Needle is in here")
    await expect(found).to_be_in_viewport()
    await expect(page.locator("#messages li.msg .text").last).to_have_text(FILLER[-1])
    await page.screenshot(path=str(SCREENSHOTS / "search-template-opened.png"))

    await box.fill("cafe")  # accents folded
    await expect(results.get_by_role("button")).to_have_count(1)
    await box.fill('colour:red "open')
    await expect(page.locator("#search-status")).to_have_text("a quote is not closed")
    await box.fill("zzzqqq")
    await expect(page.locator("#search-status")).to_have_text("No messages found.")
    assert ann.page_errors == [] and ann.dialogs == []


async def test_react_ui_searches_and_opens_a_result_in_context(
    react_build: Path,  # noqa: F811 - the fixture imported above
    daphne_factory: DaphneFactory,
    new_user: NewUser,
) -> None:
    """The React app's search box does the same: marked words, a click opens the room at the
    message, loaded from history and marked."""
    server = daphne_factory(CHAT_HISTORY_PAGE="4")
    bea = await new_user(server, "bea")
    page = bea.page
    await page.goto(f"{server.base_url}/app/#/rooms/general")
    await expect(page.locator(".connection")).to_have_attribute("data-state", "live")
    box = page.locator("#composer-text")
    for text in ["where is the Roadmap doc?", *FILLER]:
        await box.fill(text)
        await box.press("Enter")
        await expect(
            page.locator(".message-list li.message.own").filter(has=page.get_by_text(text, exact=True))
        ).to_have_attribute("data-status", "sent")
    await page.reload()  # the server's first page: the newest four messages only
    await expect(page.locator(".connection")).to_have_attribute("data-state", "live")
    await expect(page.locator(".message-list li.message[data-seq] .text")).to_have_text(FILLER[-4:])

    search = page.get_by_role("searchbox", name="Search messages")
    await search.fill("roadm")
    result = page.get_by_role("list", name="Search results").get_by_role("button")
    await expect(result).to_have_count(1)
    await expect(result.locator("mark")).to_have_text(["Roadmap"])
    await result.click()
    await expect(page).to_have_url(f"{server.base_url}/app/#/rooms/general")
    found = page.locator('.message-list[data-room="general"] li.message.found')
    await expect(found).to_contain_text("where is the Roadmap doc?")
    await expect(found).to_be_in_viewport()
    await page.screenshot(path=str(SCREENSHOTS / "search-react-opened.png"))
    await search.fill("before:someday")
    await expect(page.locator(".search-status")).to_have_text("before: takes a date as YYYY-MM-DD")
    assert bea.page_errors == [] and bea.dialogs == []
