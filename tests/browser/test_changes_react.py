"""The React app's message changes in Chromium, two users: Markdown formatting (and the XSS
corpus through it), edit, delete, reactions, reply with its quote and thread, each started
from the message's menu (the template UI's items), which the keyboard reaches and Esc closes."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.conftest import SCREENSHOTS, BrowserUser, NewUser, skip_reason
from tests.browser.test_changes_template import INJECTED, MARKDOWN_XSS
from tests.browser.test_react_ui import (  # noqa: F401 - fixtures
    XSS_PAYLOADS,
    DaphneFactory,
    app_server,
    open_app,
    react_build,
    say,
)

_reason = skip_reason()
pytestmark = [
    pytest.mark.skipif(_reason is not None, reason=_reason or ""),
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(180),
]
if _reason is None:
    from playwright.async_api import expect


def row(user: BrowserUser, text: str):  # type: ignore[no-untyped-def]
    return user.page.locator(".message-list li.message[data-seq]").filter(has_text=text).first


async def menu(user: BrowserUser, text: str, item: str) -> None:
    """Open the line's menu (its ⋯ button) and take `item`: the tools are menu items, not buttons on the line."""
    line = row(user, text)
    await line.hover()
    await line.locator(".msg-menu-button").click()
    await user.page.get_by_role("menu", name="Message actions").get_by_role("menuitem", name=item, exact=True).click()


async def test_formatting_edit_react_reply_and_delete_between_two_users(
    app_server: DaphneFactory,  # noqa: F811
    new_user: NewUser,
) -> None:
    """Alice formats, edits and deletes; Bob reacts and replies; each sees the other's change live."""
    server = app_server()
    alice = await new_user(server, "alice")
    bob = await new_user(server, "bob")
    await open_app(alice, server)
    await open_app(bob, server)

    await say(alice, "**bold** _it_ ~~old~~ `code` see www.example.com")
    first = row(bob, "see www.example.com")
    await expect(first.locator(".text strong")).to_have_text("bold")
    await expect(first.locator(".text s")).to_have_text("old")
    await expect(first.locator(".text code")).to_have_text("code")
    link = first.locator(".text a")
    await expect(link).to_have_attribute("href", "https://www.example.com/")
    await expect(link).to_have_attribute("rel", re.compile(r"^noopener noreferrer\b"))

    assert await first.get_by_role("button", name="Reply").count() == 0  # no tools on the line
    await menu(bob, "see www.example.com", "React…")
    await first.locator(".reaction-picker").get_by_role("button", name="👍").click()
    chip = row(alice, "see www.example.com").locator(".reaction")
    await expect(chip).to_have_text("👍 1")
    await chip.click()
    await expect(row(bob, "see www.example.com").locator(".reaction")).to_have_text("👍 2")

    await menu(alice, "see www.example.com", "Edit")
    editor = alice.page.locator(".edit-input")
    await editor.fill("**bold** and fixed")
    await editor.press("Enter")
    edited = row(bob, "and fixed")
    await expect(edited.locator(".edited")).to_have_text(" (edited)")

    await menu(bob, "and fixed", "Reply")
    await expect(bob.page.get_by_test_id("reply-bar")).to_be_visible()
    await say(bob, "count me in")
    reply = row(alice, "count me in")
    await expect(reply.locator(".reply-quote")).to_contain_text("alice: **bold** and fixed")
    await expect(row(alice, "and fixed").locator(".replies-link")).to_have_text("1 reply")
    await row(alice, "and fixed").locator(".replies-link").click()
    await expect(alice.page.locator(".thread-panel .thread-list li")).to_have_count(2)
    await alice.page.screenshot(path=str(SCREENSHOTS / "changes-react-thread.png"))
    await reply.locator(".reply-quote").click()
    await expect(row(alice, "and fixed")).to_be_focused()

    await menu(alice, "and fixed", "Delete")
    await row(alice, "and fixed").get_by_role("button", name="Delete message").click()
    await expect(bob.page.locator(".message-list li.message.removed .text")).to_have_text("Message deleted")
    await bob.page.reload()
    await expect(row(bob, "count me in").locator(".reply-quote")).to_contain_text("Message removed")
    assert alice.page_errors == [] and bob.page_errors == []


