"""Both UIs are one product (issue 20): a user moving from `/` to `/app/` meets the same room
list (issue 15's rule, shared by the two through static/chat/core/people.js). One user with
public rooms they made, a public room someone else made, a private room and a DM: the two
sidebars list the same rooms, in the same order, in both of their sections.

A daphne of its own (the module's), so no other test's rooms are in the lists.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import SCREENSHOTS, BrowserUser, NewUser, skip_reason
from tests.browser.test_react_ui import open_app, react_build  # noqa: F401 - a fixture
from tests.browser.test_template_ui import create_room, open_room, shared_server  # noqa: F401 - a fixture
from tests.fixtures.servers import DaphneServer

_reason = skip_reason()
pytestmark = [
    pytest.mark.skipif(_reason is not None, reason=_reason or ""),
    pytest.mark.asyncio(loop_scope="module"),
]
if _reason is None:
    from playwright.async_api import expect
if TYPE_CHECKING:
    from playwright.async_api import Locator

TEMPLATE = {"rooms": "#room-links a[data-room-id]", "directs": "#dm-links a[data-room-id]"}
REACT = {"rooms": ".room-links a[data-room-id]", "directs": ".directs a[data-kind='direct']"}
COMPOSER = {"template": "#message-input", "react": "#composer-text"}
STATUS = {"template": "#status", "react": ".connection"}


async def sidebar(user: BrowserUser, selectors: dict[str, str]) -> dict[str, list[str]]:
    """Each section's room ids, top to bottom (React's DM links carry their id in the href)."""
    found: dict[str, list[str]] = {}
    for section, selector in selectors.items():
        found[section] = await user.page.locator(selector).evaluate_all(
            "links => links.map((a) => a.dataset.roomId || a.getAttribute('href').split('/').pop())"
        )
    return found


async def settled(user: BrowserUser, selectors: dict[str, str], wanted: set[str]) -> dict[str, list[str]]:
    """The sidebar once every room in `wanted` is in it (the live list arrives after the page)."""
    seen: dict[str, list[str]] = {}
    for _ in range(100):  # bounded: 20 s
        seen = await sidebar(user, selectors)
        if wanted <= set(seen["rooms"]) | set(seen["directs"]):
            await asyncio.sleep(0.5)  # and no later reordering
            return await sidebar(user, selectors)
        await asyncio.sleep(0.2)
    raise AssertionError(f"the sidebar never listed {sorted(wanted)}: {seen}")


async def test_both_uis_list_the_same_rooms_in_the_same_order(
    shared_server: DaphneServer,  # noqa: F811 - the fixture imported above
    new_user: NewUser,
) -> None:
    """Two public rooms the user made (the older one active last), a private one, a DM, and
    a public room someone else made: the template's sidebar and the React app's list the
    same rooms in the same order, general after the user's rooms, the unjoined room in neither."""
    server = shared_server
    me = await new_user(server, "same-me")
    other = await new_user(server, "same-other")
    unjoined = await create_room(other, server, "Someone else's room")
    first = await create_room(me, server, "Older room")
    private = await create_room(me, server, "Quiet room", private=True)
    latest = await create_room(me, server, "Busy room")
    # A message in the oldest of them makes it the most recently active.
    await open_room(me, server, first)
    await me.page.locator("#message-input").fill("hello again")
    await me.page.locator("#message-input").press("Enter")
    await expect(me.page.locator("#messages li.msg").filter(has_text="hello again")).to_have_attribute(
        "data-state", "sent"
    )
    await me.page.get_by_role("button", name="+ New message").click()
    await me.page.locator("#direct-usernames").fill("same-other")
    await me.page.locator("#direct-dialog").get_by_role("button", name="Open").click()
    await expect(me.page.locator("#room-name")).to_have_text("same-other")
    direct = me.page.url.rstrip("/").rsplit("/", 1)[1]
    wanted = {first, private, latest, direct}

    await open_room(me, server, "general")
    template = await settled(me, TEMPLATE, wanted)
    await open_app(me, server, "general")
    react = await settled(me, REACT, wanted)

    assert template["directs"] == [direct]
    assert template["rooms"].index(first) < template["rooms"].index(latest) < template["rooms"].index(private)
    assert "general" in template["rooms"]
    assert react == template, f"template {template} != React {react}"
    # Issue 15's rule: a public room the user has not joined is found through "Browse rooms".
    assert unjoined not in template["rooms"]
    assert me.page_errors == [] and other.page_errors == []


