"""People and rooms in Chromium (issue 15): a room made by name, an invitation that shows up
live in the invitee's sidebar, a removal, direct messages (two people, then three), browsing
and joining, in the template UI; and the same in the React app.

One daphne for the module (the embedded default); each test keeps to its own users and rooms.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import SCREENSHOTS, BrowserUser, NewUser, skip_reason
from tests.browser.test_react_ui import react_build  # noqa: F401 - a fixture
from tests.browser.test_template_ui import shared_server  # noqa: F401 - a fixture
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


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


async def home(user: BrowserUser, server: DaphneServer) -> None:
    await user.page.goto(server.base_url + "/")
    await expect(user.page.locator("#dm-title")).to_be_visible()
    # Creating a room and inviting go over the socket: a dialog sent before it is up says
    # "Not connected: try again in a moment.", as a person would be told.
    await expect(user.page.locator("#status")).to_have_attribute("data-state", "live")


async def say(user: BrowserUser, text: str) -> None:
    box = user.page.locator("#message-input")
    await box.fill(text)
    await box.press("Enter")
    await expect(user.page.locator("#messages li.msg").filter(has_text=text).last).to_have_attribute(
        "data-state", "sent"
    )


async def test_a_private_room_invitation_and_removal_in_the_template_ui(
    shared_server: DaphneServer,  # noqa: F811 - the fixture imported above
    new_user: NewUser,
) -> None:
    """Alice makes a private room by name; she invites Bob, whose sidebar shows it at once;
    they chat; she renames it and his head and sidebar follow; she removes him and the room
    leaves his sidebar for a "Room not available" page."""
    server = shared_server
    alice_name, bob_name = unique("alice"), unique("bob")
    alice = await new_user(server, alice_name)
    bob = await new_user(server, bob_name)
    await home(bob, server)
    await home(alice, server)
    room_name = unique("Book Club ")
    page = alice.page
    await page.get_by_role("button", name="+ New room").click()
    dialog = page.locator("#create-room-dialog")
    await dialog.get_by_label("Name").fill(room_name)
    stem = room_name.lower().replace(" ", "-")
    await expect(dialog.locator("#new-room-id")).to_have_text(f"Its address: #{stem}-…")
    await dialog.get_by_label("Private").check()
    await dialog.get_by_role("button", name="Create room").click()
    await expect(page.locator("#room-name")).to_have_text(room_name)
    await expect(page.locator("#room-id-label")).to_have_text(re.compile(rf"^#{stem}-[a-z0-9]{{6}}$"))
    room_id = (await page.locator("#room-id-label").inner_text()).removeprefix("#")
    await expect(page.locator("#status")).to_have_attribute("data-state", "live")
    await expect(page.locator(f'#room-links a[data-room-id="{room_id}"]')).to_have_attribute("data-kind", "private")

    # The same name again is refused in the dialog, never opened.
    await page.get_by_role("button", name="+ New room").click()
    await dialog.get_by_label("Name").fill(room_name.upper())
    await dialog.get_by_role("button", name="Create room").click()
    await expect(dialog.locator("#create-room-error")).to_have_text("A room of that name exists already.")
    await dialog.get_by_role("button", name="Cancel").click()

    await page.get_by_role("button", name="Members").click()
    members = page.locator("#members-dialog")
    await expect(members.locator("#members-list li")).to_have_count(1)
    await members.get_by_placeholder("Invite by username").fill("nobody-" + bob_name)
    await members.get_by_role("button", name="Invite").click()
    await expect(members.locator("#members-error")).to_have_text("There is no user of that name.")
    await members.get_by_placeholder("Invite by username").fill(bob_name)
    await members.get_by_role("button", name="Invite").click()
    await expect(members.locator("#members-list li")).to_have_count(2)
    # Bob's page is open: the member list shows him online (chat.presence).
    await expect(members.locator(f'#members-list li:has-text("{bob_name}")')).to_contain_text("online")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / "people-members.png"))

    # Bob's sidebar shows the room live, without a reload.
    link = bob.page.locator(f'#room-links a[data-room-id="{room_id}"]')
    await expect(link.locator(".room-link-name")).to_have_text(room_name)
    await bob.page.screenshot(path=str(SCREENSHOTS / "people-invited.png"))
    await link.click()
    await expect(bob.page.locator("#status")).to_have_attribute("data-state", "live")
    await members.get_by_role("button", name="Close").click()
    await say(alice, "welcome bob")
    await expect(bob.page.locator("#messages li.msg").filter(has_text="welcome bob")).to_have_count(1)

    await page.get_by_role("button", name="Members").click()
    # Alice renames it: her form and the dialog's line follow the room, Bob's head and sidebar too.
    settings = members.locator("#room-settings-form")
    await expect(settings.get_by_label("Name")).to_have_value(room_name)
    new_name = unique("Reading Group ")
    await settings.get_by_label("Name").fill(new_name)
    await settings.get_by_role("button", name="Save room settings").click()
    await expect(members.locator("#members-room")).to_have_text(f"{new_name} · #{room_id} · private")
    await expect(settings.get_by_label("Name")).to_have_value(new_name)
    await expect(bob.page.locator("#room-name")).to_have_text(new_name)
    await expect(link.locator(".room-link-name")).to_have_text(new_name)

    # Alice makes Bob an owner, then a member again, while his Members dialog is open: the
    # owners' forms and buttons appear and go on his side without reopening it.
    bob_members = bob.page.locator("#members-dialog")
    await bob.page.get_by_role("button", name="Members").click()
    await expect(bob_members.locator("#members-list li")).to_have_count(2)
    await expect(bob_members.locator("#room-settings-form")).to_be_hidden()
    await members.get_by_role("button", name="Make owner").click()
    await expect(bob_members.locator("#room-settings-form")).to_be_visible()
    await expect(bob_members.locator("#invite-form")).to_be_visible()
    await expect(bob_members.get_by_role("button", name=f"Remove {alice_name}")).to_be_visible()
    await members.get_by_role("button", name="Make member").click()
    await expect(bob_members.locator("#room-settings-form")).to_be_hidden()
    await expect(bob_members.locator("#invite-form")).to_be_hidden()
    await expect(bob_members.get_by_role("button", name=f"Remove {alice_name}")).to_have_count(0)
    await bob_members.get_by_role("button", name="Close").click()

    await members.get_by_role("button", name=f"Remove {bob_name}").click()
    await expect(members.locator("#members-list li")).to_have_count(1)
    await expect(link).to_have_count(0)
    # Bob's room gives way to the page the React app shows (core/people.js roomGoneText).
    await expect(bob.page.get_by_test_id("room-gone")).to_contain_text("You are no longer a member of this room")
    await expect(bob.page.locator("#notice")).to_be_hidden()
    await expect(bob.page.locator("#messages li.msg").filter(has_text="welcome bob")).to_be_hidden()
    assert alice.page_errors == [] and bob.page_errors == []


async def test_direct_messages_two_then_three_people_in_the_template_ui(
    shared_server: DaphneServer,  # noqa: F811 - the fixture imported above
    new_user: NewUser,
) -> None:
    """Bob starts a DM with Alice by username: it appears in her Direct messages at once and
    they talk; then a group DM of three shows up for all three."""
    server = shared_server
    names = [unique("ann"), unique("ben"), unique("cat")]
    ann, ben, cat = [await new_user(server, name) for name in names]
    for user in (ann, ben, cat):
        await home(user, server)
    page = ben.page
    await page.get_by_role("button", name="+ New message").click()
    await page.locator("#direct-usernames").fill(names[0])
    await page.locator("#direct-dialog").get_by_role("button", name="Open").click()
    await expect(page.locator("#room-name")).to_have_text(names[0])
    await expect(page.locator("#status")).to_have_attribute("data-state", "live")
    dm = ann.page.locator("#dm-links a").filter(has_text=names[1])
    await expect(dm).to_have_count(1)
    await say(ben, "psst")
    await dm.click()
    await expect(ann.page.locator("#messages li.msg").filter(has_text="psst")).to_have_count(1)

    await page.get_by_role("button", name="+ New message").click()
    await page.locator("#direct-usernames").fill(f"{names[0]}, {names[2]}")
    await page.locator("#direct-dialog").get_by_role("button", name="Open").click()
    group_name = ", ".join(sorted([names[0], names[2]]))
    await expect(page.locator("#room-name")).to_have_text(group_name)
    await expect(page.locator("#dm-links a")).to_have_count(2)
    await expect(cat.page.locator("#dm-links a").filter(has_text=names[1])).to_have_count(1)
    await expect(ann.page.locator("#dm-links a")).to_have_count(2)
    await page.screenshot(path=str(SCREENSHOTS / "people-dms.png"))
    assert ann.page_errors == [] and ben.page_errors == [] and cat.page_errors == []


async def test_browse_join_mute_and_leave_in_the_template_ui(
    shared_server: DaphneServer,  # noqa: F811 - the fixture imported above
    new_user: NewUser,
) -> None:
    """Dora browses public rooms and joins one; she mutes it and then leaves it."""
    server = shared_server
    eve = await new_user(server, unique("eve"))
    dora = await new_user(server, unique("dora"))
    await home(eve, server)
    room_name = unique("Garden ")
    await eve.page.get_by_role("button", name="+ New room").click()
    await eve.page.locator("#create-room-dialog").get_by_label("Name").fill(room_name)
    await eve.page.locator("#create-room-dialog").get_by_role("button", name="Create room").click()
    await expect(eve.page.locator("#room-name")).to_have_text(room_name)

    await home(dora, server)
    page = dora.page
    await page.get_by_role("button", name="Browse rooms").click()
    browse = page.locator("#browse-dialog")
    await browse.get_by_placeholder("Search public rooms").fill(room_name)
    row = browse.locator("#browse-list li").filter(has_text=room_name)
    await expect(row).to_have_count(1)
    await row.get_by_role("button", name="Join").click()
    await expect(page.locator("#room-name")).to_have_text(room_name)
    link = page.locator("#room-links a").filter(has_text=room_name)
    await expect(link).to_have_attribute("data-member", "true")
    await page.get_by_role("button", name="Members").click()
    members = page.locator("#members-dialog")
    await members.get_by_role("button", name="Mute room").click()
    await expect(link).to_have_attribute("data-muted", "true")
    await members.get_by_role("button", name="Leave room").click()
    await expect(members).to_be_hidden()
    await expect(link).not_to_have_attribute("data-member", "true")
    assert dora.page_errors == [] and eve.page_errors == []


# --- the React app ----------------------------------------------------------------------------


async def open_app(user: BrowserUser, server: DaphneServer, room_id: str = "general") -> None:
    await user.page.goto(f"{server.base_url}/app/#/rooms/{room_id}")
    await expect(user.page.locator(".connection")).to_have_attribute("data-state", "live")


async def app_say(user: BrowserUser, text: str) -> None:
    box = user.page.locator("#composer-text")
    await box.fill(text)
    await box.press("Enter")


def app_shown(user: BrowserUser, text: str) -> Locator:
    return user.page.locator(".message-list li.message[data-seq] .text").filter(has_text=text)


async def start_private_room_in_app(user: BrowserUser, server: DaphneServer, room_name: str) -> str:
    """Start a private room by name in the React app (its address previewed first: the name's
    slug and a tail the server draws), which opens it; the room's id."""
    page = user.page
    stem = room_name.lower().replace(" ", "-")
    await page.get_by_role("button", name="+ New room").click()
    dialog = page.locator("#create-room-dialog")
    await dialog.get_by_label("Name").fill(room_name)
    await expect(dialog.get_by_text(f"Its address: #{stem}-…")).to_be_visible()
    await dialog.get_by_label("Private").check()
    await dialog.get_by_role("button", name="Create room").click()
    await expect(page).to_have_url(re.compile(rf"{re.escape(server.base_url)}/app/#/rooms/{stem}-[a-z0-9]{{6}}$"))
    await expect(page.get_by_role("heading", name=room_name)).to_be_visible()
    return page.url.rsplit("/", 1)[1]


