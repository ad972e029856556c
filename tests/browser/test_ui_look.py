"""Both UIs as a person meets them (issue 20), in Chromium at a desktop's and a phone's size.

Each test asserts the layout, not just the text: the document never scrolls (only its
panes do), the composer is in view and focused once a room opens, one sender's run is
grouped, links are links, "N new messages ↓" shows while scrolled up, the offline bar
shows while the server is unreachable, and axe-core finds no serious or critical
accessibility violation. Screenshots of each screen go to var/screenshots/ (not
committed): look at them; docs/screenshots/ keeps a current pair for README.md.

One daphne (serving the React build at /app/) for the module; each test keeps to its own
users and rooms.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.conftest import (
    SCREENSHOTS,
    WS_URL,
    BrowserUser,
    NewUser,
    SocketLink,
    skip_reason,
    timeout_ms,
)
from tests.browser.test_react_ui import react_build  # noqa: F401 - a fixture
from tests.browser.test_template_ui import create_room
from tests.fixtures.servers import DEMO_PASSWORD, ROOT, DaphneServer, base_env

if TYPE_CHECKING:
    from playwright.async_api import WebSocketRoute

_reason = skip_reason()
pytestmark = [
    pytest.mark.skipif(_reason is not None, reason=_reason or ""),
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(180),
]
if _reason is None:
    from playwright.async_api import expect

AXE = ROOT / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}


@pytest.fixture(scope="module")
def look_server(
    tmp_path_factory: pytest.TempPathFactory,
    migrated_db: Path,
    react_build: Path,  # noqa: F811 - the fixture imported above
) -> Iterator[DaphneServer]:
    data_dir = tmp_path_factory.mktemp("daphne-look")
    shutil.copy(migrated_db, data_dir / "db.sqlite3")
    # The embedded default's demo accounts (alice and bob, demo_users below) sign in with the
    # password every test user has here, so the sign-in pages name them, as after `make run`.
    server = DaphneServer(data_dir, base_env(data_dir, CHATSITE_DEMO_PASSWORD=DEMO_PASSWORD)).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def demo_users(look_server: DaphneServer) -> tuple[str, ...]:
    """The demo accounts, made once for the module."""
    names = ("alice", "bob")
    for name in names:
        look_server.signup(name)
    return names


# --- the two UIs, behind one small driver -----------------------------------------------------


class TemplateUI:
    name = "template"
    composer = "#message-input"
    lines = "#messages li.msg"
    state = "#status"

    @staticmethod
    def url(server: DaphneServer, room_id: str) -> str:
        return f"{server.base_url}/rooms/{room_id}/"


class ReactUI:
    name = "react"
    composer = "#composer-text"
    lines = ".message-list li.msg"
    state = ".connection"

    @staticmethod
    def url(server: DaphneServer, room_id: str) -> str:
        return f"{server.base_url}/app/#/rooms/{room_id}"


UIS = {"template": TemplateUI, "react": ReactUI}


async def sized_user(new_user: NewUser, server: DaphneServer, name: str, size: str) -> BrowserUser:
    width, height = SIZES[size]
    user = await new_user(server, name, viewport_width=width)
    await user.page.set_viewport_size({"width": width, "height": height})
    await user.page.emulate_media(reduced_motion="reduce")  # the drawer opens at once: a still screenshot
    return user


async def a_room_said_in(
    new_user: NewUser, server: DaphneServer, ui: Any, room: str, names: tuple[str, str], size: str, *lines: str
) -> tuple[BrowserUser, BrowserUser]:
    """The first of `names` makes `room` and says `lines` in it; then the second opens it."""
    writer = await sized_user(new_user, server, names[0], size)
    reader = await sized_user(new_user, server, names[1], size)
    room = await create_room(writer, server, room)  # the id the server drew
    await open_room(writer, ui, server, room)
    for line in lines:
        await say(writer, ui, line)
    await open_room(reader, ui, server, room)
    return writer, reader


async def open_room(user: BrowserUser, ui: Any, server: DaphneServer, room_id: str) -> None:
    await user.page.goto(ui.url(server, room_id))
    await expect(user.page.locator(ui.state)).to_have_attribute("data-state", "live")


async def say(user: BrowserUser, ui: Any, text: str) -> None:
    box = user.page.locator(ui.composer)
    await box.fill(text)
    await box.press("Enter")
    await expect(user.page.locator(ui.lines).filter(has_text=text).last).to_have_attribute(
        "data-state" if ui is TemplateUI else "data-status", "sent"
    )


async def no_document_overflow(user: BrowserUser) -> None:
    """Only the panes scroll: the document fits the window both ways."""
    sizes = await user.page.evaluate(
        "() => ({sw: document.documentElement.scrollWidth, sh: document.documentElement.scrollHeight,"
        " w: window.innerWidth, h: window.innerHeight})"
    )
    assert sizes["sw"] <= sizes["w"], f"the page scrolls sideways: {sizes}"
    assert sizes["sh"] <= sizes["h"], f"the page scrolls down into blank space: {sizes}"


async def axe_violations(user: BrowserUser) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    if not AXE.exists():
        pytest.skip(f"{AXE} is missing: `cd frontend && npm ci` installs axe-core")
    if not await user.page.evaluate("() => typeof window.axe === 'object'"):
        # Evaluated rather than added as a <script>: the site's CSP (script-src 'self') refuses inline scripts.
        await user.page.evaluate(AXE.read_text() + "\n;undefined")
    found: list[dict[str, Any]] = await user.page.evaluate(
        """async () => {
            const result = await window.axe.run(document, { resultTypes: ['violations'] });
            return result.violations
                .filter((v) => v.impact === 'serious' || v.impact === 'critical')
                .map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                                nodes: v.nodes.map((n) => n.target.join(' ')) }));
        }"""
    )
    return found


async def shot(user: BrowserUser, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await user.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


# --- tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("ui_name", list(UIS))
async def test_a_room_looks_like_a_chat(look_server: DaphneServer, new_user: NewUser, ui_name: str, size: str) -> None:
    """A room with a conversation: no document overflow, the composer in view and focused,
    one sender's run grouped, links clickable, no serious or critical axe violation."""
    ui = UIS[ui_name]
    server = look_server
    room = f"look-{ui_name}-{size}"
    ann = await sized_user(new_user, server, f"ann{ui_name[0]}{size[0]}", size)
    ben = await sized_user(new_user, server, f"ben{ui_name[0]}{size[0]}", size)
    room_id = await create_room(ann, server, room)
    await open_room(ann, ui, server, room_id)
    await open_room(ben, ui, server, room_id)
    await say(ann, ui, "Morning! The release notes are at www.example.org/notes")
    await say(ann, ui, "Anyone up for lunch at 12:30?")
    await say(ben, ui, "Count me in")
    await say(ben, ui, "https://example.com/menu looks good")

    page = ben.page
    await page.reload()
    await expect(page.locator(ui.state)).to_have_attribute("data-state", "live")
    lines = page.locator(ui.lines)
    await expect(lines).to_have_count(4)
    await expect(page.locator(ui.composer)).to_be_in_viewport()
    await expect(page.locator(ui.composer)).to_be_focused()
    grouped = [await lines.nth(i).evaluate("li => li.classList.contains('grouped')") for i in range(4)]
    assert grouped == [False, True, False, True]
    # A grouped line shows its time only on hover or focus (the group's first line always does).
    await expect(lines.nth(0).locator(".meta time")).to_have_css("opacity", "1")
    await expect(lines.nth(1).locator(".meta time")).to_have_css("opacity", "0")
    if size == "desktop":
        await lines.nth(1).hover()
        await expect(lines.nth(1).locator(".meta time")).to_have_css("opacity", "1")
        await page.mouse.move(0, 0)
    links = page.locator(f"{ui.lines} .text a[href]")
    await expect(links).to_have_count(2)
    await no_document_overflow(ben)
    await shot(ben, f"{ui_name}-{size}-room")
    assert await axe_violations(ben) == []

    if size == "phone":
        await page.get_by_role("button", name="Open the room list").click()
        sidebar = page.get_by_role("navigation", name="Rooms")
        await expect(sidebar.get_by_role("link", name=room)).to_be_in_viewport()
        await no_document_overflow(ben)
        await shot(ben, f"{ui_name}-{size}-drawer")
        await page.keyboard.press("Escape") if ui is ReactUI else await page.get_by_label("Close the room list").click()
        await expect(page.get_by_role("button", name="Open the room list")).to_be_in_viewport()
    assert ann.page_errors == [] and ben.page_errors == []


