"""The React client (frontend/) in a real browser against a real daphne process.

The app is built once per test session (`npm ci && npm run build` when frontend/dist is
missing or older than its sources; `make test` builds it before pytest) and served by
daphne at /app/. Users are signed in with the session cookie, as when the site serves the
app, except in the test of the app's own sign-in form, which uses the token API.
See tests/browser/conftest.py for the browser fixtures.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.conftest import (
    SCREENSHOTS,
    WS_URL,
    BrowserUser,
    NewUser,
    SocketLink,
    cookies_for,
    outbox_keys,
    skip_reason,
    timeout_ms,
)
from tests.fixtures.servers import DEMO_PASSWORD, ROOT, DaphneServer

if TYPE_CHECKING:
    from playwright.async_api import Locator, WebSocket

_reason = skip_reason()
pytestmark = [
    pytest.mark.skipif(_reason is not None, reason=_reason or ""),
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(180),
]
if _reason is None:
    from playwright.async_api import expect

DaphneFactory = Callable[..., DaphneServer]
FRONTEND = ROOT / "frontend"
BUILT_INDEX = FRONTEND / "dist" / "index.html"

# Markup, script and URL tricks that must arrive as the text they are, and never run.
XSS_PAYLOADS = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(2)</script>",
    '<a href="javascript:alert(3)">click me</a>',
    "javascript:alert(4)",
    "<svg onload=alert(5)>",
    '<iframe src="javascript:alert(6)"></iframe>',
    "<details open ontoggle=alert(7)>",
    '"><img src=x onerror="window.__xss=8">',
    "<style>body{display:none}</style>",
    'https://example.com/"><img src=x onerror=alert(9)>',
    "[click](javascript:alert(10)) data:text/html,<script>alert(11)</script>",
    "{{constructor.constructor('alert(12)')()}} ${alert(13)} &lt;b&gt;",
]
INJECTED = "img, script, svg, iframe, details, style, b, textarea, object, embed"


# --- the build ------------------------------------------------------------------------------


def _newest_source() -> float:
    sources = [FRONTEND / "index.html", FRONTEND / "package-lock.json", FRONTEND / "vite.config.js"]
    sources += [p for d in ("src", "public") for p in (FRONTEND / d).rglob("*") if p.is_file()]
    # The protocol client the app bundles from the template page's static files.
    sources += [p for p in (ROOT / "static" / "chat" / "core").rglob("*.js")]
    # And the design both UIs share (main.jsx imports it): a change to it must rebuild the app.
    sources.append(ROOT / "static" / "chat" / "design.css")
    return max(p.stat().st_mtime for p in sources)


@pytest.fixture(scope="session")
def react_build() -> Path:
    """frontend/dist, built from the current sources (at most once per test session)."""
    if BUILT_INDEX.exists() and BUILT_INDEX.stat().st_mtime >= _newest_source():
        return BUILT_INDEX.parent
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip(
            "the React app is not built and npm is missing: install Node.js 20.19+ and npm, then `make frontend`"
        )
    installed = FRONTEND / "node_modules" / ".package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < (FRONTEND / "package-lock.json").stat().st_mtime:
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=FRONTEND, check=True, timeout=600
        )
    subprocess.run([npm, "run", "build", "--silent"], cwd=FRONTEND, check=True, timeout=300)
    assert BUILT_INDEX.exists(), "npm run build made no frontend/dist/index.html"
    return BUILT_INDEX.parent


@pytest.fixture
def app_server(react_build: Path, daphne_factory: DaphneFactory) -> Callable[..., DaphneServer]:
    """`app_server(**env)`: a daphne process serving the built app at /app/."""
    return daphne_factory


# --- helpers --------------------------------------------------------------------------------


def status(user: BrowserUser) -> Locator:
    return user.page.locator(".connection")


async def open_app(user: BrowserUser, server: DaphneServer, room_id: str = "general") -> None:
    await user.page.goto(f"{server.base_url}/app/#/rooms/{room_id}")
    await expect(status(user)).to_have_attribute("data-state", "live")
    await expect(user.page.locator(f'.message-list[data-room="{room_id}"]')).to_be_attached()
    await expect(user.page.get_by_text("Loading messages…")).to_have_count(0)


async def say(user: BrowserUser, text: str) -> None:
    box = user.page.locator("#composer-text")
    await box.fill(text)
    await box.press("Enter")


def shown(user: BrowserUser) -> Locator:
    """The text of every stored message the user sees (pending ones excluded), in order."""
    return user.page.locator(".message-list li.message[data-seq] .text")


def own(user: BrowserUser, text: str) -> Locator:
    return user.page.locator(".message-list li.message.own").filter(has=user.page.get_by_text(text, exact=True))


async def eventually(predicate: Callable[[], bool], seconds: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_ms(seconds) / 1000
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def clean(*users: BrowserUser) -> None:
    for user in users:
        assert user.dialogs == [], f"{user.name} saw dialogs: {user.dialogs}"
        assert user.page_errors == [], f"{user.name} hit page errors: {user.page_errors}"


# --- tests ----------------------------------------------------------------------------------


async def test_two_users_chat_live_in_the_react_app(app_server: DaphneFactory, new_user: NewUser) -> None:
    """Two users see each other's messages live, their own marked as sent, others' announced politely."""
    server = app_server()
    alice = await new_user(server, "alice")
    bob = await new_user(server, "bob")
    await open_app(alice, server)
    await open_app(bob, server)
    await expect(alice.page.get_by_test_id("username")).to_have_text("alice")

    await say(alice, "hello bob")
    await expect(shown(bob)).to_have_text(["hello bob"])
    await expect(bob.page.locator("li.message[data-seq] .author")).to_have_text(["alice"])
    await expect(own(alice, "hello bob")).to_have_attribute("data-status", "sent")
    await expect(own(bob, "hello bob")).to_have_count(0)

    await say(bob, "hi alice, see https://example.com/docs")
    await expect(shown(alice)).to_have_text(["hello bob", "hi alice, see https://example.com/docs"])
    link = alice.page.locator(".message-list .text a")
    await expect(link).to_have_attribute("href", "https://example.com/docs")
    await expect(link).to_have_attribute("rel", "noopener noreferrer nofollow ugc")
    announcer = alice.page.get_by_test_id("announcer")
    await expect(announcer).to_have_attribute("aria-live", "polite")
    await expect(announcer).to_have_text("bob: hi alice, see https://example.com/docs")
    clean(alice, bob)


async def test_a_reload_shows_history_and_earlier_pages_load_by_keyboard(
    app_server: DaphneFactory, new_user: NewUser
) -> None:
    """After a reload the latest page is back under a day separator; earlier pages load on demand, once each."""
    server = app_server(CHAT_HISTORY_PAGE="4")
    alice = await new_user(server, "alice")
    await open_app(alice, server)
    texts = [f"message {n}" for n in range(1, 11)]
    for text in texts:
        await say(alice, text)
    await expect(shown(alice)).to_have_text(texts)

    await alice.page.reload()
    await expect(status(alice)).to_have_attribute("data-state", "live")
    await expect(shown(alice)).to_have_text(texts[-4:])
    await expect(alice.page.locator(".day-separator").first).to_be_visible()  # two if the test spans midnight
    earlier = alice.page.get_by_role("button", name="Load earlier messages")
    await earlier.focus()
    await alice.page.keyboard.press("Enter")
    await expect(shown(alice)).to_have_text(texts[-8:])
    await earlier.focus()
    await alice.page.keyboard.press("Enter")
    await expect(shown(alice)).to_have_text(texts)
    await expect(earlier).to_have_count(0)
    clean(alice)


async def test_every_message_shows_once_across_a_server_restart(app_server: DaphneFactory, new_user: NewUser) -> None:
    """Across a daphne restart both users end with every message exactly once, those typed while down included."""
    server = app_server()
    alice = await new_user(server, "alice")
    bob = await new_user(server, "bob")
    await open_app(alice, server)
    await open_app(bob, server)
    await say(alice, "before the restart")
    await expect(shown(bob)).to_have_text(["before the restart"])
    await say(bob, "me too")
    await expect(shown(alice)).to_have_text(["before the restart", "me too"])

    await asyncio.to_thread(server.stop)
    for user in (alice, bob):
        await expect(status(user)).to_have_attribute("data-state", "offline")
    await say(alice, "typed by alice while the server was down")
    await say(bob, "typed by bob while the server was down")
    pending = alice.page.locator('li[data-status="pending"]')
    await expect(pending).to_have_count(1)
    await expect(pending).to_contain_text("Sending…")

    await asyncio.to_thread(server.start)
    for user in (alice, bob):
        await expect(status(user)).to_have_attribute("data-state", "live", timeout=timeout_ms(40))
    await say(alice, "after the restart")
    expected = {
        "before the restart",
        "me too",
        "typed by alice while the server was down",
        "typed by bob while the server was down",
        "after the restart",
    }
    for user in (alice, bob):
        await expect(shown(user)).to_have_count(len(expected))
        await expect(user.page.locator("li.message:not([data-seq])")).to_have_count(0)
    seen_by_alice = await shown(alice).all_text_contents()
    seen_by_bob = await shown(bob).all_text_contents()
    assert sorted(seen_by_alice) == sorted(expected)
    assert seen_by_alice == seen_by_bob  # the same order for both: the room's seq order
    assert seen_by_alice[:2] == ["before the restart", "me too"]
    clean(alice, bob)


async def test_xss_payloads_arrive_as_text_and_never_run(app_server: DaphneFactory, new_user: NewUser) -> None:
    """Every payload shows as its exact text on both sides; no dialog, no injected element, no script link."""
    server = app_server()
    alice = await new_user(server, "alice")
    bob = await new_user(server, "bob")
    await open_app(alice, server)
    await open_app(bob, server)
    for payload in XSS_PAYLOADS:
        await say(alice, payload)
    await expect(shown(alice)).to_have_text(XSS_PAYLOADS)
    await expect(shown(bob)).to_have_text(XSS_PAYLOADS)
    await bob.page.reload()
    await expect(status(bob)).to_have_attribute("data-state", "live")
    await expect(shown(bob)).to_have_text(XSS_PAYLOADS)

    for user in (alice, bob):
        messages = user.page.locator(".message-list")
        assert await messages.locator(INJECTED).count() == 0
        hrefs = await messages.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
        assert hrefs == ["https://example.com/"], hrefs
        assert await user.page.evaluate("() => window.__xss === undefined")
        # let any event handler that slipped through get its chance
        await user.page.mouse.move(200, 300)
        await asyncio.sleep(0.3)
    clean(alice, bob)


async def test_a_phone_user_chats_with_the_keyboard_alone(app_server: DaphneFactory, new_user: NewUser) -> None:
    """At phone width nothing scrolls sideways, and Tab, typing and Enter are enough to send a message."""
    server = app_server()
    bob = await new_user(server, "bob", viewport_width=375)
    await open_app(bob, server)
    page = bob.page
    assert await page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    await expect(page.locator("#composer-text")).to_be_in_viewport()

    for _ in range(40):
        if await page.evaluate("() => document.activeElement && document.activeElement.id === 'composer-text'"):
            break
        await page.keyboard.press("Tab")
    else:
        pytest.fail("Tab never reached the message box")
    await page.keyboard.type("typed without a mouse")
    await page.keyboard.press("Enter")
    await expect(own(bob, "typed without a mouse")).to_have_attribute("data-status", "sent")
    await expect(page.locator("#composer-text")).to_have_value("")
    assert await page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    clean(bob)


async def test_the_login_form_signs_in_with_a_token_and_the_socket_authenticates_in_band(
    app_server: DaphneFactory, new_user: NewUser
) -> None:
    """A signed-out visitor signs in through the app's form; the socket's first frame carries the token."""
    server = app_server()
    await asyncio.to_thread(server.signup, "carol")
    visitor = await new_user(server, None)
    page = visitor.page
    first_frames: list[dict[str, Any]] = []

    def on_socket(ws: WebSocket) -> None:
        ws.on("framesent", lambda payload: first_frames.append(json.loads(payload)) if not first_frames else None)

    page.on("websocket", on_socket)
    await page.goto(f"{server.base_url}/app/")
    await expect(page.get_by_role("heading", name="Sign in to Chatsite")).to_be_visible()
    await page.get_by_label("Username").fill("carol")
    await page.get_by_label("Password").fill("wrong password")
    await page.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert")
    await expect(alert).to_be_visible()
    if "does not sign in apps" in (await alert.text_content() or ""):
        pytest.skip("this server has no token API (POST /api/auth/token)")
    await expect(alert).to_have_text("Wrong username or password.")

    await page.get_by_label("Password").fill(DEMO_PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(status(visitor)).to_have_attribute("data-state", "live")
    await expect(page.get_by_test_id("username")).to_have_text("carol")
    assert first_frames and first_frames[0]["action"] == "authenticate"
    # The room list comes from /api/rooms with the bearer token ("General" is its name there).
    await expect(page.get_by_role("navigation", name="Rooms").get_by_role("link")).to_have_text(["General"])
    await say(visitor, "signed in with a token")
    await expect(own(visitor, "signed in with a token")).to_have_attribute("data-status", "sent")
    await page.get_by_role("button", name="Sign out", exact=True).click()
    await expect(page.get_by_role("heading", name="Sign in to Chatsite")).to_be_visible()
    clean(visitor)


async def test_an_open_socket_outlives_its_token_by_refreshing_in_band(
    app_server: DaphneFactory, new_user: NewUser
) -> None:
    """With 4-second tokens the app refreshes in-band: one socket lives past several expiries and still chats."""
    server = app_server(AUTH_TOKEN_LIFETIME="4")
    await asyncio.to_thread(server.signup, "dave")
    visitor = await new_user(server, None)
    page = visitor.page
    sockets: list[WebSocket] = []
    refreshes: list[str] = []

    def on_socket(ws: WebSocket) -> None:
        sockets.append(ws)
        ws.on("framesent", lambda payload: refreshes.append(payload) if '"refreshToken"' in str(payload) else None)

    page.on("websocket", on_socket)
    await page.goto(f"{server.base_url}/app/")
    await page.get_by_label("Username").fill("dave")
    await page.get_by_label("Password").fill(DEMO_PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert")
    await expect(status(visitor).or_(alert)).to_be_visible()
    if await alert.count() and "does not sign in apps" in (await alert.text_content() or ""):
        pytest.skip("this server has no token API (POST /api/auth/token)")
    await expect(status(visitor)).to_have_attribute("data-state", "live")

    await eventually(lambda: len(refreshes) >= 3, seconds=20)  # about 6 s: three half-lives, past 4 s
    assert len(sockets) == 1, "the socket was replaced instead of refreshed"
    await expect(status(visitor)).to_have_attribute("data-state", "live")
    await say(visitor, "still here after three refreshes")
    await expect(own(visitor, "still here after three refreshes")).to_have_attribute("data-status", "sent")
    assert len(sockets) == 1
    clean(visitor)


async def test_the_sites_own_sign_in_page_signs_in_to_the_app_and_sign_out_ends_the_session(
    app_server: DaphneFactory, new_user: NewUser
) -> None:
    """From the app's login, the site's sign-in page returns to /app/ signed in; Sign out ends the session."""
    server = app_server()
    await asyncio.to_thread(server.signup, "erin")
    visitor = await new_user(server, None)
    page = visitor.page
    await page.goto(f"{server.base_url}/app/")
    await page.get_by_role("link", name="sign-in page").click()
    await page.locator("#id_username").fill("erin")
    await page.locator("#id_password").fill(DEMO_PASSWORD)
    await page.locator("#id_password").press("Enter")
    await expect(page).to_have_url(f"{server.base_url}/app/")
    await expect(status(visitor)).to_have_attribute("data-state", "live")
    await expect(page.get_by_test_id("username")).to_have_text("erin")

    await page.get_by_role("button", name="Sign out", exact=True).click()
    await expect(page.get_by_role("heading", name="Sign in to Chatsite")).to_be_visible()
    await page.reload()
    await expect(page.get_by_role("heading", name="Sign in to Chatsite")).to_be_visible()
    assert not [c for c in await visitor.context.cookies() if c["name"] == "sessionid"]
    clean(visitor)


@pytest.mark.parametrize("signed_in_by", ["session", "token"])
async def test_sign_out_everywhere_in_the_app_ends_the_users_other_sign_ins(
    app_server: DaphneFactory, new_user: NewUser, signed_in_by: str
) -> None:
    """The app's header has "Sign out everywhere", as the template's: pressed in the app (signed
    in by the site's session, or by the app's own form with a token), it signs the app out and
    ends the user's other sign-ins too: a template page elsewhere loses its session."""
    server = app_server()
    name = f"eve{signed_in_by[0]}"
    elsewhere = await new_user(server, name)  # signed up: a session in a browser of its own
    await elsewhere.page.goto(f"{server.base_url}/rooms/general/")
    await expect(elsewhere.page.locator("#status")).to_have_attribute("data-state", "live")
    if signed_in_by == "session":
        app = await new_user(server, None)
        await app.context.add_cookies(cookies_for(server, await asyncio.to_thread(server.login, name)))  # type: ignore[arg-type]
        await open_app(app, server)
    else:
        app = await new_user(server, None)
        await app.page.goto(f"{server.base_url}/app/")
        await app.page.get_by_label("Username").fill(name)
        await app.page.get_by_label("Password").fill(DEMO_PASSWORD)
        await app.page.get_by_role("button", name="Sign in").click()
        await expect(status(app)).to_have_attribute("data-state", "live")
    page = app.page
    await expect(page.get_by_test_id("username")).to_have_text(name)

    await page.get_by_role("button", name="Sign out everywhere").click()
    await expect(page.get_by_role("heading", name="Sign in to Chatsite")).to_be_visible()
    await page.reload()
    await expect(page.get_by_role("heading", name="Sign in to Chatsite")).to_be_visible()
    # The other browser's socket is closed (4401): its page goes to the sign-in page by itself,
    # and its session is over.
    await expect(elsewhere.page).to_have_url(re.compile(r"/accounts/login/"))
    await elsewhere.page.goto(f"{server.base_url}/rooms/general/")
    await expect(elsewhere.page).to_have_url(re.compile(r"/accounts/login/"))
    clean(app)