async def test_people_and_rooms_in_the_react_app(
    react_build: Path,  # noqa: F811 - the fixture imported above
    shared_server: DaphneServer,  # noqa: F811 - the fixture imported above
    new_user: NewUser,
) -> None:
    """In the React app: a private room started by name, an invitation that shows up live in
    the invitee's list, a removal, and a DM of two then three people, each live for the others."""
    server = shared_server
    names = [unique("ria"), unique("sam"), unique("tia")]
    ria, sam, tia = [await new_user(server, name) for name in names]
    for user in (ria, sam, tia):
        await open_app(user, server)
    page = ria.page
    room_name = unique("Plans ")
    await start_private_room_in_app(ria, server, room_name)
    await page.get_by_role("button", name="+ New room").click()
    dialog = page.locator("#create-room-dialog")
    await dialog.get_by_label("Name").fill(room_name.upper())  # the same name again: refused
    await dialog.get_by_role("button", name="Create room").click()
    # Said once, in the dialog: not again as a notice over the room.
    await expect(page.get_by_text("A room of that name exists already.")).to_have_count(1)
    await expect(dialog.get_by_role("alert")).to_have_text("A room of that name exists already.")
    await expect(page.locator(".main-pane .notice")).to_have_count(0)
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_have_count(0)

    await page.get_by_role("button", name="Members").click()
    members = page.locator("#members-dialog")
    await members.get_by_placeholder("Invite by username").fill(names[1])
    await members.get_by_role("button", name="Invite", exact=True).click()
    panel = members.locator("#members-list li")
    await expect(panel).to_have_count(2)
    link = sam.page.get_by_role("navigation", name="Rooms").get_by_role("link", name=room_name)
    await expect(link).to_be_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / "people-react-members.png"))
    await link.click()
    await expect(sam.page.locator(".connection")).to_have_attribute("data-state", "live")
    await members.get_by_role("button", name="Close").click()
    await expect(members).to_have_count(0)
    await app_say(ria, "hello sam")
    await expect(app_shown(sam, "hello sam")).to_have_count(1)
    await page.get_by_role("button", name="Members").click()
    await members.get_by_role("button", name=f"Remove {names[1]}").click()
    await expect(panel).to_have_count(1)
    await expect(link).to_have_count(0)
    await page.keyboard.press("Escape")  # Esc closes the dialog, as in the template UI
    await expect(members).to_have_count(0)

    # A DM from sam to ria, then a group DM of three.
    await sam.page.get_by_role("button", name="+ New message").click()
    direct = sam.page.locator("#direct-dialog")
    await direct.get_by_label("To (usernames").fill(names[0])
    await direct.get_by_role("button", name="Open").click()
    await expect(direct).to_have_count(0)
    await expect(sam.page.get_by_role("heading", name=names[0])).to_be_visible()
    await app_say(sam, "dm hello")
    dm_link = page.locator(".directs a").filter(has_text=names[1])
    await expect(dm_link).to_have_count(1)
    await dm_link.click()
    await expect(app_shown(ria, "dm hello")).to_have_count(1)
    await sam.page.get_by_role("button", name="+ New message").click()
    await direct.get_by_label("To (usernames").fill(f"{names[0]}, {names[2]}")
    await direct.get_by_role("button", name="Open").click()
    await expect(tia.page.locator(".directs a").filter(has_text=names[1])).to_have_count(1)
    await expect(page.locator(".directs a")).to_have_count(2)
    await sam.page.screenshot(path=str(SCREENSHOTS / "people-react-dms.png"))
    for user in (ria, sam, tia):
        assert user.page_errors == [], user.page_errors