@pytest.mark.parametrize("ui_name", list(UIS))
async def test_new_messages_below_are_announced_while_scrolled_up(
    look_server: DaphneServer, new_user: NewUser, ui_name: str
) -> None:
    """Scrolled up, a new message does not move the view: "1 new message ↓" shows, and jumps down."""
    ui = UIS[ui_name]
    server = look_server
    room = f"below-{ui_name}"
    cat = await sized_user(new_user, server, f"cat{ui_name[0]}", "phone")
    dov = await sized_user(new_user, server, f"dov{ui_name[0]}", "phone")
    room_id = await create_room(cat, server, room)
    await open_room(cat, ui, server, room_id)
    for i in range(14):
        await say(cat, ui, f"line {i} " + "words " * 12)
    await open_room(dov, ui, server, room_id)
    page = dov.page
    scroller = page.locator("#scroller" if ui is TemplateUI else ".messages")
    await expect(page.locator(ui.lines)).to_have_count(14)
    await scroller.evaluate("el => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); }")
    await say(cat, ui, "something new")
    pill = page.get_by_role("button", name=re.compile(r"^1 new message"))
    await expect(pill).to_be_visible()
    assert await scroller.evaluate("el => el.scrollTop") < 40
    await shot(dov, f"{ui_name}-phone-new-messages")
    await pill.click()
    await expect(pill).to_be_hidden()
    await expect(page.locator(ui.lines).last).to_be_in_viewport()
    assert cat.page_errors == [] and dov.page_errors == []