async def test_rooms_are_created_switched_and_counted_unread(app_server: DaphneFactory, new_user: NewUser) -> None:
    """A new room opens from the "+ New room" dialog; a room left in the background counts
    unread messages until opened."""
    server = app_server()
    alice = await new_user(server, "alice")
    bob = await new_user(server, "bob")
    await open_app(alice, server)
    await open_app(bob, server)
    page = alice.page

    await page.get_by_role("button", name="+ New room").click()
    await page.locator("#create-room-dialog").get_by_label("Name").fill("<i>Lunch</i> plans")
    await page.get_by_role("button", name="Create room").click()
    await expect(page.locator("#create-room-dialog")).to_have_count(0)
    await expect(page).to_have_url(re.compile(r"/app/#/rooms/i-lunch-i-plans-[a-z0-9]{6}$"))
    await expect(page.get_by_role("heading", name="<i>Lunch</i> plans")).to_be_visible()
    await expect(page.get_by_text("No messages yet. Say hello!")).to_be_visible()
    await say(alice, "in lunch")
    await expect(own(alice, "in lunch")).to_have_attribute("data-status", "sent")

    await say(bob, "one in general")
    await say(bob, "two in general")
    general = page.get_by_role("navigation", name="Rooms").get_by_role("link", name="General")
    await expect(general).to_contain_text("2 unread")
    await general.click()
    await expect(shown(alice)).to_have_text(["one in general", "two in general"])
    await expect(general).not_to_contain_text("unread")
    assert await page.locator("i").count() == 0
    clean(alice, bob)