async def test_the_xss_corpus_through_markdown_stays_text(
    app_server: DaphneFactory,  # noqa: F811
    new_user: NewUser,
) -> None:
    """Every payload, plain or wrapped in Markdown, arrives with no element, handler or script of its own."""
    server = app_server()
    alice = await new_user(server, "alice")
    bob = await new_user(server, "bob")
    await open_app(alice, server)
    await open_app(bob, server)
    for payload in [*XSS_PAYLOADS, *MARKDOWN_XSS]:
        await say(alice, payload)
    await expect(bob.page.locator(".message-list li.message[data-seq]")).to_have_count(
        len(XSS_PAYLOADS) + len(MARKDOWN_XSS)
    )
    messages = bob.page.locator(".message-list")
    assert await messages.locator(INJECTED).count() == 0
    hrefs = await messages.locator("a[href]").evaluate_all("els => els.map(e => e.getAttribute('href'))")
    assert all(h.startswith(("http://", "https://")) for h in hrefs), hrefs
    assert await bob.page.evaluate("window.__xss") is None
    assert bob.dialogs == [] and bob.page_errors == []


async def choose(page: Any, *keys: str, expect_focused: str) -> None:
    """On a focused line: Enter opens its menu, `keys` move to the item, Enter runs it."""
    await page.keyboard.press("Enter")
    for key in keys:
        await page.keyboard.press(key)
    await expect(page.get_by_role("menuitem", name=expect_focused, exact=True)).to_be_focused()
    await page.keyboard.press("Enter")


async def escape_back_to(line: Any, opened: Any) -> None:
    """Esc closes what a menu item opened under the line, and focus is back on the line."""
    await line.page.keyboard.press("Escape")
    await expect(opened).to_have_count(0)
    await expect(line).to_be_focused()


async def test_the_message_menu_is_reached_by_keyboard_and_esc_closes_what_it_opened(
    app_server: DaphneFactory,  # noqa: F811
    new_user: NewUser,
) -> None:
    """On a focused line Enter opens the menu (Reply, React…, Edit, Delete on one's own, no loose
    buttons); arrows and Enter choose; Esc closes the menu, the editor and the picker."""
    server = app_server()
    alice = await new_user(server, "alice")
    await open_app(alice, server)
    await say(alice, "keyboard me")
    line = row(alice, "keyboard me")
    await expect(line).to_have_attribute("data-status", "sent")
    assert await line.locator(".tools").count() == 0
    page = alice.page
    await line.focus()
    await page.keyboard.press("Enter")
    items = page.get_by_role("menu").get_by_role("menuitem")
    await expect(items).to_have_text(["Reply", "React…", "Edit", "Delete"])
    await expect(items.first).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(page.get_by_role("menu")).to_have_count(0)
    await expect(line.locator(".msg-menu-button")).to_be_focused()

    await line.focus()
    await choose(page, "ArrowDown", "ArrowDown", expect_focused="Edit")
    editor = line.locator(".edit-input")
    await expect(editor).to_be_focused()
    await page.keyboard.press("ArrowUp")  # the editor's own key, not the list's
    await escape_back_to(line, editor)

    await choose(page, "ArrowDown", expect_focused="React…")
    picker = line.locator(".reaction-picker")
    await expect(picker.get_by_role("button").first).to_be_focused()
    await escape_back_to(line, picker)
    await choose(page, "End", expect_focused="Delete")
    await expect(line.get_by_role("button", name="Delete message")).to_be_focused()
    message_id = await line.get_attribute("data-message-id")
    await page.keyboard.press("Enter")
    await expect(page.locator(f'li[data-message-id="{message_id}"] .text')).to_have_text("Message deleted")
    assert alice.page_errors == []