@pytest.mark.parametrize("ui_name", list(UIS))
async def test_offline_shows_a_bar_and_the_composer_stays_usable(
    look_server: DaphneServer, new_user: NewUser, ui_name: str
) -> None:
    """With the server unreachable the room shows a bar across it, and what is typed waits, in
    words; when the browser says it is online again the page reconnects at once and sends it."""
    ui = UIS[ui_name]
    server = look_server
    eli = await sized_user(new_user, server, f"eli{ui_name[0]}", "desktop")
    link = SocketLink()
    await eli.context.route_web_socket(WS_URL, link.serve)
    await open_room(eli, ui, server, "general")
    await link.cut()
    bar = eli.page.get_by_role("status").filter(has_text="Offline.")
    await expect(bar).to_be_visible(timeout=timeout_ms(15))
    box = eli.page.locator(ui.composer)
    await expect(box).to_be_enabled()
    text = f"written while offline in {ui_name}"  # the room is shared with the other UI's run
    await box.fill(text)
    await box.press("Enter")
    pending = eli.page.locator(ui.lines).filter(has_text=text)
    await expect(pending).to_contain_text(re.compile(r"Sending…|Waiting for connection…"))
    await no_document_overflow(eli)
    await shot(eli, f"{ui_name}-desktop-offline")

    # The server is back: the browser's "online" tries again at once, not after the backoff
    # (up to 10 s here; it was 30): live within 6 s, the bar gone, the message sent.
    link.down = False
    await eli.page.evaluate("() => window.dispatchEvent(new Event('online'))")
    await expect(eli.page.locator(ui.state)).to_have_attribute("data-state", "live", timeout=timeout_ms(6))
    await expect(bar).to_be_hidden()
    await expect(pending).to_have_attribute("data-state" if ui is TemplateUI else "data-status", "sent")
    assert len(link.sends(text)) >= 1
    assert eli.page_errors == []


