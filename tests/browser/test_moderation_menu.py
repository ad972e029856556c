"""A moderator acts from the chat itself, in both UIs (Debian's Chromium): "Hide (moderator)…"
and "Ban user…" in a message's menu, each through an in-page dialog with the reason.

Three people per test: the moderator (a superuser made with `manage.py createsuperuser`),
alice watching (no moderator: the items are not in her menu) and bob, whose message is
hidden and who is then banned. The audit log is read in admin, as a moderator would.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest

from tests.browser.conftest import BrowserUser, NewUser, cookies_for, skip_reason
from tests.browser.test_react_ui import react_build  # noqa: F401 - a fixture
from tests.browser.test_ui_look import ReactUI, TemplateUI, open_room, say
from tests.e2e.test_moderation import Admin
from tests.e2e.test_moderation_browser import server  # noqa: F401 - a fixture: daphne with a superuser, root
from tests.fixtures.servers import DaphneServer

_reason = skip_reason()
pytestmark = [
    pytest.mark.skipif(_reason is not None, reason=_reason or ""),
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(180),
]
if _reason is None:
    from playwright.async_api import Locator, expect

MODERATOR_ITEMS = ("Hide (moderator)…", "Delete (moderator)…", "Ban user…")


# Besides the two UIs' drivers (tests/browser/test_ui_look.py): each menu button's name, and
# where a disabled composer says why.
ACTIONS = {TemplateUI: "Actions for this message from {user}", ReactUI: "Actions for the message from {user}"}
COMPOSER_NOTE = {TemplateUI: "#status-text", ReactUI: "#composer-hint"}


async def pinned(ui: Any, user: BrowserUser, words: str) -> Locator:
    """The line of the stored message saying `words`, found again by its id once its text is gone."""
    found = user.page.locator(f"{ui.lines}[data-message-id]").filter(has_text=words).first
    await expect(found.locator(".text")).to_have_text(words)
    message_id = await found.get_attribute("data-message-id")
    return user.page.locator(f'{ui.lines}[data-message-id="{message_id}"]')


async def as_root(new_user: NewUser, server: DaphneServer) -> BrowserUser:  # noqa: F811 - named as the fixture
    user = await new_user(server, None)
    await user.context.add_cookies(cookies_for(server, server.login("root")))  # type: ignore[arg-type]
    return user


async def open_menu(ui: Any, user: BrowserUser, line: Locator, author: str) -> Locator:
    await line.get_by_role("button", name=ACTIONS[ui].format(user=author)).click()
    menu = user.page.get_by_role("menu", name="Message actions")
    await expect(menu).to_be_visible()
    return menu


@pytest.mark.parametrize("ui", [TemplateUI, ReactUI], ids=lambda ui: ui.name)
async def test_a_moderator_hides_and_bans_from_the_message_menu(
    ui: Any,
    server: DaphneServer,  # noqa: F811 - the fixture imported above
    react_build: Any,  # noqa: F811 - the fixture imported above: /app/ is served from it
    new_user: NewUser,
) -> None:
    """Hide: alice's open page drops the message live. Ban with a reason: bob's composer is disabled and says
    why. Alice's menu never offers either; the audit log has both, by the moderator, with the reasons."""
    room = "general"
    alice, bob = f"alice-{ui.name}", f"bob-{ui.name}"
    moderator = await as_root(new_user, server)
    watcher, author = await new_user(server, alice), await new_user(server, bob)
    for user in (moderator, watcher, author):
        await open_room(user, ui, server, room)

    words = f"buy cheap pills ({ui.name})"
    await say(author, ui, words)
    seen = await pinned(ui, watcher, words)

    # alice is no moderator: the items are not in her menu.
    menu = await open_menu(ui, watcher, seen, bob)
    await expect(menu.get_by_role("menuitem", name="Report…")).to_be_visible()
    for item in MODERATOR_ITEMS:
        await expect(menu.get_by_role("menuitem", name=item)).to_have_count(0)
    await watcher.page.keyboard.press("Escape")

    # The moderator hides it, giving a reason in the page's own dialog.
    line = await pinned(ui, moderator, words)
    authors = await pinned(ui, author, words)
    menu = await open_menu(ui, moderator, line, bob)
    await menu.get_by_role("menuitem", name="Hide (moderator)…").click()
    dialog = moderator.page.get_by_role("dialog", name="Hide this message")
    await expect(dialog).to_contain_text("Everyone sees")
    await dialog.get_by_label("Reason").fill(f"spam-{ui.name}")
    await dialog.get_by_role("button", name="Hide message").click()
    await expect(moderator.page.get_by_text("Message hidden.")).to_be_visible()
    await expect(seen).to_contain_text("Message removed by a moderator")
    await expect(seen).not_to_contain_text(words)
    await expect(authors).to_contain_text("Message removed by a moderator")

    # Then bans bob from his next message, with a reason he is shown.
    again = f"and again ({ui.name})"
    await say(author, ui, again)
    line = await pinned(ui, moderator, again)
    menu = await open_menu(ui, moderator, line, bob)
    await menu.get_by_role("menuitem", name="Ban user…").click()
    dialog = moderator.page.get_by_role("dialog", name=f"Ban {bob}")
    await dialog.get_by_label("Reason").fill(f"threats-{ui.name}")
    await dialog.get_by_label("How long").select_option(label="Until a moderator lifts it")
    await dialog.get_by_role("button", name=f"Ban {bob}").click()
    await expect(moderator.page.get_by_text(f"{bob} is banned until a moderator lifts it.")).to_be_visible()
    await expect(author.page.locator(ui.composer)).to_be_disabled()
    await expect(author.page.locator(COMPOSER_NOTE[ui])).to_contain_text(f"Reason: threats-{ui.name}")

    admin = Admin(server.base_url, server.login("root"))
    for action, reason in (("message_hide", f"spam-{ui.name}"), ("user_ban", f"threats-{ui.name}")):
        page = admin.get(f"/admin/chat/auditlog/?action__exact={action}&q={urllib.parse.quote(reason)}")
        assert reason in page and "root" in page, f"no {action} by root with {reason!r} in the audit log"
    for user in (moderator, watcher, author):
        assert user.dialogs == [], f"{user.name}: window dialogs {user.dialogs}"  # no prompt(), no confirm()
        assert user.page_errors == []