async def test_a_message_typed_offline_survives_a_reload_and_goes_out_once(
    app_server: DaphneFactory, new_user: NewUser
) -> None:
    """Offline shows a bar and the composer still takes a message; a reload keeps it; back online it goes out once."""
    server = app_server()
    alice = await new_user(server, "alice")
    link = SocketLink()
    await alice.context.route_web_socket(WS_URL, link.serve)
    await open_app(alice, server)
    page = alice.page
    bar = page.get_by_test_id("offline-bar")
    await expect(bar).to_have_count(0)

    await link.cut()
    await expect(bar).to_be_visible()
    await expect(bar).to_contain_text("Offline")
    await say(alice, "written while offline")
    pending = page.locator('li[data-status="pending"]')
    await expect(pending).to_have_text(re.compile("written while offline"))
    await expect(page.locator("#composer-text")).to_be_enabled()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / "react-offline.png")

    await page.reload()
    await expect(bar).to_be_visible()
    await expect(pending).to_have_text(re.compile("written while offline"))
    assert len(await outbox_keys(page)) == 1
    assert link.sends("written while offline") == []

    link.down = False
    await page.evaluate("() => window.dispatchEvent(new Event('online'))")
    await expect(status(alice)).to_have_attribute("data-state", "live")
    await expect(bar).to_have_count(0)
    await expect(shown(alice)).to_have_text(["written while offline"])
    await expect(pending).to_have_count(0)
    await page.screenshot(path=SCREENSHOTS / "react-back-online.png")
    assert len(link.sends("written while offline")) == 1
    assert await outbox_keys(page) == []
    await page.reload()
    await expect(shown(alice)).to_have_text(["written while offline"])
    assert len(link.sends("written while offline")) == 1

    # Signing out forgets what this browser still holds.
    await link.cut()
    await say(alice, "never sent")
    await expect(pending).to_have_count(1)
    assert len(await outbox_keys(page)) == 1
    await page.get_by_role("button", name="Sign out", exact=True).click()
    await expect(page.get_by_role("heading", name="Sign in to Chatsite")).to_be_visible()
    assert await outbox_keys(page) == []
    clean(alice)