async def members_dialog(owner: BrowserUser, server: DaphneServer, room_id: str) -> Locator:
    """The owner's member dialog of the room, open (the template UI)."""
    await open_room(owner, server, room_id)
    await owner.page.get_by_role("button", name="Members").click()
    return owner.page.locator("#members-dialog")


async def test_both_uis_drop_a_private_room_when_its_open_reader_is_removed(
    react_build: Path,  # noqa: F811 - the fixture imported above
    shared_server: DaphneServer,  # noqa: F811 - the fixture imported above
    new_user: NewUser,
) -> None:
    """A member has a private room open when its owner removes them: the room's link leaves
    their sidebar at once, and the room gives way to the same "Room not available" page with a
    way back to general, in the template UI and in the React app alike (keepsLink and
    roomGoneText, the rules in static/chat/core/people.js)."""
    server = shared_server
    owner = await new_user(server, "drop-owner")
    me = await new_user(server, "drop-me")
    private = await create_room(owner, server, "Drop private", private=True)
    link = {
        "template": me.page.locator(f'#room-links a[data-room-id="{private}"]'),
        "react": me.page.locator(f'.room-links a[data-room-id="{private}"]'),
    }
    pages: dict[str, str] = {}
    for ui in ("template", "react"):
        members = await members_dialog(owner, server, private)
        await members.get_by_placeholder("Invite by username").fill("drop-me")
        await members.get_by_role("button", name="Invite").click()
        await expect(members.locator("#members-list li")).to_have_count(2)
        if ui == "template":
            await open_room(me, server, private)
        else:
            await open_app(me, server, private)
        await expect(link[ui]).to_have_count(1)  # a member: listed, and open
        await expect(me.page.locator(".messages-pane")).to_be_visible()
        await me.page.locator(COMPOSER[ui]).focus()  # typing when the removal lands
        await members.get_by_role("button", name="Remove drop-me").click()
        await expect(members.locator("#members-list li")).to_have_count(1)
        await expect(link[ui]).to_have_count(0)
        gone = me.page.get_by_test_id("room-gone")
        await expect(gone).to_contain_text("You are no longer a member of this room: it is private, members only.")
        await expect(me.page.locator("#room-title")).to_have_text("Room not available")
        await expect(me.page.locator(COMPOSER[ui])).to_be_hidden()
        await expect(me.page.locator(".messages-pane")).to_be_hidden()
        await expect(me.page.get_by_text("Private room: members only.")).to_be_hidden()
        await expect(me.page.get_by_role("button", name="Members")).to_have_count(0)
        # The composer went with the room: focus goes to the page's way out, not to the body.
        await expect(gone.get_by_role("link", name="Go to #general")).to_be_focused()
        pages[ui] = await gone.inner_text()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await me.page.screenshot(path=str(SCREENSHOTS / f"sidebar-removed-{ui}.png"))
        await gone.get_by_role("link", name="Go to #general").click()
        await expect(gone).to_have_count(0)
        await expect(me.page.locator("#room-title")).to_contain_text("#general")
        await expect(me.page.locator(COMPOSER[ui])).to_be_editable()
        await expect(me.page.locator(STATUS[ui])).to_have_attribute("data-state", "live")
    assert pages["template"] == pages["react"], pages
    assert me.page_errors == [] and owner.page_errors == []