async def test_an_owner_manages_a_room_in_the_react_app_and_both_uis_follow_live(
    react_build: Path,  # noqa: F811 - the fixture imported above
    shared_server: DaphneServer,  # noqa: F811 - the fixture imported above
    new_user: NewUser,
) -> None:
    """In the React app's Members dialog an owner renames a private room, gives it a topic and
    makes it public, with the template's fields and words; a blank name is refused once, in the
    dialog. A member with the room open in React and one in the template see the new name in
    their sidebar and head at once. A member who is no owner, and a DM, have no such form."""
    server = shared_server
    names = [unique("uma"), unique("vic"), unique("wes")]
    uma, vic, wes = [await new_user(server, name) for name in names]
    for user in (uma, vic):
        await open_app(user, server)
    await home(wes, server)
    page = uma.page
    room_name = unique("Attic ")
    room_id = await start_private_room_in_app(uma, server, room_name)
    await page.get_by_role("button", name="Members").click()
    members = page.locator("#members-dialog")
    for name in names[1:]:
        await members.get_by_placeholder("Invite by username").fill(name)
        await members.get_by_role("button", name="Invite", exact=True).click()
        await expect(members.locator("#members-list li").filter(has_text=name)).to_have_count(1)
    await open_app(vic, server, room_id)
    await wes.page.goto(f"{server.base_url}/rooms/{room_id}/")
    await expect(wes.page.locator("#status")).to_have_attribute("data-state", "live")
    await expect(wes.page.locator("#room-state")).to_have_text("Private room: members only.")

    form = members.locator("#room-settings-form")
    await expect(form.get_by_label("Name")).to_have_value(room_name)
    await expect(form.get_by_label("Topic")).to_have_value("")
    await expect(form.get_by_label("Private")).to_be_checked()
    # A blank name: said once, in the dialog, not again as a notice over the room.
    await form.get_by_label("Name").fill("   ")
    await form.get_by_role("button", name="Save room settings").click()
    await expect(members.get_by_role("alert")).to_have_text("Give the room a name.")
    await expect(page.get_by_text("Give the room a name.")).to_have_count(1)
    await expect(page.locator(".main-pane .notice")).to_have_count(0)

    new_name = unique("Loft ")
    await form.get_by_label("Name").fill(new_name)
    await form.get_by_label("Topic").fill("Boxes and old chairs")
    await form.get_by_label("Private").uncheck()
    await form.get_by_role("button", name="Save room settings").click()
    room_line = f"{new_name} · #{room_id} · public · Boxes and old chairs"
    await expect(members.locator("#members-room")).to_have_text(room_line)
    await expect(members.get_by_role("alert")).to_have_count(0)
    await expect(form.get_by_label("Name")).to_have_value(new_name)
    await expect(form.get_by_label("Private")).not_to_be_checked()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / "people-react-room-settings.png"))
    await expect(page.locator("#room-title")).to_contain_text(new_name)

    # The others' heads and sidebars, live: a React member and a template member.
    await expect(vic.page.locator("#room-title")).to_contain_text(new_name)
    vic_link = vic.page.locator(f'.room-links a[data-room-id="{room_id}"]')
    await expect(vic_link).to_have_text(new_name)
    await expect(vic.page.get_by_text("Private room: members only.")).to_have_count(0)
    await expect(wes.page.locator("#room-name")).to_have_text(new_name)
    wes_link = wes.page.locator(f'#room-links a[data-room-id="{room_id}"]')
    await expect(wes_link.locator(".room-link-name")).to_have_text(new_name)
    await expect(wes_link).to_have_attribute("data-kind", "public")
    await expect(wes.page.locator("#room-state")).to_be_hidden()
    await vic.page.screenshot(path=str(SCREENSHOTS / "people-react-renamed-member.png"))
    await wes.page.screenshot(path=str(SCREENSHOTS / "people-template-renamed-member.png"))

    # A member who is no owner sees the members, not the form, in either UI.
    await vic.page.get_by_role("button", name="Members").click()
    await expect(vic.page.locator("#members-list li")).to_have_count(3)
    await expect(vic.page.locator("#room-settings-form")).to_have_count(0)
    await wes.page.get_by_role("button", name="Members").click()
    await expect(wes.page.locator("#members-list li")).to_have_count(3)
    await expect(wes.page.locator("#room-settings-form")).to_be_hidden()
    await expect(wes.page.locator("#invite-form")).to_be_hidden()

    # A DM keeps its name: no form there either.
    await members.get_by_role("button", name="Close").click()
    await page.get_by_role("button", name="+ New message").click()
    direct = page.locator("#direct-dialog")
    await direct.get_by_label("To (usernames").fill(names[1])
    await direct.get_by_role("button", name="Open").click()
    await expect(page.get_by_role("heading", name=names[1])).to_be_visible()
    await page.get_by_role("button", name="Members").click()
    await expect(members.locator("#members-list li")).to_have_count(2)
    await expect(members.locator("#room-settings-form")).to_have_count(0)
    for user in (uma, vic, wes):
        assert user.page_errors == [], user.page_errors
