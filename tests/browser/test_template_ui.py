"""The template UI in a real browser against a real daphne process.

Every test drives Chromium the way a user would: signed-in contexts (one cookie jar per
user), the room page's own WebSocket, the keyboard. See tests/browser/conftest.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.conftest import (
    SCREENSHOTS,
    BrowserUser,
    NewUser,
    SocketLink,
    outbox_keys,
    skip_reason,
    timeout_ms,
)
from tests.fixtures.servers import DEMO_PASSWORD, DaphneServer, base_env

if TYPE_CHECKING:
    from playwright.async_api import Locator, WebSocket, WebSocketRoute

_reason = skip_reason()
pytestmark = [
    pytest.mark.skipif(_reason is not None, reason=_reason or ""),
    pytest.mark.asyncio(loop_scope="module"),
]
if _reason is None:
    from playwright.async_api import expect

DaphneFactory = Callable[..., DaphneServer]
Frame = dict[str, Any]
WS_URL = re.compile(r"/ws/$")

# Each one has broken a chat app somewhere. They must arrive as text and nothing else.
XSS_PAYLOADS = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(2)</script>",
    '<a href="javascript:alert(3)">click me</a>',
    "javascript:alert(4)",
    "<svg onload=alert(5)>",
    '<iframe src="javascript:alert(6)"></iframe>',
    "<details open ontoggle=alert(7)>",
    '"><img src=x onerror="window.__xss=8">',
    "<b onmouseover=alert(9)>bold</b>",
    "<style>body{display:none}</style>",
    "</textarea><script>window.__xss=10</script>",
    "{{ 7|add:7 }} ${alert(11)} &lt;b&gt;",
]
INJECTED = "img, script, svg, iframe, a, details, b, style, textarea"
# The protocol client (static/chat/core/client.js) caps its reconnect backoff at 10 s.
BACKOFF_CAP_MS = 10_000


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory, migrated_db: Path) -> Iterator[DaphneServer]:
    """One daphne on the embedded default for the tests that neither restart it nor change its settings.

    Those tests keep apart by using their own users and rooms; the others start their own server.
    """
    data_dir = tmp_path_factory.mktemp("daphne-shared")
    shutil.copy(migrated_db, data_dir / "db.sqlite3")
    server = DaphneServer(data_dir, base_env(data_dir)).start()
    yield server
    server.stop()


async def create_room(user: BrowserUser, server: DaphneServer, name: str, *, private: bool = False) -> str:
    """Create a room by its name in the room list's "make a new room" dialog (the sidebar's
    "+ New room"), which opens it; its id (the name's slug and the tail the server draws)."""
    page = user.page
    await page.goto(server.base_url + "/")
    # The dialog creates the room over the socket: sent before it is up, it would say
    # "Not connected: try again in a moment.", as a person would be told.
    await expect(page.locator("#status")).to_have_attribute("data-state", "live")
    await page.get_by_role("button", name="make a new room").click()
    dialog = page.locator("#create-room-dialog")
    await dialog.get_by_label("Name").fill(name)
    if private:
        await dialog.get_by_label("Private").check()
    await dialog.get_by_role("button", name="Create room").click()
    await expect(page).to_have_url(re.compile(r"/rooms/[a-z0-9][a-z0-9_-]*/$"))
    await expect(page.locator("#room-name")).to_have_text(name)
    await expect(page.locator("#status")).to_have_attribute("data-state", "live")
    return page.url.rstrip("/").rsplit("/", 1)[1]


async def open_room(user: BrowserUser, server: DaphneServer, room_id: str = "general") -> None:
    await user.page.goto(f"{server.base_url}/rooms/{room_id}/")
    await expect(user.page.locator("#status")).to_have_attribute("data-state", "live")


async def say(user: BrowserUser, text: str) -> None:
    box = user.page.locator("#message-input")
    await box.fill(text)
    await box.press("Enter")


def lines(user: BrowserUser) -> Locator:
    """The text of every message line the user sees, in order."""
    return user.page.locator("#messages li.msg .text")


def line(user: BrowserUser, text: str) -> Locator:
    """The message line whose text is exactly `text`."""
    return user.page.locator("#messages li.msg").filter(has=user.page.get_by_text(text, exact=True))


async def control_time(user: BrowserUser) -> None:
    """Before the page loads: a clock the test can jump, and jitter that always draws its worst case.

    Timers still run in real time; `skip_backoff` then proves the reconnect is due within the cap
    whatever the random draw, instead of waiting it out.
    """
    await user.context.clock.install()
    await user.context.add_init_script("Math.random = () => 0.999999;")


async def skip_backoff(user: BrowserUser) -> None:
    """Jump the page's clock to the backoff cap: a reconnect scheduled within the cap fires now.

    Only once the page is waiting on its backoff timer ("Reconnecting in N s"), or needs no jump
    (live, stopped, or gone to another page). A page caught mid-attempt would otherwise let the
    jump pass with no timer to fire: an attempt begun just before the server was back fails after
    the jump, and its next wait, up to the cap, then runs out in real time, as long as the test's
    own wait (the root cause of a flaky restart test).
    """
    state = """() => {
        const status = document.querySelector('#status');
        if (!status || ['live', 'stopped', 'banned'].includes(status.dataset.state)) return 'settled';
        if (status.dataset.state !== 'offline') return '';
        const detail = document.querySelector('#offline-detail');
        return detail && /in \\d+ s$/.test(detail.textContent) ? 'waiting' : '';
    }"""
    deadline = asyncio.get_running_loop().time() + timeout_ms(10) / 1000
    while True:
        try:
            seen = await user.page.evaluate(state)
        except Exception:  # the page navigated away (to sign-in): nothing to jump
            return
        if seen == "settled":
            return
        if seen == "waiting":
            await user.page.clock.fast_forward(BACKOFF_CAP_MS)
            return
        assert asyncio.get_running_loop().time() < deadline, "the page neither reconnected nor waited to"
        await asyncio.sleep(0.05)


async def eventually(predicate: Callable[[], bool], seconds: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_ms(seconds) / 1000
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_a_visitor_signs_up_creates_a_room_and_signs_out(shared_server: DaphneServer, new_user: NewUser) -> None:
    """Sign-up lands on the room list; a new room opens live with its name as text; sign-out ends the session."""
    server = shared_server
    user = await new_user(server, None)
    page = user.page
    await page.goto(server.base_url + "/")
    await expect(page).to_have_url(re.compile(r"/accounts/login/"))
    await page.get_by_role("link", name="Sign up").first.click()
    await page.get_by_label("Username").fill("dana")
    await page.locator("#id_password1").fill(DEMO_PASSWORD)
    await page.locator("#id_password2").fill(DEMO_PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("heading", name="Rooms")).to_be_visible()
    await expect(page.locator(".who")).to_contain_text("dana")

    await expect(page.locator("#status")).to_have_attribute("data-state", "live")  # the dialog needs the socket
    await page.get_by_role("button", name="+ New room").click()
    await page.locator("#create-room-dialog").get_by_label("Name").fill("<img src=x onerror=alert(1)> Books")
    await page.get_by_role("button", name="Create room").click()
    await expect(page).to_have_url(re.compile(r"/rooms/img-src-x-onerror-alert-1-books-[a-z0-9]{6}/$"))
    book_club = page.url
    await expect(page.get_by_role("heading", level=1)).to_contain_text("<img src=x onerror=alert(1)> Books")
    await expect(page.locator("#status")).to_have_attribute("data-state", "live")
    assert await page.locator("img").count() == 0

    await page.get_by_role("button", name="Sign out", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/accounts/login/"))
    await page.goto(book_club)
    await expect(page).to_have_url(re.compile(r"/accounts/login/\?next="))
    assert user.dialogs == [] and user.page_errors == []


async def test_two_users_chat_live_in_a_room(shared_server: DaphneServer, new_user: NewUser) -> None:
    """Two users see each other's messages live; Enter sends, Shift+Enter breaks a line, your own turn sent."""
    server = shared_server
    alice = await new_user(server, "alice")
    bob = await new_user(server, "bob", viewport_width=390)  # a phone
    live_chat = await create_room(alice, server, "live-chat")
    await open_room(bob, server, live_chat)

    await say(alice, "hi bob")
    await expect(lines(bob)).to_have_text(["hi bob"])
    await expect(line(bob, "hi bob").locator(".author")).to_have_text("alice")
    await expect(line(alice, "hi bob")).to_have_attribute("data-state", "sent")

    box = bob.page.locator("#message-input")
    send = bob.page.locator("#composer button[type=submit]")
    await expect(send).to_be_disabled()  # nothing to send: Send is not offered (as in the React app)
    await box.press_sequentially("   ")
    await expect(send).to_be_disabled()
    await box.fill("")
    await box.press_sequentially("two")
    await expect(send).to_be_enabled()
    await box.press("Shift+Enter")
    await box.press_sequentially("lines")
    await box.press("Enter")
    await expect(lines(alice)).to_have_count(2)
    assert await lines(alice).all_text_contents() == ["hi bob", "two\nlines"]
    await expect(box).to_have_value("")
    await expect(send).to_be_disabled()
    await expect(line(bob, "two\nlines")).to_have_attribute("data-state", "sent")
    await box.fill("by the button")
    await send.click()
    await expect(lines(alice)).to_have_count(3)
    await expect(line(bob, "by the button")).to_have_attribute("data-state", "sent")
    assert alice.page_errors == [] and bob.page_errors == []


async def test_a_reload_shows_history_and_older_pages_load_on_demand(
    daphne_factory: DaphneFactory, new_user: NewUser
) -> None:
    """After a reload the latest page is back; "Load older" (by keyboard) brings the rest, then hides."""
    server = daphne_factory(CHAT_HISTORY_PAGE="3")
    alice = await new_user(server, "alice")
    await open_room(alice, server)
    texts = [f"message {n}" for n in range(1, 6)]
    for text in texts:
        await say(alice, text)
    await expect(alice.page.locator('#messages li.msg[data-state="sent"]')).to_have_count(len(texts))

    await alice.page.reload()
    await expect(alice.page.locator("#status")).to_have_attribute("data-state", "live")
    await expect(lines(alice)).to_have_text(texts[-3:])
    older = alice.page.get_by_role("button", name="Load older messages")
    await older.focus()
    await alice.page.keyboard.press("Enter")
    await expect(lines(alice)).to_have_text(texts)
    await expect(alice.page.locator("#load-older")).to_be_hidden()


async def test_every_message_shows_once_across_a_server_restart(
    daphne_factory: DaphneFactory, new_user: NewUser
) -> None:
    """Across a restart two users see every message once, one typed while down too; a signed-out one must sign in."""
    server = daphne_factory()
    alice = await new_user(server, "alice")
    bob = await new_user(server, "bob")
    carol = await new_user(server, "carol")
    for user in (alice, bob, carol):
        await control_time(user)
        await open_room(user, server)
    await say(alice, "before the restart")
    await expect(lines(bob)).to_have_text(["before the restart"])
    await say(bob, "me too")
    await expect(lines(alice)).to_have_text(["before the restart", "me too"])
    # Carol's session ends elsewhere (the sign-out form, posted with her browser's cookies):
    # her room page's socket is closed with 4401. Posted through the context's request API,
    # not a second tab: a tab on this context's fake clock raced its own 4401 redirect against
    # the form's navigation and, on a busy machine, never finished either.
    csrf = next(c["value"] for c in await carol.context.cookies() if c["name"] == "csrftoken")
    signed_out = await carol.context.request.post(
        server.base_url + "/accounts/logout/",
        headers={"X-CSRFToken": csrf, "Referer": server.base_url + "/"},
        max_redirects=0,
    )
    assert signed_out.status == 302
    # Closed with 4401, her page goes to sign-in and will come back to the room. Awaited before
    # the stop: a sign-in page still loading when the server stopped showed Chromium's
    # "refused to connect" instead (seen on a busy machine).
    await expect(carol.page).to_have_url(re.compile(r"/accounts/login/\?next=%2Frooms%2Fgeneral%2F$"))
    await carol.page.wait_for_load_state()

    await asyncio.to_thread(server.stop)
    for user in (alice, bob):
        await expect(user.page.locator("#status")).to_have_attribute("data-state", "offline")
        await expect(user.page.locator("#status")).to_contain_text("reconnecting")
    await say(alice, "typed while the server was down")
    await expect(line(alice, "typed while the server was down")).to_have_attribute("data-state", "pending")

    await asyncio.to_thread(server.start)
    for user in (alice, bob):
        await skip_backoff(user)
    await expect(line(alice, "typed while the server was down")).to_have_attribute("data-state", "sent")
    await expect(bob.page.locator("#status")).to_have_attribute("data-state", "live")
    await say(bob, "after the restart")
    expected = ["before the restart", "me too", "typed while the server was down", "after the restart"]
    for user in (alice, bob):
        await expect(lines(user)).to_have_text(expected)
        assert await lines(user).all_text_contents() == expected
        assert user.page_errors == []
    await expect(carol.page).to_have_url(re.compile(r"/accounts/login/\?next=%2Frooms%2Fgeneral%2F$"))


async def test_markup_in_messages_shows_as_text_and_never_runs(shared_server: DaphneServer, new_user: NewUser) -> None:
    """HTML and script sent as messages show as literal text to both users; nothing runs or becomes an element."""
    server = shared_server
    alice = await new_user(server, "xena")
    bob = await new_user(server, "yuri")
    xss = await create_room(alice, server, "xss")
    await open_room(bob, server, xss)
    for payload in XSS_PAYLOADS:
        await say(alice, payload)
    await expect(alice.page.locator('#messages li.msg[data-state="sent"]')).to_have_count(len(XSS_PAYLOADS))

    await bob.page.reload()  # the history path renders them too
    for user in (alice, bob):
        await expect(lines(user)).to_have_count(len(XSS_PAYLOADS))
        assert await lines(user).all_text_contents() == XSS_PAYLOADS
        assert await user.page.locator(f"#messages :is({INJECTED})").count() == 0
        assert await user.page.locator("img, svg, iframe, details").count() == 0
        assert await user.page.evaluate("() => window.__xss") is None
        assert user.dialogs == []


async def test_a_rejected_message_shows_failed_and_retry_resends_the_same_id(
    daphne_factory: DaphneFactory, new_user: NewUser
) -> None:
    """Text over the limit stays in the composer; a message the server rejects says why, Retry reuses its id."""
    server = daphne_factory(CHAT_MAX_MESSAGE_LENGTH="20")
    alice = await new_user(server, "alice")
    sent: list[dict[str, Any]] = []

    def watch(ws: WebSocket) -> None:
        ws.on("framesent", lambda payload: sent.append(json.loads(payload)))

    alice.page.on("websocket", watch)
    await open_room(alice, server)

    box = alice.page.locator("#message-input")
    await box.fill("x" * 21)  # the page knows the server's limit
    await box.press("Enter")
    await expect(alice.page.locator("#counter")).to_contain_text("too long")
    await expect(box).to_have_value("x" * 21)
    await expect(lines(alice)).to_have_count(0)

    # A page rendered before the limit was lowered (a deploy, a settings change) still
    # allows 4000 characters: the server is the one that says no. (An init script edits the
    # page before chat.js reads it; a routed response would be a synthetic document, which
    # Chromium's local-network checks forbid to open a loopback socket.)
    carol = await new_user(server, "carol")
    carol.page.on("websocket", watch)
    await carol.page.add_init_script(
        """new MutationObserver(() => {
            const app = document.getElementById("chat-app");
            if (app) app.dataset.maxLength = "4000";
        }).observe(document, {childList: true, subtree: true});"""
    )
    await open_room(carol, server)
    text = "longer than the server's twenty characters"
    await say(carol, text)
    failed = line(carol, text)
    await expect(failed).to_have_attribute("data-state", "failed")
    await expect(failed).to_contain_text("Not sent: This message is too long.")
    await expect(failed).to_have_attribute("data-code", "message_too_long")
    await failed.get_by_role("button", name="Retry").click()

    def sends() -> list[dict[str, Any]]:
        return [frame for frame in sent if frame.get("action") == "sendMessage"]

    await eventually(lambda: len(sends()) == 2)
    await expect(failed).to_have_attribute("data-state", "failed")
    first, second = sends()
    assert first["clientMessageId"] == second["clientMessageId"]
    await failed.get_by_role("button", name="Discard").click()
    await expect(lines(carol)).to_have_count(0)


async def test_lost_message_frames_are_refilled_and_a_long_gap_reloads_the_room(
    daphne_factory: DaphneFactory, new_user: NewUser
) -> None:
    """A hole in the seqs is refilled by joinRoom lastSeq; past the replay cap the room reloads; nothing shows twice."""
    server = daphne_factory(CHAT_REPLAY_CAP="2")
    alice = await new_user(server, "alice")
    bob = await new_user(server, "bob")
    dropped: set[int] = set()  # seqs of message frames that never reach bob's page
    to_bob: list[Frame] = []
    from_bob: list[Frame] = []

    def lossy(page_side: WebSocketRoute) -> None:
        server_side = page_side.connect_to_server()

        def down(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "message" and frame.get("seq") in dropped:
                return
            to_bob.append(frame)
            page_side.send(message)

        def up(message: str | bytes) -> None:
            from_bob.append(json.loads(message))
            server_side.send(message)

        server_side.on_message(down)
        page_side.on_message(up)

    await bob.context.route_web_socket(WS_URL, lossy)
    await open_room(alice, server)
    await open_room(bob, server)

    dropped.add(2)
    for text in ("one", "two", "three"):
        await say(alice, text)
    await expect(lines(bob)).to_have_text(["one", "two", "three"])
    assert {"action": "joinRoom", "roomId": "general", "lastSeq": 1} in from_bob

    dropped.update({4, 5, 6})  # four missed: more than the replay cap of two
    texts = ["one", "two", "three", "four", "five", "six", "seven"]
    for text in texts[3:]:
        await say(alice, text)
    await expect(lines(bob)).to_have_text(texts)
    assert {"action": "joinRoom", "roomId": "general", "lastSeq": 3} in from_bob
    assert any(f["type"] == "joined" and f["recovered"] is False for f in to_bob)
    assert await lines(bob).all_text_contents() == texts


@dataclass
class MockServer:
    """Stands in for the server on a user's sockets (Playwright routes them; nothing reaches daphne).

    It keeps the protocol's promises for room `general`: a send is stored once per
    clientMessageId, broadcast back and acked. A socket listed in `deaf` answers only its join,
    like a connection that died without the browser noticing. `errors` answer the next sends.
    """

    deaf: set[int] = field(default_factory=set)  # socket numbers, 1 for the first
    errors: list[Frame] = field(default_factory=list)
    sockets: list[WebSocketRoute] = field(default_factory=list)
    received: list[tuple[int, Frame]] = field(default_factory=list)  # (socket number, client frame)
    stored: list[Frame] = field(default_factory=list)
    user_id: str = ""  # whose sends these are, as the server would know from the session

    def serve(self, ws: WebSocketRoute) -> None:
        self.sockets.append(ws)
        number = len(self.sockets)

        def answer(message: str | bytes) -> None:
            frame = json.loads(message)
            self.received.append((number, frame))
            action = frame.get("action")
            if action == "joinRoom":
                after = frame.get("lastSeq") or 0
                missed = [m for m in self.stored if m["seq"] > after]
                joined = {"type": "joined", "roomId": "general", "lastSeq": len(self.stored), "recovered": True}
                ws.send(json.dumps({**joined, "messages": missed}))
            elif number in self.deaf:
                return
            elif action == "ping":
                ws.send(json.dumps({"type": "pong"}))
            elif action == "sendMessage" and self.errors:
                error = {**self.errors.pop(0), "action": "sendMessage", "clientMessageId": frame["clientMessageId"]}
                ws.send(json.dumps(error))
            elif action == "sendMessage":
                stored = self.store(frame)
                ws.send(json.dumps({"type": "message", **stored}))
                ack = {"type": "ack", **{k: stored[k] for k in ("roomId", "clientMessageId", "messageId", "seq")}}
                ws.send(json.dumps(ack))

        ws.on_message(answer)

    def store(self, frame: Frame) -> Frame:
        for message in self.stored:
            if message["clientMessageId"] == frame["clientMessageId"]:
                return message
        seq = len(self.stored) + 1
        message = {
            "roomId": "general",
            "messageId": f"mock-{seq}",
            "seq": seq,
            "userId": self.user_id,
            "username": "me",
            "message": frame["message"],
            "timestamp": "2026-11-26T07:00:00.000Z",
            "clientMessageId": frame["clientMessageId"],
        }
        self.stored.append(message)
        return message

    def pings(self) -> list[int]:
        """The socket number of every ping, in order."""
        return [number for number, frame in self.received if frame.get("action") == "ping"]

    def sends(self) -> list[tuple[int, str]]:
        """(socket number, clientMessageId) of every sendMessage, in order."""
        return [(n, f["clientMessageId"]) for n, f in self.received if f.get("action") == "sendMessage"]


async def mock_server(user: BrowserUser, **options: Any) -> MockServer:
    """Route `user`'s sockets to a MockServer; call before opening the page."""
    mock = MockServer(**options)
    await user.context.route_web_socket(WS_URL, mock.serve)
    return mock


async def open_mocked_room(user: BrowserUser, server: DaphneServer, mock: MockServer) -> None:
    await open_room(user, server)
    mock.user_id = await user.page.locator("#chat-app").get_attribute("data-user-id") or ""


async def test_a_silent_socket_is_replaced_after_a_missed_heartbeat(
    shared_server: DaphneServer, new_user: NewUser
) -> None:
    """The page pings every 25 s; a socket that does not answer within 10 s is dropped and a new one joins."""
    server = shared_server
    alice = await new_user(server, "hana")
    mock = await mock_server(alice, deaf={1})
    await control_time(alice)
    await open_mocked_room(alice, server, mock)
    status = alice.page.locator("#status")

    await alice.page.clock.fast_forward(24_000)
    await expect(status).to_have_attribute("data-state", "live")
    assert mock.pings() == []
    await alice.page.clock.fast_forward(1_000)
    await eventually(lambda: mock.pings() == [1])
    await alice.page.clock.fast_forward(9_000)
    await expect(status).to_have_attribute("data-state", "live")
    await alice.page.clock.fast_forward(1_000)
    await expect(status).not_to_have_attribute("data-state", "live")
    await skip_backoff(alice)
    await expect(status).to_have_attribute("data-state", "live")
    assert len(mock.sockets) == 2


async def test_a_banned_user_is_told_so_and_the_page_stops_reconnecting(
    shared_server: DaphneServer, new_user: NewUser
) -> None:
    """Close code 4403 shows a banned notice, disables the composer, and no reconnect follows."""
    server = shared_server
    alice = await new_user(server, "bert")
    mock = await mock_server(alice)
    await control_time(alice)
    await open_mocked_room(alice, server, mock)

    await mock.sockets[0].close(code=4403, reason="banned")
    status = alice.page.locator("#status")
    await expect(status).to_have_attribute("data-state", "banned")
    await expect(status).to_contain_text("Banned")
    await expect(alice.page.locator("#message-input")).to_be_disabled()
    await alice.page.clock.fast_forward(5 * BACKOFF_CAP_MS)
    await expect(status).to_have_attribute("data-state", "banned")
    assert len(mock.sockets) == 1


async def test_a_message_without_an_ack_shows_failed_then_is_resent_on_a_new_socket(
    shared_server: DaphneServer, new_user: NewUser
) -> None:
    """No ack within 15 s shows the message failed and probes the socket; the next socket sends it again, once."""
    server = shared_server
    alice = await new_user(server, "ines")
    mock = await mock_server(alice, deaf={1})
    await control_time(alice)
    await open_mocked_room(alice, server, mock)

    await say(alice, "into the void")
    message = line(alice, "into the void")
    await expect(message).to_have_attribute("data-state", "pending")
    await alice.page.clock.fast_forward(15_000)
    await expect(message).to_have_attribute("data-state", "failed")
    await expect(message).to_contain_text("Not sent: The server did not answer in time.")
    await eventually(lambda: mock.pings() == [1])  # checked at once, not at the next heartbeat
    await alice.page.clock.fast_forward(10_000)
    await expect(message).to_have_attribute("data-state", "pending")  # the socket is gone: waiting
    await skip_backoff(alice)
    await expect(message).to_have_attribute("data-state", "sent")
    (first_socket, first_id), (second_socket, second_id) = mock.sends()
    assert (first_socket, second_socket) == (1, 2) and first_id == second_id
    await expect(lines(alice)).to_have_text(["into the void"])


async def test_a_retryable_error_is_retried_after_the_servers_retry_after(
    shared_server: DaphneServer, new_user: NewUser
) -> None:
    """A send answered with a retryable error is sent again after retryAfter, with the same clientMessageId."""
    server = shared_server
    alice = await new_user(server, "rosa")
    unavailable = {
        "type": "error",
        "code": "storage_unavailable",
        "message": "storage is unavailable, retry shortly",
        "retryable": True,
        "retryAfter": 1.0,
    }
    mock = await mock_server(alice, errors=[unavailable])
    await control_time(alice)
    await open_mocked_room(alice, server, mock)

    await say(alice, "second time lucky")
    message = line(alice, "second time lucky")
    await expect(message).to_contain_text("The server is busy: trying again in")
    await expect(message).to_have_attribute("data-state", "pending")
    await alice.page.clock.fast_forward(1_000)
    await expect(message).to_have_attribute("data-state", "sent")
    (_, first_id), (_, second_id) = mock.sends()
    assert first_id == second_id


async def test_an_error_frame_is_shown_in_words_until_dismissed(shared_server: DaphneServer, new_user: NewUser) -> None:
    """An error that answers none of your messages appears as an alert in words (its code kept as data);
    the keyboard dismisses it."""
    server = shared_server
    alice = await new_user(server, "erin")
    mock = await mock_server(alice)
    await open_mocked_room(alice, server, mock)

    rate_limited = {"type": "error", "code": "rate_limited", "message": "<b>slow</b> down", "action": "history"}
    mock.sockets[0].send(json.dumps(rate_limited))
    notice = alice.page.get_by_role("alert")
    await expect(notice).to_contain_text("You are sending too fast.")
    assert "rate_limited" not in await notice.inner_text()
    await expect(notice).to_have_attribute("data-code", "rate_limited")
    await notice.get_by_role("button", name="Dismiss this notice").focus()
    await alice.page.keyboard.press("Enter")
    await expect(notice).to_be_hidden()
    await expect(alice.page.locator("#message-input")).to_be_focused()


async def test_a_message_typed_offline_survives_a_reload_and_goes_out_once(
    shared_server: DaphneServer, new_user: NewUser
) -> None:
    """Offline shows a bar and the composer still takes a message; a reload keeps it; back online it goes out once."""
    server = shared_server
    alice = await new_user(server, "olga")
    link = SocketLink()
    await alice.context.route_web_socket(WS_URL, link.serve)
    await create_room(alice, server, "offline-reload")
    page = alice.page
    bar = page.locator("#offline-bar")
    await expect(bar).to_be_hidden()

    await link.cut()
    await expect(bar).to_be_visible()
    await expect(bar).to_contain_text("Offline")
    await say(alice, "written while offline")
    waiting = line(alice, "written while offline")
    await expect(waiting).to_have_attribute("data-state", "pending")
    await expect(page.locator("#message-input")).to_be_enabled()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / "template-offline.png")

    await page.reload()
    await expect(bar).to_be_visible()
    await expect(waiting).to_have_attribute("data-state", "pending")
    await expect(waiting).to_contain_text("Waiting for connection")
    assert len(await outbox_keys(page)) == 1
    assert link.sends("written while offline") == []

    link.down = False
    await page.evaluate("() => window.dispatchEvent(new Event('online'))")
    await expect(bar).to_be_hidden()
    await expect(page.locator("#status")).to_have_attribute("data-state", "live")
    await expect(waiting).to_have_attribute("data-state", "sent")
    await page.screenshot(path=SCREENSHOTS / "template-back-online.png")
    assert len(link.sends("written while offline")) == 1
    assert await outbox_keys(page) == []
    await page.reload()
    await expect(lines(alice)).to_have_text(["written while offline"])
    assert len(link.sends("written while offline")) == 1

    # Signing out forgets what this browser still holds.
    await link.cut()
    await say(alice, "never sent")
    await expect(line(alice, "never sent")).to_have_attribute("data-state", "pending")
    assert len(await outbox_keys(page)) == 1
    await page.get_by_role("button", name="Sign out", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/accounts/login/"))
    assert await outbox_keys(page) == []
    assert alice.page_errors == []


async def test_edits_and_removals_arriving_as_room_events_show_in_place(
    shared_server: DaphneServer, new_user: NewUser
) -> None:
    """A messageEdited and a v2 messageRemoved update their lines in place; a duplicate of either changes nothing."""
    server = shared_server
    alice = await new_user(server, "petra")
    bob = await new_user(server, "quinn")
    link = SocketLink()
    await bob.context.route_web_socket(WS_URL, link.serve)
    edits = await create_room(alice, server, "edits")
    await open_room(bob, server, edits)
    for text in ("first", "second", "third"):
        await say(alice, text)
    await expect(lines(bob)).to_have_text(["first", "second", "third"])

    link.edit_and_remove(edits, edit="first", remove="second")
    await expect(lines(bob)).to_have_text(["first, edited", "Message deleted", "third"])
    await expect(line(bob, "first, edited")).to_contain_text("(edited)")
    await line(bob, "Message deleted").locator(".msg-menu-button").click()
    await expect(bob.page.get_by_role("menu")).not_to_contain_text("Report")  # nothing left to report
    await bob.page.keyboard.press("Escape")
    link.edit_and_remove(edits, edit="third", remove="first")  # seqs taken already: dropped
    await say(alice, "after")  # the server's seq 4 is behind the injected events: a duplicate, dropped too
    await eventually(lambda: any(f.get("message") == "after" for f in link.received))
    await expect(lines(alice)).to_have_count(4)
    assert await lines(bob).all_text_contents() == ["first, edited", "Message deleted", "third"]
    assert bob.page_errors == []
