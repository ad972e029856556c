"""The dashboard in Chromium after four weeks of seeded history, against counts made from the seed.

The history (analytics/tests/seeding.py: ten users joining over three weeks, messages in three
rooms and a DM on most days, sockets, reports filed and worked) is written through the services
by a `manage.py shell` configured like the daphne process: an owned clock, the same database and
store. It ends yesterday; today two of its users connect to the running daphne and chat. After
`manage.py rollup_analytics` a moderator opens the dashboard, and every figure it shows (tiles,
and each chart's table of numbers) equals the count the test makes itself from the seed's ledger.

Messages in Django's database (SQLite, PostgreSQL) or in DynamoDB (moto); the rollups in Django's
database either way. Screenshots go to var/screenshots/ (not committed) for a person to look at.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import shutil
import statistics
import sys
import urllib.request
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from analytics.tests.seeding import DAYS, Ledger, first_reply_median, peak_users, retention, span, window_users
from tests.browser.conftest import SCREENSHOTS, NewUser, browser, cookies_for, new_user, skip_reason  # noqa: F401
from tests.e2e.client import ChatClient, timeout
from tests.e2e.test_moderation import dynamodb_tables
from tests.fixtures import warm
from tests.fixtures.servers import DEMO_PASSWORD, ROOT, DaphneServer, base_env, manage_shell

_reason = skip_reason()
pytestmark = [
    pytest.mark.skipif(_reason is not None, reason=_reason or ""),
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(600),
]
if _reason is None:
    from playwright.async_api import Page, expect

RANGE = 30  # the dashboard's default range: the whole history and today


@pytest.fixture(params=["local-sqlite", "local-postgresql", "dynamodb-sqlite"])
def site(request: pytest.FixtureRequest, tmp_path: Path, migrated_db: Path) -> dict[str, str]:
    """The environment of the site under test: its database and its message store."""
    backend, database = request.param.split("-")
    env: dict[str, str] = {}
    if database == "sqlite":
        shutil.copy(migrated_db, tmp_path / "db.sqlite3")
    else:
        env["DATABASE_URL"] = request.getfixturevalue("postgres_url")
    if backend == "dynamodb":
        moto = request.getfixturevalue("moto_server")
        env.update({**moto.env, **dynamodb_tables(moto)})
    return env


def seed_history(data_dir: Path, env: dict[str, str], base: datetime) -> tuple[Ledger, dict[str, str]]:
    """Seed DAYS days from `base` into the site; the ledger and {user id: username}."""
    out = data_dir / "ledger.pickle"
    code = (
        "from analytics.tests.seeding import seed_into_the_configured_site as seed; "
        f"seed({str(out)!r}, {base.isoformat()!r}, {DEMO_PASSWORD!r}, 'user0', 'user1')"
    )
    done = manage_shell(base_env(data_dir, **env), code, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    ledger, names = pickle.loads(out.read_bytes())
    return ledger, names


def live_sockets(server: DaphneServer, cookie: str) -> int:
    request = urllib.request.Request(f"{server.base_url}/admin/analytics/live/", headers={"Cookie": cookie})
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(json.loads(response.read())["sockets"])


async def chat_today(server: DaphneServer, ledger: Ledger, ids: dict[str, str], mod_cookie: str) -> None:
    """user0 and user1 connect to the running daphne at once; user0 sends two messages in room-0, user1 one
    in their DM; both close. Each step goes into the ledger as it happens."""
    cookies = {name: await asyncio.to_thread(server.login, name) for name in ("user0", "user1")}
    dm = next(iter(ledger.dms))
    today = datetime.now(UTC).date()
    opened = datetime.now(UTC)
    clients = {
        name: await ChatClient.connect(server.ws_url, cookie=c, origin=server.origin) for name, c in cookies.items()
    }
    try:
        await clients["user0"].join("room-0")
        await clients["user1"].join(dm)
        for n in range(2):
            ack = await clients["user0"].send_message("room-0", f"secret-today-{n}")
            assert ack["type"] == "ack", ack
            ledger.sent.append(("room-0", ids["user0"], datetime.now(UTC), f"secret-today-{n}"))
        ack = await clients["user1"].send_message(dm, "secret-today-dm")
        assert ack["type"] == "ack", ack
        ledger.sent.append((dm, ids["user1"], datetime.now(UTC), "secret-today-dm"))
    finally:
        for client in clients.values():
            await client.close()
    closed = datetime.now(UTC)
    for name in clients:
        ledger.spans.append((ids[name], opened, closed))
        ledger.active[today].add(ids[name])
    # The rows go as the sockets finish closing, after each socket's counts are written.
    async with asyncio.timeout(timeout(20)):
        while await asyncio.to_thread(live_sockets, server, mod_cookie):
            await asyncio.sleep(0.1)


async def rows(page: Page, chart: str) -> list[list[str]]:
    """A chart's table of numbers as a screen reader reads it: one list of cell texts per body row."""
    found: list[list[str]] = await page.evaluate(
        """id => [...document.querySelectorAll(`#${id} tbody tr`)]
                 .map(tr => [...tr.children].map(cell => cell.textContent.trim()))""",
        f"chart-{chart}",
    )
    return found


def per_day(found: list[list[str]]) -> dict[str, int]:
    return {row[0]: int(row[1]) for row in found}


def about(shown: str, exact: float) -> bool:
    """A median tile ("≈ 1,234 s") within the histogram's 2.5 % of the exact median."""
    value = int(shown.removeprefix("≈ ").removesuffix(" s").replace(",", ""))
    return abs(value - exact) <= 0.025 * exact + 1


