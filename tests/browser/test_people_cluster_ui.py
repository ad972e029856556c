"""People and presence in Chromium on the production shape (issue 15): DynamoDB (moto), Redis,
and two daphne processes, each user's page on one of them.

Alice (process one) makes a private room and invites Bob and Carol (process two), whose
sidebars show it live; Bob's typing and message reach Alice; Alice's member list shows who is
online; Bob opens a DM with Alice, then one with both, which appear in their lists live;
Alice takes Bob out, and Carol's open member list drops him at once; Bob goes, and Alice sees
him offline through the DMs they still share. Once in the template UI (with the group DM),
once in the React app (the same core, on the same protocol).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.browser.conftest import SCREENSHOTS, BrowserUser, NewUser, skip_reason
from tests.browser.test_people_ui import home, start_private_room_in_app
from tests.browser.test_react_ui import react_build  # noqa: F401 - the fixture that builds frontend/dist
from tests.e2e.test_people_multiprocess import _dynamodb_env, two_processes
from tests.fixtures.servers import DaphneServer

_reason = skip_reason()
pytestmark = [
    pytest.mark.skipif(_reason is not None, reason=_reason or ""),
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(240),
]
if _reason is None:
    from playwright.async_api import expect


@pytest.fixture
def cluster(
    daphne_factory: Callable[..., DaphneServer], redis_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> list[DaphneServer]:
    """Two daphne processes on one Redis, DynamoDB on moto (tables of the test's own) and one
    accounts database (an SQLite file both read: sign-ups and sessions)."""
    env = _dynamodb_env(request.getfixturevalue("moto_server"))
    return two_processes(daphne_factory, redis_url=redis_url, tmp_path=tmp_path, name="people-ui", **env)


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


async def three_users(
    cluster: list[DaphneServer],
    new_user: NewUser,
    who: tuple[str, str, str],
    opening: Callable[[BrowserUser, DaphneServer], Awaitable[None]],
) -> tuple[dict[str, str], list[BrowserUser]]:
    """Three signed-up users with their pages open: the first on process one, the others on two."""
    names = {name: unique(name) for name in who}
    servers = [cluster[0], cluster[1], cluster[1]]
    users = [await new_user(server, names[name]) for server, name in zip(servers, who, strict=True)]
    for user, server in zip(users, servers, strict=True):
        await opening(user, server)
    return names, users


def plans() -> str:
    """A fresh room name."""
    return unique("Plans ")


async def test_private_room_invitation_typing_dm_presence_and_removal_across_two_processes_on_dynamodb(
    cluster: list[DaphneServer], new_user: NewUser
) -> None:
    names, (alice, bob, carol) = await three_users(cluster, new_user, ("alice", "bob", "carol"), home)

    # A private room by name, on process one.
    page = alice.page
    room_name = plans()
    stem = room_name.lower().replace(" ", "-")
    await page.get_by_role("button", name="+ New room").click()
    dialog = page.locator("#create-room-dialog")
    await dialog.get_by_label("Name").fill(room_name)
    await dialog.get_by_label("Private").check()
    await dialog.get_by_role("button", name="Create room").click()
    await expect(page.locator("#room-id-label")).to_have_text(re.compile(rf"^#{stem}-[a-z0-9]{{6}}$"))
    room_id = (await page.locator("#room-id-label").inner_text()).removeprefix("#")
    await expect(page.locator("#status")).to_have_attribute("data-state", "live")

    # Invitations: the invitees' sidebars on process two show the room live.
    await page.get_by_role("button", name="Members").click()
    members = page.locator("#members-dialog")
    for who in ("bob", "carol"):
        await members.get_by_placeholder("Invite by username").fill(names[who])
        await members.get_by_role("button", name="Invite").click()
    await expect(members.locator("#members-list li")).to_have_count(3)
    await expect(members.locator(f'#members-list li:has-text("{names["bob"]}")')).to_contain_text("online")
    for user in (bob, carol):
        link = user.page.locator(f'#room-links a[data-room-id="{room_id}"]')
        await expect(link.locator(".room-link-name")).to_have_text(room_name)
        await link.click()
        await expect(user.page.locator("#room-id-label")).to_have_text(f"#{room_id}")
        await expect(user.page.locator("#status")).to_have_attribute("data-state", "live")
    await members.get_by_role("button", name="Close").click()

    # Typing and a message, from process two to process one; Bob's dot is green.
    await bob.page.locator("#message-input").press_sequentially("hello")
    await expect(page.locator("#typing-line")).to_have_text(f"{names['bob']} is typing…")
    await bob.page.locator("#message-input").press("Enter")
    line = page.locator("#messages li.msg").filter(has=page.get_by_text("hello", exact=True))
    await expect(line).to_have_count(1)
    await expect(page.locator("#typing-line")).to_have_text("")
    bob_dot = line.locator(".presence-dot")
    await expect(bob_dot).to_have_attribute("data-status", "online")

    # A DM, opened by Bob on process two: it appears in Alice's list live.
    await bob.page.get_by_role("button", name="+ New message").click()
    await bob.page.locator("#direct-usernames").fill(names["alice"])
    await bob.page.locator("#direct-dialog").get_by_role("button", name="Open").click()
    await expect(bob.page.locator("#room-name")).to_have_text(names["alice"])
    await expect(page.locator("#dm-links a").filter(has_text=names["bob"])).to_have_count(1)
    # Then a group DM of three: it appears for Alice (process one) and Carol (process two).
    await bob.page.get_by_role("button", name="+ New message").click()
    await bob.page.locator("#direct-usernames").fill(f"{names['alice']}, {names['carol']}")
    await bob.page.locator("#direct-dialog").get_by_role("button", name="Open").click()
    await expect(bob.page.locator("#room-name")).to_have_text(", ".join(sorted([names["alice"], names["carol"]])))
    await expect(page.locator("#dm-links a")).to_have_count(2)
    await expect(carol.page.locator("#dm-links a").filter(has_text=names["bob"])).to_have_count(1)

    # Alice takes Bob out of the room: Carol's open member list drops him at once.
    await carol.page.get_by_role("button", name="Members").click()
    carol_list = carol.page.locator("#members-dialog #members-list li")
    await expect(carol_list).to_have_count(3)
    await page.get_by_role("button", name="Members").click()
    await members.get_by_role("button", name=f"Remove {names['bob']}").click()
    await expect(members.locator("#members-list li")).to_have_count(2)
    await expect(carol_list).to_have_count(2)
    await expect(carol_list.filter(has_text=names["bob"])).to_have_count(0)
    await expect(bob.page.locator(f'#room-links a[data-room-id="{room_id}"]')).to_have_count(0)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await carol.page.screenshot(path=str(SCREENSHOTS / "people-cluster-removed.png"))

    # Bob goes: Alice, who still shares the DM with him (not open on her page), sees him offline.
    await bob.context.close()
    await expect(bob_dot).to_have_attribute("data-status", "offline", timeout=15_000)
    assert alice.page_errors == [] and carol.page_errors == []


async def open_app(user: BrowserUser, server: DaphneServer) -> None:
    await user.page.goto(f"{server.base_url}/app/#/rooms/general")
    await expect(user.page.locator(".connection")).to_have_attribute("data-state", "live")


@pytest.mark.usefixtures("react_build")
async def test_the_same_across_two_processes_on_dynamodb_in_the_react_app(
    cluster: list[DaphneServer], new_user: NewUser
) -> None:
    one, two = cluster
    names, (ria, sam, tia) = await three_users(cluster, new_user, ("ria", "sam", "tia"), open_app)

    page = ria.page
    room_name = plans()
    room_id = await start_private_room_in_app(ria, one, room_name)

    await page.get_by_role("button", name="Members").click()
    members = page.locator("#members-dialog")
    panel = members.locator("#members-list li")
    for who in ("sam", "tia"):
        await members.get_by_placeholder("Invite by username").fill(names[who])
        await members.get_by_role("button", name="Invite", exact=True).click()
    await expect(panel).to_have_count(3)
    await expect(panel.filter(has_text=names["sam"])).to_contain_text("online")
    for user in (sam, tia):
        link = user.page.get_by_role("navigation", name="Rooms").get_by_role("link", name=room_name)
        await link.click()
        await expect(user.page).to_have_url(f"{two.base_url}/app/#/rooms/{room_id}")
        await expect(user.page.locator(".connection")).to_have_attribute("data-state", "live")

    await sam.page.locator("#composer-text").press_sequentially("hello")
    await expect(page.locator(".typing-line")).to_have_text(f"{names['sam']} is typing…")
    await sam.page.locator("#composer-text").press("Enter")
    line = page.locator(".message-list li.message").filter(has=page.get_by_text("hello", exact=True))
    await expect(line).to_have_count(1)
    sam_dot = line.locator(".presence-dot")
    await expect(sam_dot).to_have_attribute("data-status", "online")

    await sam.page.get_by_role("button", name="+ New message").click()
    await sam.page.locator("#direct-dialog").get_by_label("To (usernames").fill(names["ria"])
    await sam.page.locator("#direct-dialog").get_by_role("button", name="Open").click()
    await expect(sam.page.get_by_role("heading", name=names["ria"])).to_be_visible()
    await expect(page.locator(".directs a").filter(has_text=names["sam"])).to_have_count(1)

    await tia.page.get_by_role("button", name="Members").click()
    tia_panel = tia.page.locator("#members-dialog #members-list li")
    await expect(tia_panel).to_have_count(3)
    await members.get_by_role("button", name=f"Remove {names['sam']}").click()
    await expect(panel).to_have_count(2)
    await expect(tia_panel).to_have_count(2)
    await expect(tia_panel.filter(has_text=names["sam"])).to_have_count(0)

    await sam.context.close()
    await expect(sam_dot).to_have_attribute("data-status", "offline", timeout=15_000)
    assert ria.page_errors == [] and tia.page_errors == []