async def test_edits_and_removals_arriving_as_room_events_show_in_place(
    app_server: DaphneFactory, new_user: NewUser
) -> None:
    """A messageEdited and a v2 messageRemoved update their messages in place; a duplicate of either changes nothing."""
    server = app_server()
    alice = await new_user(server, "alice")
    bob = await new_user(server, "bob")
    link = SocketLink()
    await bob.context.route_web_socket(WS_URL, link.serve)
    await open_app(alice, server)
    await open_app(bob, server)
    for text in ("first", "second", "third"):
        await say(alice, text)
    await expect(shown(bob)).to_have_text(["first", "second", "third"])

    link.edit_and_remove("general", edit="first", remove="second")
    await expect(shown(bob)).to_have_text(["first, edited (edited)", "Message deleted", "third"])
    await expect(bob.page.locator("li.message.removed .report")).to_have_count(0)
    link.edit_and_remove("general", edit="third", remove="first")  # seqs taken already: dropped
    await say(alice, "after")  # the server's seq 4 is behind the injected events: a duplicate, dropped too
    await eventually(lambda: any(f.get("message") == "after" for f in link.received))
    await expect(shown(alice)).to_have_count(4)
    assert await shown(bob).all_text_contents() == ["first, edited (edited)", "Message deleted", "third"]
    clean(alice, bob)
