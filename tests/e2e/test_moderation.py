"""Moderation end to end: a moderator's action in Django admin over real HTTP, its effect on
real WebSocket clients of a real daphne process, with each storage backend.

Everyone signs in through Cognito (a moto user pool): carol is in the pool's `moderators`
group (moderator rights) and, through COGNITO_STAFF_GROUPS, staff; dave is in `staff` only;
alice and bob are plain users. Sockets authenticate with sessions or with Cognito ID tokens
in the handshake. One daphne per backend serves the whole module; each test works in rooms
of its own.
"""

from __future__ import annotations

import asyncio
import html
import http.cookies
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.typing import Origin

from chat.storage import schema
from chat.storage.dynamodb import ensure_tables, make_client
from tests.e2e.client import ChatClient, Frame, timeout
from tests.e2e.conftest import start_module_server
from tests.fixtures.aws import MotoServer
from tests.fixtures.cognito import PASSWORD, CognitoPool
from tests.fixtures.servers import DaphneServer

pytestmark = pytest.mark.timeout(120)

PLAIN_USERS = ("alice", "bob")


@dataclass
class Site:
    """One daphne process and the people who use it (cookies and tokens made once)."""

    server: DaphneServer
    backend: str
    pool: CognitoPool
    cookies: dict[str, str] = field(default_factory=dict)

    def cookie(self, username: str) -> str:
        if username not in self.cookies:
            self.cookies[username] = self.server.login(username, PASSWORD)
        return self.cookies[username]

    def token(self, username: str) -> str:
        # A fresh ID token each time: Cognito's live an hour, far longer than any test.
        return str(self.pool.sign_in(username)["IdToken"])

    async def socket(self, username: str, *, token: bool = False) -> ChatClient:
        if token:
            url = self.server.ws_url + "?" + urllib.parse.urlencode({"token": self.token(username)})
            client = await ChatClient.connect(url, cookie=None, origin=self.server.origin)
            await client.wait_for(lambda f: f["type"] == "authenticated")
            return client
        return await ChatClient.connect(self.server.ws_url, cookie=self.cookie(username), origin=self.server.origin)

    def admin(self, username: str = "carol") -> Admin:
        return Admin(self.server.base_url, self.cookie(username))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # Admin follows redirects itself, carrying the cookies they set


class Admin:
    """A signed-in browser on the admin site: GET a page, POST its form with the CSRF token.

    Cookies set along the way (Django's messages, a rotated CSRF token) are kept, as a
    browser keeps them, so the page after a POST's redirect says what happened.
    """

    def __init__(self, base_url: str, cookie: str) -> None:
        self.base_url = base_url
        self.cookies = dict(part.strip().split("=", 1) for part in cookie.split(";") if "=" in part)
        self.opener = urllib.request.build_opener(_NoRedirect)

    def _open(self, path: str, data: dict[str, Any] | None = None) -> tuple[int, str]:
        for _hop in range(5):
            body = urllib.parse.urlencode(data, doseq=True).encode() if data is not None else None
            cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            headers = {"Cookie": cookie, "Referer": self.base_url + path}
            request = urllib.request.Request(self.base_url + path, data=body, headers=headers)
            try:
                response = self.opener.open(request, timeout=timeout(15))
            except urllib.error.HTTPError as error:
                response = error
            with response:
                for header in response.headers.get_all("Set-Cookie") or []:
                    jar = http.cookies.SimpleCookie(header)
                    for name, morsel in jar.items():
                        self.cookies[name] = morsel.coded_value  # as sent: quoting intact
                if response.status in (301, 302, 303) and response.headers.get("Location"):
                    path, data = (
                        urllib.parse.urlsplit(response.headers["Location"])._replace(scheme="", netloc="").geturl(),
                        None,
                    )
                    continue
                return response.status, response.read().decode(errors="replace")
        raise AssertionError(f"too many redirects from {path}")

    def get(self, path: str) -> str:
        status, page = self._open(path)
        assert status == 200, f"GET {path}: {status}"
        return page

    def post(self, path: str, **fields: Any) -> tuple[int, str]:
        """POST as the page's form would (redirects followed); the final status and page."""
        status, page = self._open(path)
        assert status == 200, f"GET {path}: {status}"
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token, f"no CSRF token on {path}"
        return self._open(path, {**fields, "csrfmiddlewaretoken": token.group(1)})

    def act(self, path: str, **fields: Any) -> str:
        """A POST that must succeed; the page it lands on, unescaped."""
        status, page = self.post(path, **fields)
        assert status == 200, f"POST {path}: {status}"
        text = html.unescape(page)
        assert 'class="error"' not in page, re.findall(r'<li class="error">(.*?)</li>', text)
        return text

    def new_room(self, **settings: Any) -> str:
        room_id = f"mod-{uuid.uuid4().hex[:10]}"
        fields = {"room_id": room_id, "name": room_id, "slow_mode_seconds": 0, "reason": "a test room", **settings}
        self.act("/admin/moderation/rooms/", **fields)
        return room_id


