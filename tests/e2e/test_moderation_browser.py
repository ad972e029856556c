"""Moderation as a user sees it in the template UI (Debian's Chromium): Report in the message menu,
a message a moderator hides disappearing live, and the room's slow mode and archive shown.

The moderator works in Django admin over HTTP, as in tests/e2e/test_moderation.py; the
moderator is a superuser made with `manage.py createsuperuser`, as an operator would.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.conftest import NewUser, browser, new_user, skip_reason  # noqa: F401 - fixtures
from tests.e2e.client import ChatClient
from tests.e2e.test_moderation import Admin
from tests.fixtures import warm
from tests.fixtures.servers import DEMO_PASSWORD, ROOT, DaphneServer, base_env

_reason = skip_reason()
pytestmark = [
    pytest.mark.skipif(_reason is not None, reason=_reason or ""),
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(120),
]
if _reason is None:
    from playwright.async_api import expect


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, migrated_db: Path) -> Iterator[DaphneServer]:
    data_dir = tmp_path_factory.mktemp("moderation-ui")
    shutil.copy(migrated_db, data_dir / "db.sqlite3")
    warm.run(
        [sys.executable, "manage.py", "createsuperuser", "--noinput", "--username", "root", "--email", "r@x.test"],
        cwd=ROOT,
        env=base_env(data_dir, DJANGO_SUPERUSER_PASSWORD=DEMO_PASSWORD),
        check=True,
        capture_output=True,
    )
    daphne = DaphneServer(data_dir, base_env(data_dir)).start()
    yield daphne
    daphne.stop()


async def test_a_user_reports_and_sees_moderation_live_in_the_page(
    server: DaphneServer,
    new_user: NewUser,  # noqa: F811 - the fixture imported above
) -> None:
    """alice reports bob's message from its message menu; hidden in admin, it turns into a tombstone in her
    open page; slow mode and the archive show above the composer, and an archived room disables it."""
    admin = Admin(server.base_url, server.login("root"))
    room = admin.new_room()
    alice = await new_user(server, "alice")
    await alice.page.goto(f"{server.base_url}/rooms/{room}/")
    await expect(alice.page.locator("#status")).to_have_attribute("data-state", "live")

    bob = await ChatClient.connect(server.ws_url, cookie=server.signup("bob"), origin=server.origin)
    sent = await bob.send_message(room, "buy cheap pills")
    line = alice.page.locator(f'#messages li.msg[data-message-id="{sent["messageId"]}"]')
    await expect(line.locator(".text")).to_have_text("buy cheap pills")
    await line.get_by_role("button", name="Actions for this message from bob").click()
    await alice.page.get_by_role("menuitem", name="Report…").click()
    dialog = alice.page.get_by_role("dialog", name="Report this message")
    await dialog.get_by_label("Something else").check()
    await dialog.get_by_label("Details (optional)").fill("selling pills")  # the reason she types
    await dialog.get_by_role("button", name="Send report").click()
    await expect(alice.page.locator("#notice-text")).to_contain_text("moderators will look")
    await expect(line.locator(".reported-mark")).to_have_text("Reported")
    assert "selling pills" in admin.get("/admin/chat/report/?status__exact=open")

    admin.act(
        f"/admin/moderation/rooms/{room}/", op="messages", removal="hide", message_id=sent["messageId"], reason="spam"
    )
    await expect(line).to_have_class("msg removed")
    await expect(line.locator(".text")).to_have_text("Message removed by a moderator")
    await line.get_by_role("button", name="Actions for this message from bob").click()
    await expect(alice.page.get_by_role("menu")).to_contain_text("No actions for this message")
    await alice.page.keyboard.press("Escape")

    admin.act(f"/admin/moderation/rooms/{room}/", op="settings", name=room, slow_mode_seconds=30, reason="calm")
    await expect(alice.page.locator("#room-state")).to_have_text("Slow mode: one message every 30 s.")
    admin.act(f"/admin/moderation/rooms/{room}/", op="archive", reason="over")
    await expect(alice.page.locator("#room-state")).to_have_text("Archived: this room takes no new messages.")
    await expect(alice.page.locator("#message-input")).to_be_disabled()
    assert alice.page_errors == []
    await bob.close()
