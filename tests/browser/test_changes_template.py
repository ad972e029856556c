"""The template UI's message changes in Chromium, two users: Markdown formatting (and the
XSS corpus through it), edit, delete, reactions, reply with its quote and thread; and in both
UIs, a jump to a quoted original far back that leaves no message out between it and the live end."""

from __future__ import annotations

import re
import sys

import pytest

from tests.browser.conftest import SCREENSHOTS, BrowserUser, NewUser, skip_reason
from tests.browser.test_presence_ui import UIS
from tests.browser.test_presence_ui import open_room as open_ui_room
from tests.browser.test_react_ui import DaphneFactory, react_build  # noqa: F401 - fixture
from tests.browser.test_template_ui import XSS_PAYLOADS, create_room, open_room, say, shared_server  # noqa: F401
from tests.fixtures import warm
from tests.fixtures.servers import ROOT, DaphneServer

_reason = skip_reason()
pytestmark = [
    pytest.mark.skipif(_reason is not None, reason=_reason or ""),
    pytest.mark.asyncio(loop_scope="module"),
]
if _reason is None:
    from playwright.async_api import expect

# Markdown that tries to become markup or script: the formatter must leave none of it.
MARKDOWN_XSS = [
    "[click](javascript:alert(1))",
    "![x](http://127.0.0.1/x.png)",
    "<a href='javascript:alert(2)'>**bold**</a>",
    "`<img src=x onerror=alert(3)>`",
    "```\n<script>alert(4)</script>\n```",
    "> <iframe src=javascript:alert(5)>",
    "javascript://www.example.com/%0aalert(6)",
    "www.example.com/<svg/onload=alert(7)>",
]
INJECTED = (
    "img, script, svg, iframe, details, style, textarea, object, embed, a[href^='javascript'], [onerror], [onload]"
)


def row(user: BrowserUser, text: str):  # type: ignore[no-untyped-def]
    return user.page.locator("#messages li.msg").filter(has_text=text).first


async def menu(user: BrowserUser, text: str, item: str) -> None:
    line = row(user, text)
    await line.hover()
    await line.locator(".msg-menu-button").click()
    await user.page.get_by_role("menuitem", name=item).click()


async def test_formatting_edit_react_reply_and_delete_between_two_users(
    shared_server: DaphneServer,  # noqa: F811
    new_user: NewUser,
) -> None:
    """Alice formats, edits and deletes; Bob reacts and replies; each sees the other's change live."""
    server = shared_server
    alice = await new_user(server, "alice-ch")
    bob = await new_user(server, "bob-ch")
    room = await create_room(alice, server, "changes-room")
    await open_room(bob, server, room)

    await say(alice, "**bold** _it_ ~~old~~ `code` see www.example.com")
    first = row(bob, "see www.example.com")
    await expect(first.locator(".text strong")).to_have_text("bold")
    await expect(first.locator(".text em")).to_have_text("it")
    await expect(first.locator(".text s")).to_have_text("old")
    await expect(first.locator(".text code")).to_have_text("code")
    link = first.locator(".text a")
    await expect(link).to_have_attribute("href", "https://www.example.com/")
    await expect(link).to_have_attribute("target", "_blank")
    await expect(link).to_have_attribute("rel", re.compile(r"^noopener noreferrer\b"))

    # Bob reacts; Alice sees the chip and adds hers by clicking it.
    await menu(bob, "see www.example.com", "React…")
    await bob.page.locator("#reaction-picker").get_by_role("button", name="👍").click()
    chip = row(alice, "see www.example.com").locator(".reaction")
    await expect(chip).to_have_text("👍 1")
    await chip.click()
    await expect(row(bob, "see www.example.com").locator(".reaction")).to_have_text("👍 2")
    await expect(row(alice, "see www.example.com").locator(".reaction")).to_have_attribute("aria-pressed", "true")

    # Alice edits: Bob sees the new text, marked edited.
    await menu(alice, "see www.example.com", "Edit")
    editor = alice.page.locator(".edit-input")
    await editor.fill("**bold** and fixed")
    await editor.press("Enter")
    edited = row(bob, "and fixed")
    await expect(edited.locator(".edited-mark")).to_have_text("(edited)")
    await expect(edited.locator(".text strong")).to_have_text("bold")

    # Bob replies: Alice sees the quote, "1 reply" under the original, and the thread.
    await menu(bob, "and fixed", "Reply")
    await expect(bob.page.locator("#reply-bar")).to_be_visible()
    await say(bob, "count me in")
    reply = row(alice, "count me in")
    await expect(reply.locator(".reply-quote")).to_contain_text("alice-ch: **bold** and fixed")
    await expect(row(alice, "and fixed").locator(".replies-link")).to_have_text("1 reply")
    await row(alice, "and fixed").locator(".replies-link").click()
    await expect(alice.page.locator("#thread-dialog .thread-list li")).to_have_count(2)
    await alice.page.screenshot(path=str(SCREENSHOTS / "changes-template-thread.png"))
    await alice.page.locator("#thread-dialog").get_by_role("button", name="Close").click()
    await reply.locator(".reply-quote").click()
    await expect(row(alice, "and fixed")).to_be_focused()  # the jump lands on the original

    # Alice deletes: a tombstone for both, and the reply's quote shows the removal.
    await menu(alice, "and fixed", "Delete")
    await row(alice, "and fixed").get_by_role("button", name="Delete", exact=True).click()
    await expect(bob.page.locator("#messages li.msg.removed .text")).to_have_text("Message deleted")
    await bob.page.reload()
    await expect(bob.page.locator("#status")).to_have_attribute("data-state", "live")
    await expect(row(bob, "count me in").locator(".reply-quote")).to_contain_text("Message removed")
    await bob.page.screenshot(path=str(SCREENSHOTS / "changes-template-bob.png"))
    assert alice.page_errors == [] and bob.page_errors == []


