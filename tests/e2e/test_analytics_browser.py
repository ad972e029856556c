"""The dashboard as a staff member sees it (Debian's Chromium): real figures after real chat
through a daphne process, on either storage backend and across a restart of the process,
the live tiles updating without a reload, and no CSP violation.

A screenshot goes to var/analytics-dashboard.png (not committed) for a person to look at.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.conftest import NewUser, browser, cookies_for, new_user, skip_reason  # noqa: F401 - fixtures
from tests.e2e.client import ChatClient
from tests.e2e.test_moderation import dynamodb_tables
from tests.fixtures import warm
from tests.fixtures.aws import MotoServer
from tests.fixtures.servers import DEMO_PASSWORD, ROOT, DaphneServer, base_env

_reason = skip_reason()
pytestmark = [
    pytest.mark.skipif(_reason is not None, reason=_reason or ""),
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(180),
]
if _reason is None:
    from playwright.async_api import Browser, Dialog, expect

SCREENSHOT = ROOT / "var" / "analytics-dashboard.png"


@pytest.fixture(scope="module", params=["local", "dynamodb"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, migrated_db: Path
) -> Iterator[DaphneServer]:
    """Messages in Django's database or in DynamoDB (moto); the rollups in Django's either way."""
    # A stable instance id, as the systemd unit sets: the restarted process sweeps its previous life's rows.
    extra: dict[str, str] = {"CHAT_INSTANCE_ID": f"analytics-ui-{request.param}"}
    if request.param == "dynamodb":
        moto: MotoServer = request.getfixturevalue("moto_server")
        extra.update({**moto.env, **dynamodb_tables(moto)})
    data_dir = tmp_path_factory.mktemp("analytics-ui")
    shutil.copy(migrated_db, data_dir / "db.sqlite3")
    warm.run(
        [sys.executable, "manage.py", "createsuperuser", "--noinput", "--username", "root", "--email", "r@x.test"],
        cwd=ROOT,
        env=base_env(data_dir, DJANGO_SUPERUSER_PASSWORD=DEMO_PASSWORD),
        check=True,
        capture_output=True,
    )
    daphne = DaphneServer(data_dir, base_env(data_dir, **extra)).start()
    yield daphne
    daphne.stop()


async def test_the_dashboard_shows_real_figures_and_updates_live(
    server: DaphneServer,
    new_user: NewUser,  # noqa: F811 - the fixture imported above
) -> None:
    """Two users chat (7 messages); the process restarts; after rollup_analytics the dashboard shows them, and
    a third socket opening shows up in the live tiles without a page reload; the strict CSP blocks nothing."""
    cookies = {name: server.signup(name) for name in ("alice", "bob")}
    alice = await ChatClient.connect(server.ws_url, cookie=cookies["alice"], origin=server.origin)
    bob = await ChatClient.connect(server.ws_url, cookie=cookies["bob"], origin=server.origin)
    carol = None
    try:
        for client in (alice, bob):
            await client.join("general")
        for n in range(4):
            await alice.send_message("general", f"hello {n}")
        for n in range(3):
            await bob.send_message("general", f"hi {n}")
        # The counts were written as the messages were stored: a restart loses none of them. (SIGTERM: the
        # process closes its sockets with 1001 and deletes their rows before it exits.)
        server.restart()
        for client in (alice, bob):
            await client.close()
        alice = await ChatClient.connect(server.ws_url, cookie=cookies["alice"], origin=server.origin)
        bob = await ChatClient.connect(server.ws_url, cookie=cookies["bob"], origin=server.origin)
        warm.run(
            [sys.executable, "manage.py", "rollup_analytics"],
            cwd=ROOT,
            env=server.env,
            check=True,
            capture_output=True,
        )

        staff = await new_user(server, None, viewport_width=1366)
        await staff.context.add_cookies(cookies_for(server, server.login("root")))  # type: ignore[arg-type]
        console: list[str] = []
        staff.page.on("console", lambda message: console.append(message.text))
        await staff.page.goto(f"{server.base_url}/admin/?days=7")
        page = staff.page
        await expect(page.locator("#live-sockets")).to_have_text("2")
        await expect(page.locator("#live-users")).to_have_text("2")
        await expect(page.locator("#dau")).to_have_text("2")  # alice and bob: sockets open, messages sent
        await expect(page.locator("#wau")).to_have_text("2")  # from rollup_analytics
        today_messages = page.locator("#chart-messages tbody tr").last
        await expect(today_messages.locator("td")).to_have_text("7")
        await expect(page.locator("#chart-rooms tbody tr").first).to_contain_text("general")
        await expect(page.locator("#chart-messages svg rect.bar")).to_have_count(7)
        assert "hello 0" not in await page.content()  # counts, never message text

        updates = int(await page.locator("#analytics").get_attribute("data-live-updates") or "0")
        carol = await ChatClient.connect(server.ws_url, cookie=server.signup("carol"), origin=server.origin)
        await expect(page.locator("#live-sockets")).to_have_text("3", timeout=20_000)  # polled, no reload
        await expect(page.locator("#live-users")).to_have_text("3")
        assert int(await page.locator("#analytics").get_attribute("data-live-updates") or "0") > updates
        await expect(page.locator("#live-state")).to_contain_text("live, updated")

        csv = await page.request.get(f"{server.base_url}/admin/analytics/csv/messages/?days=7")
        assert csv.ok and (await csv.text()).strip().splitlines()[-1].endswith(",7")
        SCREENSHOT.parent.mkdir(exist_ok=True)
        await page.screenshot(path=str(SCREENSHOT), full_page=True)
        assert not [line for line in console if "Content Security Policy" in line], console
        assert staff.page_errors == []
    finally:
        for client in (alice, bob, carol):
            if client is not None:
                await client.close()


async def test_moderation_pages_fit_a_laptop_and_destructive_actions_ask_first(
    server: DaphneServer,
    browser: Browser,  # noqa: F811 - the fixture imported above
) -> None:
    """On a 1366 px screen the room page has no sideways scroll, a timestamp stays on one line and the settings
    form is laid out; Ban asks "Ban mallory …" first, and a dismissed question bans nobody."""
    mallory = await ChatClient.connect(server.ws_url, cookie=server.signup("mallory"), origin=server.origin)
    try:
        await mallory.join("general")
        await mallory.send_message("general", "x" * 400 + " and a long line " * 20)
    finally:
        await mallory.close()
    context = await browser.new_context(viewport={"width": 1366, "height": 768})
    try:
        await context.add_cookies(cookies_for(server, server.login("root")))  # type: ignore[arg-type]
        page = await context.new_page()
        await page.goto(f"{server.base_url}/admin/moderation/rooms/general/")
        assert await page.evaluate("document.documentElement.scrollWidth") <= 1366
        time_cell = page.locator("#messages tbody tr time").first
        box = await time_cell.bounding_box()
        line = await time_cell.evaluate("e => parseFloat(getComputedStyle(e).lineHeight) || 16")
        assert box is not None and box["height"] < 1.5 * line  # one line, not three
        await expect(page.locator("#settings fieldset.aligned .form-row")).to_have_count(5)
        await page.screenshot(path=str(SCREENSHOT.with_name("moderation-room.png")), full_page=True)

        asked: list[str] = []
        answer = {"accept": False}

        async def on_dialog(dialog: Dialog) -> None:
            asked.append(dialog.message)
            await (dialog.accept() if answer["accept"] else dialog.dismiss())

        page.on("dialog", on_dialog)
        await page.goto(f"{server.base_url}/admin/moderation/users/?username=mallory")
        await page.fill("#ban-reason", "spam")
        await page.get_by_role("button", name="Ban…").click()
        await expect(page.locator("#user")).to_contain_text("Not banned.")
        assert asked and asked[0].startswith("Ban mallory for 0 days") and "sockets close now" in asked[0]
        answer["accept"] = True
        await page.get_by_role("button", name="Ban…").click()
        await expect(page.locator("#user")).to_contain_text("Banned since")
        assert len(asked) == 2
    finally:
        await context.close()