def dynamodb_tables(moto: MotoServer) -> dict[str, str]:
    names = schema.TableNames.with_prefix(f"mod-{uuid.uuid4().hex[:10]}-")
    with pytest.MonkeyPatch.context() as env:
        for key, value in moto.env.items():
            env.setenv(key, value)
        ensure_tables(make_client(region=moto.env["AWS_REGION"]), names, poll_seconds=0.05)
    return {
        "CHAT_STORAGE_BACKEND": "dynamodb",
        "DYNAMODB_CONNECTIONS_TABLE": names.connections,
        "DYNAMODB_MESSAGES_TABLE": names.messages,
        "DYNAMODB_ROOMS_TABLE": names.rooms,
    }


@pytest.fixture(scope="module")
def people(cognito_pool: CognitoPool) -> CognitoPool:
    """carol (moderators, from the pool fixture), dave (staff only), alice and bob."""
    cognito_pool.add_user("dave", groups=("staff",))
    for username in PLAIN_USERS:
        cognito_pool.add_user(username)
    return cognito_pool


def start_site(
    backend: str, tmp_path_factory: pytest.TempPathFactory, migrated_db: Path, moto: MotoServer, pool: CognitoPool
) -> DaphneServer:
    env = pool.env(COGNITO_STAFF_GROUPS="moderators,staff")
    if backend == "dynamodb":
        env.update(dynamodb_tables(moto))
    return start_module_server(tmp_path_factory, migrated_db, **env)


@pytest.fixture(scope="module", params=["local", "dynamodb"])
def site(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    migrated_db: Path,
    moto_server: MotoServer,
    people: CognitoPool,
) -> Iterator[Site]:
    server = start_site(request.param, tmp_path_factory, migrated_db, moto_server, people)
    yield Site(server=server, backend=request.param, pool=people)
    server.stop()


async def wait_frame(client: ChatClient, kind: str, *, after: int = 0, **match: Any) -> Frame:
    return await client.wait_for(
        lambda f: f["type"] == kind and all(f.get(k) == v for k, v in match.items()), after=after
    )


# --- bans ------------------------------------------------------------------------------------


async def test_a_ban_closes_the_users_sockets_within_a_second_and_refuses_a_valid_token(site: Site) -> None:
    """Banned in admin, bob's sockets (token and session) close with 4403 within a second; his token is refused."""
    admin = site.admin()
    by_token = await site.socket("bob", token=True)
    by_session = await site.socket("bob")
    alice = await site.socket("alice")
    token = site.token("bob")
    for client in (by_token, by_session, alice):
        await client.ping()
    started = time.monotonic()
    page = admin.act("/admin/moderation/users/", op="ban", username="bob", days=0, reason="threats")
    assert "bob is banned." in page.lower()
    codes = await asyncio.gather(by_token.wait_closed(), by_session.wait_closed())
    assert codes == [4403, 4403]
    assert time.monotonic() - started < 1.0 + timeout(1.0), "the sockets closed too late"
    await alice.ping()  # others stay connected

    url = site.server.ws_url + "?" + urllib.parse.urlencode({"token": token})
    async with websockets.connect(url, origin=Origin(site.server.origin), open_timeout=timeout(10)) as refused:
        notice = json.loads(await asyncio.wait_for(refused.recv(), timeout(10)))
        assert (notice["type"], notice["reason"]) == ("banned", "threats")  # told why, then closed
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(refused.recv(), timeout(10))
    assert refused.close_code == 4403

    unbanned = admin.act("/admin/moderation/users/", op="unban", username="bob", reason="ok")
    assert "bob is no longer banned." in unbanned.lower()
    back = await ChatClient.connect(url, cookie=None, origin=site.server.origin)
    assert (await back.wait_for(lambda f: f["type"] == "authenticated"))["username"] == "bob"
    for client in (alice, back):
        await client.close()


# --- messages --------------------------------------------------------------------------------