async def test_the_xss_corpus_through_markdown_stays_text(
    shared_server: DaphneServer,  # noqa: F811
    new_user: NewUser,
) -> None:
    """Every payload, plain or wrapped in Markdown, arrives with no element, handler or script of its own."""
    server = shared_server
    alice = await new_user(server, "alice-xss")
    bob = await new_user(server, "bob-xss")
    room = await create_room(alice, server, "xss-md")
    await open_room(bob, server, room)
    for payload in [*XSS_PAYLOADS, *MARKDOWN_XSS]:
        await say(alice, payload)
    await expect(bob.page.locator("#messages li.msg")).to_have_count(len(XSS_PAYLOADS) + len(MARKDOWN_XSS))
    messages = bob.page.locator("#messages")
    assert await messages.locator(INJECTED).count() == 0
    hrefs = await messages.locator("a[href]").evaluate_all("els => els.map(e => e.getAttribute('href'))")
    assert all(h.startswith(("http://", "https://")) for h in hrefs), hrefs
    assert await bob.page.evaluate("window.__xss") is None
    assert bob.dialogs == [] and bob.page_errors == []


JUMP_ROOM = "far-back"
FILLERS = 50
JUMP_PAGE = 10  # the server's history page and largest page: five of them lie between the original and the live end

FAR_BACK_SEED = f"""
from datetime import UTC, datetime
from chat import services
from chat.records import ReplyRef
from chat.storage import get_store
from chat.storage.base import NewMessage

store = get_store()
services.room_create(room_id={JUMP_ROOM!r}, name="Far back")

def new(text, reply_to=None):
    return NewMessage(room_id={JUMP_ROOM!r}, user_id="0", username="seed", text=text, connection_id="seed",
                      client_message_id=None, timestamp=datetime.now(UTC), ttl_seconds=86400, reply_to=reply_to)

root = store.append_message(new("the original far back")).message
for n in range({FILLERS}):
    store.append_message(new(f"filler {{n:02d}}"))
store.append_message(new("a reply to it", ReplyRef(root.message_id, root.seq, "seed", root.text)))
"""


def seed_far_back(server: DaphneServer) -> None:
    """The original, the fillers and the reply, written to the server's store directly."""
    command = [sys.executable, "manage.py", "shell", "-c", FAR_BACK_SEED]
    warm.run(command, cwd=ROOT, env=server.env, check=True, capture_output=True, timeout=120)


@pytest.mark.parametrize("ui", list(UIS.values()), ids=list(UIS))
async def test_a_jump_to_an_original_far_back_leaves_no_message_out(
    ui: dict[str, str],
    react_build: object,  # noqa: F811 - the fixture: the React app is built
    daphne_factory: DaphneFactory,
    new_user: NewUser,
) -> None:
    """Clicking the quote of a reply loads the original and every message up to the live end."""
    server = daphne_factory(CHAT_HISTORY_PAGE=str(JUMP_PAGE), CHAT_HISTORY_MAX_PAGE=str(JUMP_PAGE))
    seed_far_back(server)
    reader = await new_user(server, "reader")
    await open_ui_room(reader, server, ui, JUMP_ROOM)
    lines = reader.page.locator(ui["line"])
    await expect(lines).to_have_count(JUMP_PAGE)  # the latest page: the reply and the last fillers
    await lines.filter(has_text="a reply to it").locator(".reply-quote").click()
    original = lines.filter(has=reader.page.locator(".text", has_text="the original far back"))
    await expect(original).to_be_focused()
    await expect(lines).to_have_count(FILLERS + 2)
    texts = await lines.locator(".text").all_inner_texts()
    assert texts == ["the original far back", *[f"filler {n:02d}" for n in range(FILLERS)], "a reply to it"]
    assert reader.page_errors == []