async def test_the_dashboard_shows_what_four_weeks_of_seeded_chat_add_up_to(
    site: dict[str, str],
    tmp_path: Path,
    daphne_factory: Callable[..., DaphneServer],
    new_user: NewUser,  # noqa: F811 - the fixture imported above
    request: pytest.FixtureRequest,
) -> None:
    """Tiles (DAU, WAU, MAU, DAU/MAU, DM share, medians) and the tables of every chart (active users, messages,
    new users, peak users, busiest rooms, DMs vs rooms, retention, reports opened and closed, actions, reported
    rooms, busiest senders) equal the counts made from the seed; the page shows no message text."""
    today = datetime.now(UTC).date()
    base = datetime.combine(today - timedelta(days=DAYS), time.min, tzinfo=UTC)  # the history ends yesterday
    ledger, names = await asyncio.to_thread(seed_history, tmp_path, site, base)
    ids = {name: user_id for user_id, name in names.items()}

    server = daphne_factory(shared_dir=tmp_path, **site)
    mod_cookie = await asyncio.to_thread(server.login, "mod")
    await chat_today(server, ledger, ids, mod_cookie)
    rolled = await asyncio.to_thread(
        warm.run,
        [sys.executable, "manage.py", "rollup_analytics"],
        cwd=ROOT,
        env=server.env,
        capture_output=True,
        text=True,
    )
    assert rolled.returncode == 0, rolled.stderr[-3000:]
    if datetime.now(UTC).date() != today:
        pytest.skip("midnight UTC passed during the test: the seeded days moved under it")

    staff = await new_user(server, None, viewport_width=1366)
    await staff.context.add_cookies(cookies_for(server, mod_cookie))  # type: ignore[arg-type]
    page = staff.page
    await page.goto(f"{server.base_url}/admin/?days={RANGE}")
    days = span(today, RANGE)
    assert min(ledger.active) >= days[0]  # the whole history is in range

    # The tiles.
    dau, wau, mau = (len(ledger.active[today]), window_users(ledger, today, 7), window_users(ledger, today, 30))
    assert (dau, wau) == (2, len({u for d in span(today, 7) for u in ledger.active.get(d, set())}))
    await expect(page.locator("#dau")).to_have_text(str(dau))
    await expect(page.locator("#wau")).to_have_text(str(wau))
    await expect(page.locator("#mau")).to_have_text(str(mau))
    await expect(page.locator("#dau-mau")).to_have_text(f"{dau / mau:.2f}")
    in_rooms = len(ledger.in_rooms())
    in_dms = len(ledger.sent) - in_rooms
    await expect(page.locator("#dm-share")).to_have_text(f"{round(100 * in_dms / (in_rooms + in_dms))} %")
    first_reply = await page.locator("#first-reply").text_content() or ""
    assert about(first_reply, first_reply_median(ledger)), (first_reply, first_reply_median(ledger))
    resolve = await page.locator("#resolve-median").text_content() or ""
    assert about(resolve, statistics.median_low(ledger.resolve_seconds)), resolve

    # Each chart's numbers.
    active = {r[0]: [int(x) for x in r[1:]] for r in await rows(page, "active")}
    assert active == {
        d.isoformat(): [len(ledger.active.get(d, set())), window_users(ledger, d, 7), window_users(ledger, d, 30)]
        for d in days
    }
    sent_per_day = Counter(at.date() for _, _, at, _ in ledger.sent)
    assert per_day(await rows(page, "messages")) == {d.isoformat(): sent_per_day[d] for d in days}
    joined_per_day = Counter(j.date() for j in ledger.joined.values())
    assert per_day(await rows(page, "new_users")) == {d.isoformat(): joined_per_day[d] for d in days}
    assert per_day(await rows(page, "peak_users")) == {d.isoformat(): peak_users(ledger, d) for d in days}
    by_room = Counter(room for room, _, _, _ in ledger.in_rooms())
    assert {r[0]: int(r[1]) for r in await rows(page, "rooms")} == dict(by_room)  # DMs are not rooms
    assert [r[:2] for r in await rows(page, "share")] == [
        ["rooms", str(in_rooms)],
        ["direct messages", str(in_dms)],
    ]
    shown_retention = [[cell.split(" ")[0].replace("…", "") for cell in r] for r in await rows(page, "retention")]
    oldest_cohort = days[0] - timedelta(weeks=4)
    assert shown_retention == [r for r in retention(ledger, today) if date.fromisoformat(r[0]) >= oldest_cohort]
    assert per_day(await rows(page, "reports_opened")) == {d.isoformat(): ledger.opened[d] for d in days}
    assert per_day(await rows(page, "reports_resolved")) == {d.isoformat(): ledger.closed[d] for d in days}
    assert per_day(await rows(page, "actions")) == dict(ledger.actions)
    assert await rows(page, "reported_rooms") == [["general", str(sum(ledger.opened.values()))]]
    senders = Counter(user for _, user, at, _ in ledger.sent if at.date() in span(today, 7))
    assert per_day(await rows(page, "senders")) == {names[u]: n for u, n in senders.most_common(10)}

    # What a person sees: a bar per day, no message text, no script error.
    await expect(page.locator("#chart-messages svg rect.bar")).to_have_count(RANGE)
    assert "secret" not in await page.content()
    assert staff.page_errors == []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"dashboard-seeded-{request.node.callspec.id}.png"), full_page=True)