async def test_hiding_and_deleting_in_admin_remove_messages_live_and_from_history(site: Site) -> None:
    """Hidden and deleted in admin, messages vanish from open clients at once and come back only as tombstones."""
    admin = site.admin()
    room = admin.new_room()
    alice, bob = await site.socket("alice"), await site.socket("bob")
    for client in (alice, bob):
        await client.join(room)
    first = await alice.send_message(room, "first: regrettable")
    second = await alice.send_message(room, "second: worse")
    third = await alice.send_message(room, "third: fine")
    await bob.wait_for_seq(room, third["seq"])
    offline = await site.socket("bob")  # a second tab that will miss the removals
    await offline.join(room)
    await offline.close()

    page_path = f"/admin/moderation/rooms/{room}/"
    hidden = admin.act(page_path, op="messages", removal="hide", message_id=first["messageId"], reason="rude")
    assert "message #1 hidden." in hidden.lower()
    deleted = admin.act(page_path, op="messages", removal="delete", message_id=second["messageId"], reason="doxxing")
    assert "message #2 deleted." in deleted.lower()
    for client in (alice, bob):
        # Each removal is a room event with its own seq (4, 5), after the messages' (1-3).
        removed = [await wait_frame(client, "messageRemoved", seq=seq) for seq in (4, 5)]
        assert removed == [
            {
                "type": "messageRemoved",
                "roomId": room,
                "seq": seq,
                "messageId": m["messageId"],
                "messageSeq": m["seq"],
                "removedBy": "moderator",
            }
            for seq, m in ((4, first), (5, second))
        ]

    history = await bob.history(room)
    assert [(m["seq"], m["message"], m.get("removed", False)) for m in history["messages"]] == [
        (1, "", True),
        (2, "", True),
        (3, "third: fine", False),
    ]
    late = await site.socket("alice")
    joined = await late.join(room)
    assert [m["message"] for m in joined["messages"]] == ["", "", "third: fine"]
    # The tab that was away resumes from seq 3 and is told which of its messages are tombstones.
    await offline.reconnect(resume=False)
    resumed = await offline.join(room, last_seq=3)
    assert (resumed["recovered"], resumed["removed"]) == (
        True,
        [{"messageId": first["messageId"], "seq": 1}, {"messageId": second["messageId"], "seq": 2}],
    )
    assert resumed["events"] == removed  # v2: the two removals, as the live sockets got them
    everything = str(history) + str(joined) + str(resumed)
    assert "regrettable" not in everything and "worse" not in everything
    # Moderators still read a hidden message in admin; a deleted one is gone for them too.
    search = admin.get(page_path + "?q=")
    assert "regrettable" in html.unescape(search) and "worse" not in html.unescape(search)
    for client in (alice, bob, late, offline):
        await client.close()


async def test_purging_a_user_removes_their_messages_in_every_room_live(site: Site) -> None:
    """A purge in admin deletes all of a user's messages in every room, and open clients drop each one."""
    admin = site.admin()
    rooms = [admin.new_room(), admin.new_room()]
    alice, bob = await site.socket("alice"), await site.socket("bob")
    for room in rooms:
        await alice.join(room)
        await bob.send_message(room, f"spam in {room}")
        await alice.send_message(room, "a real message")
    page = admin.act(f"/admin/moderation/rooms/{rooms[0]}/", op="purge", username="bob", everywhere="on", reason="spam")
    assert re.search(r"deleted \d+ messages of bob\.", page.lower())
    for room in rooms:
        await wait_frame(alice, "messageRemoved", roomId=room, messageSeq=1)
        history = await alice.history(room)
        assert [(m["username"], m["message"]) for m in history["messages"]] == [
            ("bob", ""),
            ("alice", "a real message"),
        ]
    for client in (alice, bob):
        await client.close()


# --- rooms -----------------------------------------------------------------------------------