async def test_react_reports_by_keyboard_through_an_in_page_dialog(
    look_server: DaphneServer, new_user: NewUser
) -> None:
    """The message list is one Tab stop; Enter opens a line's menu, Esc closes it; Report… opens
    a dialog with reasons (no window.prompt), and the thanks is not styled as an error."""
    said = ("first from fox", "second from fox")
    fox, gil = await a_room_said_in(new_user, look_server, ReactUI, "react-menu", ("fox", "gil"), "desktop", *said)
    page = gil.page
    lines = page.locator(ReactUI.lines)
    await expect(lines.nth(1)).to_have_attribute("tabindex", "0")
    await expect(lines.nth(0)).to_have_attribute("tabindex", "-1")
    assert await page.locator(".message-list button[tabindex='0']").count() == 1
    await lines.nth(1).focus()
    await page.keyboard.press("ArrowUp")
    await expect(lines.nth(0)).to_be_focused()
    await page.keyboard.press("Enter")
    menu = page.get_by_role("menu", name="Message actions")
    await expect(menu.get_by_role("menuitem", name="Report…")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(menu).to_have_count(0)
    await expect(lines.nth(0).locator(".msg-menu-button")).to_be_focused()

    await page.keyboard.press("Enter")
    await expect(menu.get_by_role("menuitem", name="Report…")).to_be_focused()
    await page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Report this message")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("first from fox")
    await shot(gil, "react-desktop-report-dialog")
    assert await axe_violations(gil) == []
    await dialog.get_by_label("Spam or advertising").check()
    await dialog.get_by_label("Details (optional)").fill("sells pills")
    await dialog.get_by_role("button", name="Send report").click()
    await expect(dialog).to_be_hidden()
    thanks = page.get_by_role("status").filter(has_text="the moderators will look at this message")
    await expect(thanks).to_have_attribute("data-kind", "info")
    await expect(lines.nth(0).locator(".reported-mark")).to_have_text("Reported")
    await lines.nth(0).locator(".msg-menu-button").click()
    # Reported once: no Report… again; the changes' items stay, as in the template UI.
    await expect(menu.get_by_role("menuitem")).to_have_text(["Reply", "React…"])
    assert gil.dialogs == [] and gil.page_errors == [] and fox.page_errors == []


async def test_react_an_unknown_room_is_a_clear_page_with_a_way_back(
    look_server: DaphneServer, new_user: NewUser
) -> None:
    """No raw error, no enabled composer, no ghost room in the sidebar; a link goes back. A
    private room the user is not in looks exactly the same."""
    server = look_server
    hal = await sized_user(new_user, server, "hal", "desktop")
    kim = await sized_user(new_user, server, "kim", "desktop")
    hidden = await create_room(kim, server, "Kim's secrets", private=True)
    await hal.page.goto(ReactUI.url(server, "no-such-room"))
    gone = hal.page.get_by_test_id("room-gone")
    await expect(gone).to_contain_text("does not exist, or is private")
    missing_text = await gone.inner_text()
    await expect(hal.page.locator(ReactUI.composer)).to_have_count(0)
    sidebar = hal.page.get_by_role("navigation", name="Rooms")
    await expect(sidebar.locator('[data-room-id="no-such-room"]')).to_have_count(0)
    assert "unknown_room" not in await hal.page.locator("main").inner_text()
    await shot(hal, "react-desktop-unknown-room")
    assert await axe_violations(hal) == []
    await gone.get_by_role("link", name="Go to #general").click()
    await expect(hal.page.locator(ReactUI.state)).to_have_attribute("data-state", "live")
    await expect(hal.page.locator(ReactUI.composer)).to_be_focused()
    await hal.page.goto(ReactUI.url(server, hidden))
    await expect(gone).to_contain_text("does not exist, or is private")
    assert await gone.inner_text() == missing_text.replace("no-such-room", hidden)
    await expect(hal.page.locator(ReactUI.composer)).to_have_count(0)
    await expect(sidebar.locator(f'[data-room-id="{hidden}"]')).to_have_count(0)
    assert "Kim's secrets" not in await hal.page.locator("body").inner_text()
    assert hal.page_errors == []


async def test_template_an_unknown_room_is_a_clear_page_with_a_way_back(
    look_server: DaphneServer, new_user: NewUser
) -> None:
    """Not Django's 404 page: the sidebar, a sentence, and a link to the home room, as both UIs
    show when a room turns a user away. A private room the user is not in is the same page."""
    server = look_server
    ivy = await sized_user(new_user, server, "ivy", "phone")
    lou = await sized_user(new_user, server, "lou", "desktop")
    hidden = await create_room(lou, server, "Lou's secrets", private=True)
    response = await ivy.page.goto(TemplateUI.url(server, "no-such-room"))
    assert response is not None and response.status == 404
    await expect(ivy.page.get_by_test_id("room-gone")).to_contain_text("does not exist, or is private")
    await expect(ivy.page.get_by_role("heading", level=1)).to_have_text("Room not available")
    await no_document_overflow(ivy)
    assert await axe_violations(ivy) == []
    await shot(ivy, "template-phone-unknown-room")
    await ivy.page.get_by_role("link", name="Go to #general").click()
    await expect(ivy.page).to_have_url(TemplateUI.url(server, "general"))
    missing_page = await ivy.page.goto(TemplateUI.url(server, "no-such-room"))
    assert missing_page is not None
    missing_main = await ivy.page.locator("main").inner_text()
    private_page = await ivy.page.goto(TemplateUI.url(server, hidden))
    assert private_page is not None and private_page.status == 404
    assert await ivy.page.locator("main").inner_text() == missing_main
    assert "Lou's secrets" not in await ivy.page.content()
    assert ivy.page_errors == []


@pytest.mark.parametrize("ui_name", list(UIS))
async def test_a_message_waiting_out_slow_mode_says_so_with_a_countdown(
    look_server: DaphneServer, new_user: NewUser, ui_name: str
) -> None:
    """The server's slow_mode answer reads "Slow mode: you can post again in N s", counting down;
    never the code."""
    ui = UIS[ui_name]
    server = look_server
    jo = await sized_user(new_user, server, f"jo{ui_name[0]}", "desktop")

    async def slow(ws: WebSocketRoute) -> None:
        server_side = ws.connect_to_server()

        def up(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("action") == "sendMessage" and frame.get("message") == "too soon":
                answer = {
                    "type": "error",
                    "action": "sendMessage",
                    "code": "slow_mode",
                    "message": "slow mode: one message every 30 seconds",
                    "retryable": True,
                    "retryAfter": 23,
                    "clientMessageId": frame["clientMessageId"],
                    "roomId": frame["roomId"],
                }
                ws.send(json.dumps(answer))
                return
            server_side.send(message)

        ws.on_message(up)
        server_side.on_message(lambda message: ws.send(message))

    await jo.context.route_web_socket(WS_URL, slow)
    await open_room(jo, ui, server, "general")
    box = jo.page.locator(ui.composer)
    await box.fill("too soon")
    await box.press("Enter")
    waiting = jo.page.locator(ui.lines).filter(has_text="too soon")
    await expect(waiting).to_contain_text(re.compile(r"Slow mode: you can post again in 2[0-3] s"))
    first = await waiting.inner_text()
    await expect(waiting).not_to_have_text(first)  # it counts down
    await expect(waiting).to_contain_text("Slow mode: you can post again in")
    assert "slow_mode" not in await waiting.inner_text()
    await shot(jo, f"{ui_name}-desktop-slow-mode")
    assert jo.page_errors == []


async def test_the_readme_screenshots(
    daphne_factory: Callable[..., DaphneServer],
    react_build: Path,  # noqa: F811 - the fixture imported above
    new_user: NewUser,
) -> None:
    """A conversation a newcomer would recognise, for README.md: the template UI on a desktop and
    the React app on a phone (copied to docs/screenshots/ by hand when the look changes). On a
    server of its own: the other tests' rooms are not what a newcomer's sidebar holds."""
    server = daphne_factory()
    alice = await sized_user(new_user, server, "alice", "desktop")
    bob = await sized_user(new_user, server, "bob", "phone")
    lunch = await create_room(alice, server, "Lunch plans")
    await open_room(alice, TemplateUI, server, lunch)
    await open_room(bob, ReactUI, server, lunch)
    await say(alice, TemplateUI, "Morning! Who's in for lunch today?")
    await say(alice, TemplateUI, "The new place has its menu at www.example.org/menu")
    await say(bob, ReactUI, "Count me in")
    await say(bob, ReactUI, "12:30 at the door?")
    await say(alice, TemplateUI, "Perfect, see you there")
    await expect(bob.page.locator(ReactUI.lines)).to_have_count(5)
    await bob.page.locator(ReactUI.composer).fill("Bringing Sam too")
    await shot(alice, "readme-template-desktop")
    await shot(bob, "readme-react-phone")
    assert alice.page_errors == [] and bob.page_errors == []


# --- the phone drawer, the headers, the remaining screens -------------------------------------


async def inert(user: BrowserUser, selector: str) -> bool:
    """Whether the element is inert (itself or inside an inert part of the page)."""
    found: bool = await user.page.locator(selector).first.evaluate("el => el.closest('[inert]') !== null")
    return found


async def focus_stops(user: BrowserUser, presses: int) -> list[str]:
    """Where the focus goes on each of `presses` Tabs: the id of the page part holding it."""
    stops: list[str] = []
    for _ in range(presses):
        await user.page.keyboard.press("Tab")
        stops.append(
            await user.page.evaluate(
                """() => {
                    const el = document.activeElement;
                    if (!el || el === document.body) return 'body';
                    if (el.closest('.sidebar')) return 'sidebar';
                    if (el.closest('.topbar')) return 'topbar';
                    return 'page';
                }"""
            )
        )
    return stops


@pytest.mark.parametrize("ui_name", list(UIS))
async def test_the_phone_drawer_is_inert_while_closed_and_the_page_behind_it_while_open(
    look_server: DaphneServer, new_user: NewUser, ui_name: str
) -> None:
    """Closed, the drawer's links are neither focusable nor read out; open, Tab stays in it and
    the room behind is inert; Esc gives the room back with the focus on ☰; a desktop window has
    no drawer, so nothing is inert there."""
    ui = UIS[ui_name]
    server = look_server
    kim = await sized_user(new_user, server, f"kim{ui_name[0]}", "phone")
    await open_room(kim, ui, server, "general")
    page = kim.page
    sidebar = page.get_by_role("navigation", name="Rooms")

    assert await inert(kim, "#sidebar")
    assert not await inert(kim, ".main-pane") and not await inert(kim, ".topbar")
    await expect(sidebar).to_have_count(0)  # not in the accessibility tree
    await page.locator(ui.composer).focus()
    assert "sidebar" not in await focus_stops(kim, 25)

    await page.get_by_role("button", name="Open the room list").click()
    await expect(sidebar.get_by_role("link", name="General")).to_be_focused()  # the open room's link
    assert not await inert(kim, "#sidebar")
    assert await inert(kim, ".main-pane") and await inert(kim, ".topbar")
    assert set(await focus_stops(kim, 25)) <= {"sidebar", "body"}
    assert await axe_violations(kim) == []

    await page.keyboard.press("Escape")
    await expect(page.get_by_role("button", name="Open the room list")).to_be_focused()
    assert await inert(kim, "#sidebar") and not await inert(kim, ".main-pane")

    await page.set_viewport_size({"width": 1280, "height": 800})
    await expect(sidebar.get_by_role("link", name="General")).to_be_visible()
    # The stylesheet lays the page out for the wide window at once; the React app takes the
    # drawer's `inert` away when its media listener's render follows, a frame or so later.
    await page.wait_for_function(
        "() => !document.querySelector('#sidebar').closest('[inert]')"
        " && !document.querySelector('.main-pane').closest('[inert]')",
        timeout=10_000,
    )
    assert kim.page_errors == []


# What makes a header look the way it does: compared between the two UIs, part by part.
HEADER_PARTS = {
    "top bar": ".topbar",
    "brand": ".topbar .brand",
    "who": ".topnav .who",
    "sign out": ".topnav .link-button",
    "room head": ".room-head",
    "drawer button": ".room-head .sidebar-open",
    "room name": ".room-head h1",
    "members": ".room-head .members-button",
    "state": ".room-head .status",
}
HEADER_STYLE = """el => {
    const s = getComputedStyle(el);
    const r = el.getBoundingClientRect();
    return {
        height: Math.round(r.height), top: Math.round(r.top),
        background: s.backgroundColor, color: s.color, font: s.font,
        padding: s.padding, border: s.borderBottom + ' / ' + s.borderTop + ' / ' + s.borderRadius,
        text: s.textDecorationLine, width: el.matches('.topbar, .room-head') ? Math.round(r.width) : null,
    };
}"""


# The attach button's look, compared between the two UIs (one rule in design.css).
ATTACH_STYLE = """el => {
    const s = getComputedStyle(el);
    const r = el.getBoundingClientRect();
    const clip = getComputedStyle(el, '::before');
    return {
        width: Math.round(r.width), height: Math.round(r.height), background: s.backgroundColor,
        color: s.color, border: s.border + ' / ' + s.borderRadius, padding: s.padding,
        clip: clip.width + ' ' + clip.height + ' ' + clip.backgroundColor,
    };
}"""
# Whether the room's name shows whole: nothing of the heading cut off, and its width.
NAME_FITS = "el => ({fits: el.scrollWidth <= el.clientWidth, width: Math.round(el.getBoundingClientRect().width)})"


@pytest.mark.parametrize("size", list(SIZES))
async def test_both_uis_have_one_header_design(look_server: DaphneServer, new_user: NewUser, size: str) -> None:
    """The top bar (brand, who is signed in, Sign out, Sign out everywhere; the name whole on
    a phone too) and the room's head
    (name, #id, Members, the state) look the same at / and /app/, from one stylesheet, and so
    does the attach button; on a phone each bar is one line and together they take under 15 %
    of the screen (they took 30 %). The room's name shows whole, at a phone's width too (the
    notification level beside it cut it to "heads-…"); Members opens a dialog over the page
    holding the level, and the head's name keeps its width (a disclosure squeezed it to "Pl…")."""
    server = look_server
    lia = await sized_user(new_user, server, f"lia-long{size[0]}", size)  # a name of 9 letters
    room_id = await create_room(lia, server, f"heads-{size}")
    looks: dict[str, dict[str, Any]] = {}
    for ui in (TemplateUI, ReactUI):
        await open_room(lia, ui, server, room_id)
        page = lia.page
        await expect(page.locator(".topbar .brand")).to_have_text("Chatsite")
        await expect(page.locator(".topnav .who strong")).to_have_text(lia.name)
        await expect(page.locator(".topnav .link-button")).to_have_text(["Sign out", "Sign out everywhere"])
        await expect(page.locator(".topnav").get_by_role("button", name="Sign out everywhere")).to_be_visible()
        who = await page.locator(".topnav .who").evaluate("el => el.scrollWidth <= el.clientWidth")
        assert who, f"{ui.name}: the user's name is cut off in the top bar at {size}"
        await expect(page.locator(".room-head h1")).to_contain_text(f"heads-{size}")
        looks[ui.name] = {}
        for part, css in HEADER_PARTS.items():
            looks[ui.name][part] = await page.locator(css).first.evaluate(HEADER_STYLE)
        looks[ui.name]["attach"] = await page.locator(".composer .attach-button").evaluate(ATTACH_STYLE)
        await no_document_overflow(lia)
        await shot(lia, f"{ui.name}-{size}-header")
        _, height = SIZES[size]
        bottom = await page.locator(".room-head").evaluate("el => el.getBoundingClientRect().bottom")
        if size == "phone":
            assert bottom < 0.15 * height, f"{ui.name}: the headers take {bottom:.0f} of {height} px"
        name = page.locator(".room-head h1")
        before = await name.evaluate(NAME_FITS)
        assert before["fits"], f"{ui.name}: the room's name is cut off in the head at {size}"
        assert await page.locator(".room-head select, .room-head #notify-level").count() == 0

        await page.locator(".room-head").get_by_role("button", name="Members").click()
        dialog = page.locator("#members-dialog")
        await expect(dialog).to_be_visible()
        await expect(dialog.get_by_label("Notify me about")).to_be_visible()
        await expect(dialog.locator("#members-list li")).to_have_count(1)
        assert await name.evaluate(NAME_FITS) == before, f"{ui.name}: opening Members changed the head"
        box = await dialog.bounding_box()
        width, _ = SIZES[size]
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, box
        await no_document_overflow(lia)
        await shot(lia, f"{ui.name}-{size}-members")
        assert await axe_violations(lia) == []
        await page.keyboard.press("Escape")
        await expect(dialog).to_be_hidden()
    for part in [*HEADER_PARTS, "attach"]:
        assert looks["template"][part] == looks["react"][part], part
    assert lia.page_errors == []


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("ui_name", list(UIS))
async def test_a_room_is_made_in_the_new_room_dialog_and_a_refusal_is_said_once(
    look_server: DaphneServer, new_user: NewUser, ui_name: str, size: str
) -> None:
    """The sidebar's "+ New room" opens one dialog in both UIs (React drew an inline form);
    a name already taken is said once, in the dialog (React said it there and again over the
    room); a free name opens the new room."""
    ui = UIS[ui_name]
    server = look_server
    taken = f"Taken {ui_name} {size}"
    noa = await sized_user(new_user, server, f"noa{ui_name[0]}{size[0]}", size)
    await create_room(noa, server, taken)
    await open_room(noa, ui, server, "general")
    page = noa.page
    if size == "phone":
        await page.get_by_role("button", name="Open the room list").click()
    sidebar = page.get_by_role("navigation", name="Rooms")
    await expect(sidebar.locator(".sidebar-actions").first.get_by_role("button")).to_have_text(
        ["+ New room", "Browse rooms"]
    )
    # Besides the search box and the receipts switch, no field: no form drawn inline.
    await expect(sidebar.locator("input:not([type=search], [type=checkbox])")).to_have_count(0)
    await sidebar.get_by_role("button", name="+ New room").click()
    dialog = page.locator("#create-room-dialog")
    await expect(dialog).to_be_visible()
    await dialog.get_by_label("Name").fill(taken.upper())
    await dialog.get_by_role("button", name="Create room").click()
    refusal = "A room of that name exists already."
    await expect(dialog.get_by_role("alert")).to_have_text(refusal)
    # Shown once: React's notice over the room came from the same frame, before the dialog's line.
    await expect(page.get_by_text(refusal).filter(visible=True)).to_have_count(1)
    await no_document_overflow(noa)
    await shot(noa, f"{ui_name}-{size}-new-room")
    assert await axe_violations(noa) == []
    await dialog.get_by_label("Name").fill(f"Free {ui_name} {size}")
    await dialog.get_by_role("button", name="Create room").click()
    await expect(dialog).to_be_hidden()
    await expect(page.locator(".room-head h1")).to_contain_text(f"Free {ui_name} {size}")
    await expect(page.get_by_text(refusal).filter(visible=True)).to_have_count(0)
    assert noa.page_errors == []


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("ui_name", list(UIS))
async def test_the_sign_in_page_names_the_demo_accounts_fits_and_passes_axe(
    look_server: DaphneServer, new_user: NewUser, demo_users: tuple[str, ...], ui_name: str, size: str
) -> None:
    """A visitor's first screen: the sign-in form under the one top bar, the demo accounts and
    their password named (they exist here), no overflow, no serious or critical axe violation."""
    width, height = SIZES[size]
    visitor = await new_user(look_server, None, viewport_width=width)
    await visitor.page.set_viewport_size({"width": width, "height": height})
    url = "/accounts/login/" if ui_name == "template" else "/app/"
    await visitor.page.goto(look_server.base_url + url)
    await expect(visitor.page.get_by_label("Username")).to_be_visible()
    await expect(visitor.page.locator(".topbar .brand")).to_have_text("Chatsite")
    hint = visitor.page.get_by_test_id("demo-hint")
    await expect(hint).to_have_text(f"Trying Chatsite? Sign in as alice or bob with the password {DEMO_PASSWORD}.")
    await expect(hint).to_be_in_viewport()
    await no_document_overflow(visitor)
    assert await axe_violations(visitor) == []
    await shot(visitor, f"{ui_name}-{size}-sign-in")
    assert visitor.page_errors == []


async def test_template_reports_through_an_accessible_dialog(look_server: DaphneServer, new_user: NewUser) -> None:
    """The template UI's report dialog (keyboard use: test_ui_layout.py) passes axe, on a phone."""
    names = ("maxt", "nedt")
    max_, ned = await a_room_said_in(new_user, look_server, TemplateUI, "template-report", names, "phone", "report me")
    line = ned.page.locator(TemplateUI.lines).first
    await line.locator(".msg-menu-button").click()
    await ned.page.get_by_role("menu", name="Message actions").get_by_role("menuitem", name="Report…").click()
    dialog = ned.page.get_by_role("dialog", name="Report this message")
    await expect(dialog).to_be_visible()
    await no_document_overflow(ned)
    await shot(ned, "template-phone-report-dialog")
    assert await axe_violations(ned) == []
    assert ned.dialogs == [] and ned.page_errors == [] and max_.page_errors == []


@pytest.mark.parametrize("ui_name", list(UIS))
async def test_a_banned_user_is_told_why_and_cannot_type_after_a_reload_too(
    look_server: DaphneServer, new_user: NewUser, ui_name: str
) -> None:
    """The server's 4403 (banned): the composer is disabled and the page says why, in words a
    phone shows too; a reload meets the same answer and says the same, never "Loading
    messages…" for ever."""
    ui = UIS[ui_name]
    oz = await sized_user(new_user, look_server, f"oz{ui_name[0]}", "phone")
    banned = False
    open_sockets: list[WebSocketRoute] = []

    async def serve(ws: WebSocketRoute) -> None:
        if banned:  # as the server answers a banned user's socket
            await ws.close(code=4403, reason="banned")
            return
        server_side = ws.connect_to_server()
        ws.on_message(lambda message: server_side.send(message))
        server_side.on_message(lambda message: ws.send(message))
        open_sockets.append(ws)

    await oz.context.route_web_socket(WS_URL, serve)
    await open_room(oz, ui, look_server, "general")
    banned = True
    for ws in open_sockets:
        await ws.close(code=4403, reason="banned")
    page = oz.page
    for attempt in ("live", "after a reload"):
        await expect(page.locator(ui.composer)).to_be_disabled()
        reason = page.get_by_text(re.compile(r"[Bb]anned: you can no longer take part")).first
        await expect(reason).to_be_visible()
        box = await reason.bounding_box()
        assert box is not None and box["width"] > 100, f"the reason is not shown: {box}"
        await expect(page.get_by_text("Loading messages…")).to_have_count(0)
        await no_document_overflow(oz)
        if attempt == "live":
            await page.reload()
            await expect(page.locator(ui.state)).to_have_attribute("data-state", re.compile(r"^(banned|forbidden)$"))
    await shot(oz, f"{ui_name}-phone-banned")
    assert oz.page_errors == []