async def test_room_settings_from_admin_reach_clients_and_are_enforced(site: Site) -> None:
    """Slow mode, read-only and archiving set in admin are announced to joined clients and enforced on sends."""
    admin = site.admin()
    room = admin.new_room()
    alice, carol = await site.socket("alice"), await site.socket("carol", token=True)
    for client in (alice, carol):
        await client.join(room)
    page_path = f"/admin/moderation/rooms/{room}/"

    admin.act(page_path, op="settings", name="Calm room", slow_mode_seconds=30, reason="too busy")
    update = await wait_frame(alice, "roomUpdated", roomId=room)
    assert update["room"] == {
        "name": "Calm room",
        "private": False,
        "readOnly": False,
        "archived": False,
        "slowModeSeconds": 30,
    }
    assert (await alice.send_message(room, "one"))["type"] == "ack"
    slow = await alice.send_message(room, "two")
    assert (slow["type"], slow["code"], slow["retryable"]) == ("error", "slow_mode", True)
    assert 25 <= slow["retryAfter"] <= 30
    assert [(await carol.send_message(room, f"mod {n}"))["type"] for n in (1, 2)] == ["ack", "ack"]

    admin.act(page_path, op="settings", name="Calm room", read_only="on", slow_mode_seconds=0, reason="announcements")
    await wait_frame(alice, "roomUpdated", roomId=room, after=alice.frames.index(update) + 1)
    assert (await alice.send_message(room, "may I?"))["code"] == "read_only"
    assert (await carol.send_message(room, "only moderators post here"))["type"] == "ack"

    admin.act(page_path, op="archive", reason="done")
    await alice.wait_for(lambda f: f["type"] == "roomUpdated" and f["room"]["archived"] is True)
    assert (await carol.send_message(room, "after the archive"))["code"] == "room_archived"
    assert (await alice.history(room))["messages"][-1]["message"] == "only moderators post here"
    rooms_page = Admin(site.server.base_url, site.cookie("alice")).get("/")
    assert f'data-room-id="{room}"' not in rooms_page  # the sidebar's link to it
    for client in (alice, carol):
        await client.close()


async def test_private_rooms_admit_members_only_and_a_removed_member_leaves_at_once(site: Site) -> None:
    """A private room made in admin admits its members; a member removed in admin is taken out of it live."""
    admin = site.admin()
    room = admin.new_room(private="on")
    page_path = f"/admin/moderation/rooms/{room}/"
    site.cookie("alice")  # alice has signed in here once: admin adds people who have an account
    assert "alice is a member." in admin.act(page_path, op="member_add", username="alice", reason="on the team").lower()
    alice, bob = await site.socket("alice", token=True), await site.socket("bob")
    await alice.join(room)
    await alice.send_message(room, "team secret")
    for frame in ({"action": "joinRoom", "roomId": room}, {"action": "history", "roomId": room}):
        refused = await bob.expect_error(frame)
        assert refused["code"] == "unknown_room"
        assert "team secret" not in str(refused)
    # The sidebar links a room by its data-room-id: the member's page has it, the outsider's not.
    assert f'data-room-id="{room}"' not in Admin(site.server.base_url, site.cookie("bob")).get("/")
    assert f'data-room-id="{room}"' in Admin(site.server.base_url, site.cookie("alice")).get("/")

    admin.act(page_path, op="member_remove", username="alice", reason="left the team")
    assert await wait_frame(alice, "left", roomId=room) == {"type": "left", "roomId": room, "reason": "removed"}
    assert (await alice.expect_error({"action": "joinRoom", "roomId": room}))["code"] == "unknown_room"
    for client in (alice, bob):
        await client.close()


# --- users: mutes ----------------------------------------------------------------------------


async def test_a_mute_from_admin_refuses_posts_until_lifted(site: Site) -> None:
    """Muted in one room from admin, alice's next send there is refused with retryAfter; unmuted, it goes through."""
    admin = site.admin()
    room, other = admin.new_room(), admin.new_room()
    alice = await site.socket("alice")
    page = admin.act("/admin/moderation/users/", op="mute", username="alice", room_id=room, minutes=5, reason="heated")
    assert f"alice is muted in {room}" in page.lower()
    muted = await alice.send_message(room, "but...")
    assert (muted["code"], muted.get("retryable", False)) == ("muted", False)
    assert 290 <= muted["retryAfter"] <= 300
    assert (await alice.send_message(other, "elsewhere is fine"))["type"] == "ack"
    admin.act("/admin/moderation/users/", op="unmute", username="alice", room_id="", reason="calm again")
    assert (await alice.send_message(room, "thanks"))["type"] == "ack"
    await alice.close()


# --- reports and the audit log ---------------------------------------------------------------


async def test_a_report_from_a_client_is_worked_in_admin_and_audited(site: Site) -> None:
    """alice reports bob's message; carol deletes it from the report queue; clients drop it; the audit log says so."""
    admin = site.admin()
    room = admin.new_room()
    alice, bob = await site.socket("alice"), await site.socket("bob")
    await alice.join(room)
    offending = await bob.send_message(room, "you are all idiots")
    await alice.wait_for_seq(room, offending["seq"])
    reported = await alice.request(
        {"action": "reportMessage", "roomId": room, "messageId": offending["messageId"], "reason": "insults"},
        expect="reported",
    )
    assert reported == {"type": "reported", "roomId": room, "messageId": offending["messageId"]}

    queue = html.unescape(admin.get("/admin/chat/report/?status__exact=open"))
    match = re.search(r'href="/admin/moderation/reports/(\d+)/">Work on it #\d+</a>.*?you are all idiots', queue, re.S)
    assert match, "the report is not in the open queue"
    report_page = f"/admin/moderation/reports/{match.group(1)}/"
    assert "insults" in html.unescape(admin.get(report_page))
    admin.act(report_page, action="delete", reason="abusive", mute_minutes=60)
    assert (await wait_frame(alice, "messageRemoved", roomId=room))["messageId"] == offending["messageId"]
    assert "you are all idiots" not in str(await alice.history(room))
    assert f"/admin/moderation/reports/{match.group(1)}/" not in admin.get("/admin/chat/report/?status__exact=open")

    log = html.unescape(admin.get(f"/admin/chat/auditlog/?q={room}"))
    assert "message_delete" in log and "carol" in log and "abusive" in log
    assert "/admin/chat/auditlog/add/" not in log  # read-only: no add button
    for client in (alice, bob):
        await client.close()


# --- who may moderate, and where -------------------------------------------------------------


@pytest.fixture(scope="module")
def local_site(
    tmp_path_factory: pytest.TempPathFactory, migrated_db: Path, moto_server: MotoServer, people: CognitoPool
) -> Iterator[Site]:
    server = start_site("local", tmp_path_factory, migrated_db, moto_server, people)
    yield Site(server=server, backend="local", pool=people)
    server.stop()


async def test_staff_without_moderator_rights_cannot_moderate(local_site: Site) -> None:
    """dave is staff by his Cognito group but no moderator: moderation pages answer 403 and his ban does nothing."""
    dave = local_site.admin("dave")
    assert dave.get("/admin/").count("Moderation") == 0
    for page in ("/admin/moderation/rooms/", "/admin/moderation/users/", "/admin/chat/report/"):
        assert dave._open(page)[0] == 403, page
    bob = await local_site.socket("bob")
    carol_page = local_site.admin().get("/admin/moderation/users/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', carol_page)
    assert token
    status, _ = dave._open(
        "/admin/moderation/users/",
        {"op": "ban", "username": "bob", "days": 0, "reason": "x", "csrfmiddlewaretoken": token.group(1)},
    )
    assert status == 403
    await bob.ping()  # still connected
    await bob.close()


async def test_admin_is_not_served_over_the_websocket(local_site: Site) -> None:
    """Only /ws/ speaks WebSocket: a handshake for an admin URL is refused, even with a moderator's session."""
    url = local_site.server.ws_url.replace("/ws/", "/admin/")
    headers = {"Cookie": local_site.cookie("carol")}
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(
            url, additional_headers=headers, origin=Origin(local_site.server.origin), open_timeout=timeout(10)
        ):
            pass
    assert refused.value.response.status_code == 403


async def test_moderation_reaches_sockets_on_every_process(
    daphne_factory: Callable[..., DaphneServer], tmp_path: Path, redis_url: str, people: CognitoPool
) -> None:
    """With two daphne processes on one Redis, a ban in one's admin closes bob's sockets on both within a second,
    and a message hidden there disappears from a client of the other."""
    shared = tmp_path / "shared"
    shared.mkdir()
    env = people.env(COGNITO_STAFF_GROUPS="moderators,staff", REDIS_URL=redis_url)
    servers = [daphne_factory(shared_dir=shared, CHAT_INSTANCE_ID=f"mod-{i}", **env) for i in range(2)]
    sites = [Site(server=server, backend="local", pool=people) for server in servers]
    admin = sites[0].admin()
    room = admin.new_room()
    alice = await sites[1].socket("alice")
    await alice.join(room)
    ack = await alice.send_message(room, "to be hidden")
    admin.act(
        f"/admin/moderation/rooms/{room}/", op="messages", removal="hide", message_id=ack["messageId"], reason="x"
    )
    assert (await wait_frame(alice, "messageRemoved", roomId=room))["messageSeq"] == ack["seq"]

    bobs = [await site.socket("bob", token=True) for site in sites]
    for bob in bobs:
        await bob.ping()
    started = time.monotonic()
    admin.act("/admin/moderation/users/", op="ban", username="bob", days=0, reason="everywhere")
    assert await asyncio.gather(*(bob.wait_closed() for bob in bobs)) == [4403, 4403]
    assert time.monotonic() - started < 1.0 + timeout(1.0)
    admin.act("/admin/moderation/users/", op="unban", username="bob", reason="lifted for the next tests")
    await alice.close()
