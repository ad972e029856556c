"""Moderation in process: admin pages through Django's test client, live effects through the
real ASGI routing (WebsocketCommunicator), on the local backend and the in-memory layer.

tests/e2e/test_moderation.py does the same end to end against real daphne processes with
both storage backends; these are the quick, detailed checks of each rule.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.test import Client

from chat import moderation, services
from chat.moderation import ModerationError
from chat.moderation_models import AuditLog, Ban, Mute, Report
from chatsite.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

ORIGIN = b"http://127.0.0.1"
WAIT = 5.0
Frame = dict[str, Any]
Connect = Callable[..., Awaitable["Sock"]]


# --- fixtures -------------------------------------------------------------------------------


def make_user(username: str, *, staff: bool = False, moderator: bool = False) -> Any:
    # No password: hashing one costs a third of a second, and force_login needs none.
    user = get_user_model().objects.create_user(username=username, is_staff=staff)
    if moderator:
        group, _ = Group.objects.get_or_create(name=settings.AUTH_MODERATOR_GROUP)
        user.groups.add(group)
    return user


def session_cookie(user: Any) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


@pytest.fixture
def mod(db: None) -> Any:
    """A staff member with moderator rights."""
    return make_user("mod", staff=True, moderator=True)


@pytest.fixture
def mod_client(mod: Any) -> Client:
    client = Client()
    client.force_login(mod)
    return client


class Sock:
    """One test socket that keeps every frame, so a test waits for the frame it means
    whatever else (broadcasts of one's own messages, say) arrives around it."""

    REPLIES = frozenset({"joined", "history", "ack", "error", "reported", "pong"})

    def __init__(self, comm: WebsocketCommunicator) -> None:
        self.comm = comm
        self.frames: list[Frame] = []
        self.taken: set[int] = set()

    async def _receive(self) -> None:
        frame = await self.comm.receive_json_from(timeout=WAIT)
        assert isinstance(frame, dict)
        self.frames.append(frame)

    async def take(self, predicate: Callable[[Frame], bool], *, after: int = 0) -> Frame:
        """The first frame not taken yet (at index >= after) that matches, waiting for it."""
        index = after
        while True:
            while index < len(self.frames):
                if index not in self.taken and predicate(self.frames[index]):
                    self.taken.add(index)
                    return self.frames[index]
                index += 1
            await self._receive()

    async def request(self, frame: Frame) -> Frame:
        """Send a frame and return its answer."""
        mark = len(self.frames)
        await self.comm.send_json_to(frame)
        return await self.take(lambda f: f["type"] in self.REPLIES, after=mark)

    async def quiet(self) -> list[Frame]:
        """Take every frame that arrived before a ping's pong."""
        pong = await self.request({"action": "ping"})
        end = next(i for i, f in enumerate(self.frames) if f is pong)
        rest = [i for i in range(end) if i not in self.taken]
        self.taken.update(rest)
        return [self.frames[i] for i in rest]

    async def closed(self, wait: float = WAIT) -> int:
        """The close code; frames sent before the close (a ban's `banned`) are kept in `frames`."""
        while True:
            output = await self.comm.receive_output(timeout=wait)
            if output["type"] != "websocket.send":
                break
            self.frames.append(json.loads(output["text"]))
        assert output["type"] == "websocket.close", output
        return int(output["code"])


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    opened: list[WebsocketCommunicator] = []

    async def open_socket(user: Any) -> Sock:
        cookie = await sync_to_async(session_cookie)(user)
        comm = WebsocketCommunicator(
            application, "/ws/", headers=[(b"origin", ORIGIN), (b"host", b"127.0.0.1"), (b"cookie", cookie)]
        )
        opened.append(comm)
        connected, _ = await comm.connect(timeout=WAIT)
        assert connected
        return Sock(comm)

    yield open_socket
    for comm in opened:
        await comm.disconnect(timeout=WAIT)
    layer = get_channel_layer()
    assert layer is not None
    await layer.flush()  # type: ignore[attr-defined]


async def user(username: str, **kwargs: bool) -> Any:
    return await sync_to_async(make_user)(username, **kwargs)


async def join(sock: Sock, room_id: str, last_seq: int | None = None) -> Frame:
    frame: Frame = {"action": "joinRoom", "roomId": room_id}
    if last_seq is not None:
        frame["lastSeq"] = last_seq
    return await sock.request(frame)


async def send(sock: Sock, room_id: str, text: str, cmid: str) -> Frame:
    """The ack (or error) answering this send."""
    return await sock.request({"action": "sendMessage", "roomId": room_id, "message": text, "clientMessageId": cmid})


async def messages(sock: Sock, count: int, kind: str = "message") -> list[Frame]:
    """The next `count` frames of type `kind`, in order."""
    return [await sock.take(lambda f: f["type"] == kind) for _ in range(count)]


async def make_room(room_id: str, **settings_: Any) -> str:
    await sync_to_async(services.room_create)(room_id=room_id, name=room_id.title())
    if settings_:
        from chat.storage import get_store

        now = {"now": services.utcnow(), "ttl_seconds": 3600}
        await sync_to_async(get_store().update_room)(room_id=room_id, **settings_, **now)
    return room_id


def act(fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """A moderation service called from a test's event loop, as a view's thread calls it."""
    return sync_to_async(fn)


# --- admin: who gets in ------------------------------------------------------------------------

MODERATION_PAGES = ["/admin/moderation/rooms/", "/admin/moderation/rooms/general/", "/admin/moderation/users/"]


def test_moderation_pages_are_for_moderators_only(mod_client: Client) -> None:
    """Anonymous users are sent to the admin login; staff without moderator rights get 403; moderators get the page."""
    staff = make_user("staffer", staff=True)
    staff_client = Client()
    staff_client.force_login(staff)
    for page in [*MODERATION_PAGES, "/admin/chat/report/", "/admin/chat/auditlog/", "/admin/chat/ban/"]:
        anonymous = Client().get(page)
        assert anonymous.status_code == 302 and anonymous["Location"].startswith("/admin/login/"), page
        assert staff_client.get(page).status_code == 403, page
        assert mod_client.get(page).status_code == 200, page
    assert "Moderation" not in staff_client.get("/admin/").content.decode()
    index = mod_client.get("/admin/").content.decode()
    assert "Moderation" in index and "/admin/moderation/rooms/" in index and "/admin/chat/report/" in index


def test_a_moderator_who_is_not_staff_does_not_get_into_admin() -> None:
    """Admin is staff only: moderator rights alone (a Cognito moderator without the staff group) do not open it."""
    client = Client()
    client.force_login(make_user("modonly", moderator=True))
    response = client.get("/admin/moderation/rooms/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_admin_posts_need_a_csrf_token(mod: Any) -> None:
    """A moderator's POST without Django's CSRF token is refused and bans nobody."""
    target = make_user("victim")
    client = Client(enforce_csrf_checks=True)
    client.force_login(mod)
    response = client.post("/admin/moderation/users/", {"op": "ban", "username": "victim", "reason": "x", "days": 0})
    assert response.status_code == 403
    assert not Ban.objects.filter(user=target).exists()
    page = client.get("/admin/moderation/users/?username=victim").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token is not None
    client.post(
        "/admin/moderation/users/",
        {"op": "ban", "username": "victim", "reason": "spam", "days": 0, "csrfmiddlewaretoken": token.group(1)},
    )
    assert Ban.objects.filter(user=target, lifted_at=None).count() == 1


def test_staff_without_moderator_rights_cannot_moderate_through_a_service() -> None:
    """Every moderation service refuses a caller without moderator rights, staff or not."""
    staff, target = make_user("staffer", staff=True), make_user("target")
    calls: list[Callable[[], Any]] = [
        lambda: moderation.user_ban(moderator=staff, user=target, reason="x"),
        lambda: moderation.user_mute(moderator=staff, user=target, reason="x", duration=timedelta(hours=1)),
        lambda: moderation.room_archive(moderator=staff, room_id="general", reason="x"),
        lambda: moderation.message_search(moderator=staff, room_id="general"),
    ]
    for call in calls:
        with pytest.raises(PermissionDenied):
            call()
    assert not AuditLog.objects.exists() and not Ban.objects.exists() and not Mute.objects.exists()


def test_every_action_needs_a_reason_and_is_audited(mod: Any) -> None:
    """An action without a reason does nothing; with one, the audit log says who, what, when and why."""
    target = make_user("target")
    with pytest.raises(ModerationError):
        moderation.user_ban(moderator=mod, user=target, reason="   ")
    assert not Ban.objects.exists()
    moderation.user_ban(moderator=mod, user=target, reason="spam links")
    moderation.room_update(moderator=mod, room_id="general", slow_mode_seconds=10, reason="busy day")
    entries = list(AuditLog.objects.order_by("at").values("actor", "actor_username", "action", "target", "reason"))
    assert entries == [
        {
            "actor": mod.pk,
            "actor_username": "mod",
            "action": "user_ban",
            "target": f"user:{target.pk} (target)",
            "reason": "spam links",
        },
        {
            "actor": mod.pk,
            "actor_username": "mod",
            "action": "room_update",
            "target": "room:general",
            "reason": "busy day",
        },
    ]
    assert AuditLog.objects.get(action="room_update").details == {"changes": {"slow_mode_seconds": [0, 10]}}


def test_the_audit_log_is_read_only(mod: Any, mod_client: Client) -> None:
    """Admin offers no add, change or delete of audit entries, and an entry cannot be saved twice."""
    moderation.room_archive(moderator=mod, room_id="general", reason="closing")
    entry = AuditLog.objects.get()
    listing = mod_client.get("/admin/chat/auditlog/").content.decode()
    assert "room_archive" in listing and "closing" in listing
    assert mod_client.get("/admin/chat/auditlog/add/").status_code == 403
    assert mod_client.post(f"/admin/chat/auditlog/{entry.pk}/change/", {"reason": "x"}).status_code == 403
    assert mod_client.post(f"/admin/chat/auditlog/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    entry.reason = "rewritten"
    with pytest.raises(ValueError):
        entry.save()
    assert AuditLog.objects.get().reason == "closing"


def test_admin_room_page_creates_updates_and_searches(mod: Any, mod_client: Client) -> None:
    """Rooms are created and changed on the admin pages through the services, and messages searched there."""
    response = mod_client.post(
        "/admin/moderation/rooms/",
        {"room_id": "news", "name": "News", "read_only": "on", "slow_mode_seconds": 0, "reason": "announcements"},
    )
    assert response.status_code == 302 and response["Location"] == "/admin/moderation/rooms/news/"
    room = services.room_get("news")
    assert room is not None and (room.name, room.read_only, room.private) == ("News", True, False)
    mod_client.post(
        "/admin/moderation/rooms/news/",
        {"op": "settings", "name": "Newsroom", "slow_mode_seconds": 30, "private": "on", "reason": "calmer"},
    )
    room = services.room_get("news")
    assert room is not None and (room.name, room.read_only, room.private, room.slow_mode_seconds) == (
        "Newsroom",
        False,
        True,
        30,
    )
    page = mod_client.get("/admin/moderation/rooms/news/?q=nothing").content.decode()
    assert "No message matches." in page
    assert list(AuditLog.objects.order_by("at").values_list("action", flat=True)) == ["room_create", "room_update"]


# --- the socket: rules enforced in the services ------------------------------------------------


async def test_slow_mode_refuses_a_second_post_with_retry_after_and_exempts_moderators(
    connect: Connect, mod: Any
) -> None:
    """In slow mode a user's second post within N seconds gets slow_mode with retryAfter; a moderator's does not."""
    room = await make_room("slow", slow_mode_seconds=60)
    alice = await connect(await user("alice"))
    joined = await join(alice, room)
    assert joined["room"] == {
        "name": "Slow",
        "private": False,
        "readOnly": False,
        "archived": False,
        "slowModeSeconds": 60,
    }
    assert (await send(alice, room, "first", "a1"))["type"] == "ack"
    refused = await send(alice, room, "second", "a2")
    assert (refused["type"], refused["code"], refused["retryable"], refused["clientMessageId"]) == (
        "error",
        "slow_mode",
        True,
        "a2",
    )
    assert 55 <= refused["retryAfter"] <= 60
    # The retry of a stored message is no new post: it is answered with the original ack.
    assert (await send(alice, room, "first", "a1"))["type"] == "error"
    moderator = await connect(mod)
    assert (await send(moderator, room, "m1", "m1"))["type"] == "ack"
    assert (await send(moderator, room, "m2", "m2"))["type"] == "ack"


async def test_read_only_and_archived_rooms_refuse_posts(connect: Connect, mod: Any) -> None:
    """Only moderators post in a read-only room; nobody posts in an archived one, which stays readable."""
    news = await make_room("news", read_only=True)
    attic = await make_room("attic")
    alice, moderator = await connect(await user("alice")), await connect(mod)
    assert (await send(alice, news, "hi", "a1"))["code"] == "read_only"
    assert (await send(moderator, news, "announcement", "m1"))["type"] == "ack"
    assert (await send(alice, attic, "before", "a2"))["type"] == "ack"
    await act(moderation.room_archive)(moderator=mod, room_id=attic, reason="old")
    assert (await send(alice, attic, "after", "a3"))["code"] == "room_archived"
    assert (await send(moderator, attic, "after", "m2"))["code"] == "room_archived"
    history = await alice.request({"action": "history", "roomId": attic})
    assert [m["message"] for m in history["messages"]] == ["before"]


async def test_mutes_refuse_posts_until_lifted(connect: Connect, mod: Any) -> None:
    """A mute in one room refuses posts there (muted, retryAfter), not elsewhere; a global mute refuses them all."""
    other = await make_room("other")
    alice_user = await user("alice")
    alice = await connect(alice_user)
    await act(moderation.user_mute)(
        moderator=mod, user=alice_user, reason="heated", duration=timedelta(minutes=10), room_id="general"
    )
    muted = await send(alice, "general", "hi", "a1")
    assert (muted["code"], muted.get("retryable", False)) == ("muted", False)
    assert 590 <= muted["retryAfter"] <= 600
    assert (await send(alice, other, "hi", "a2"))["type"] == "ack"
    await act(moderation.user_mute)(moderator=mod, user=alice_user, reason="worse", duration=timedelta(hours=1))
    assert (await send(alice, other, "hi", "a3"))["code"] == "muted"
    assert await act(moderation.user_unmute)(moderator=mod, user=alice_user, reason="calm now") == 2
    assert (await send(alice, "general", "back", "a4"))["type"] == "ack"


async def test_private_rooms_are_for_members_and_moderators_only(connect: Connect, mod: Any) -> None:
    """A non-member cannot join, read, post in or list a private room; a member and a moderator can."""
    room = await make_room("secret", private=True)
    alice_user, bob_user = await user("alice"), await user("bob")
    await act(moderation.room_member_add)(moderator=mod, room_id=room, user=alice_user, reason="team")
    alice, bob, moderator = await connect(alice_user), await connect(bob_user), await connect(mod)
    assert (await send(alice, room, "team plans", "a1"))["type"] == "ack"
    for frame in (
        {"action": "joinRoom", "roomId": room},
        {"action": "history", "roomId": room},
        {"action": "sendMessage", "roomId": room, "message": "let me in", "clientMessageId": "b1"},
    ):
        refused = await bob.request(frame)
        assert (refused["type"], refused["code"]) == ("error", "unknown_room"), frame
        assert "team plans" not in str(refused)
    assert [m["message"] for m in (await join(moderator, room))["messages"]] == ["team plans"]
    assert (await join(alice, room))["type"] == "joined"

    def listed(who: Any) -> list[str]:
        from accounts.identity import identity_from_user

        return [r.room_id for r in services.room_list(identity=identity_from_user(who))]

    assert room in await sync_to_async(listed)(alice_user)
    assert room not in await sync_to_async(listed)(bob_user)
    bob_page = await sync_to_async(lambda: session_client(bob_user).get(f"/rooms/{room}/").status_code)()
    assert bob_page == 404


def session_client(who: Any) -> Client:
    client = Client()
    client.force_login(who)
    return client


async def test_a_removed_member_leaves_at_once_and_a_room_turned_private_drops_non_members(
    connect: Connect, mod: Any
) -> None:
    """Removing a member takes their sockets out of the room now; making a room private does so for non-members."""
    room = await make_room("team", private=True)
    alice_user, bob_user = await user("alice"), await user("bob")
    await act(moderation.room_member_add)(moderator=mod, room_id=room, user=alice_user, reason="team")
    alice = await connect(alice_user)
    await join(alice, room)
    await act(moderation.room_member_remove)(moderator=mod, room_id=room, user=alice_user, reason="left the team")
    assert await alice.take(lambda f: f["type"] == "left") == {"type": "left", "roomId": room, "reason": "removed"}
    moderator = await connect(mod)
    await join(moderator, room)
    assert (await send(moderator, room, "after", "m1"))["type"] == "ack"
    # No more of the room's messages (its removal came first: memberRemoved, roomRemoved).
    assert [f["type"] for f in await alice.quiet() if f["type"] not in ("memberRemoved", "roomRemoved")] == []

    open_room = await make_room("open")
    bob = await connect(bob_user)
    await join(bob, open_room)
    await act(moderation.room_update)(moderator=mod, room_id=open_room, private=True, reason="internal now")
    assert await bob.take(lambda f: f["type"] == "left") == {"type": "left", "roomId": open_room, "reason": "private"}


async def test_a_room_change_goes_out_when_its_transaction_commits_and_never_if_it_rolls_back(
    connect: Connect, mod: Any
) -> None:
    """A moderator's change in a transaction that rolls back is neither stored nor sent; committed, it is sent once."""
    from django.db import transaction

    room = await make_room("rollback")
    bob = await connect(await user("bob"))
    await join(bob, room)

    def renamed_then_rolled_back() -> None:
        with transaction.atomic():
            moderation.room_update(moderator=mod, room_id=room, name="Never shown", reason="x")
            raise RuntimeError("the audit failed")

    with pytest.raises(RuntimeError):
        await act(renamed_then_rolled_back)()
    assert await bob.quiet() == []
    stored = await act(services.room_get)(room)
    assert stored is not None and (stored.name, stored.last_seq) == ("Rollback", 0)
    await act(moderation.room_update)(moderator=mod, room_id=room, name="Renamed", reason="x")
    updated = await bob.take(lambda f: f["type"] == "roomUpdated")
    assert (updated["seq"], updated["room"]["name"]) == (1, "Renamed")
    assert await bob.quiet() == []


async def test_a_hidden_message_is_removed_live_and_stays_a_tombstone(connect: Connect, mod: Any) -> None:
    """Hiding a message sends messageRemoved to joined sockets; history, joins and resumes return a tombstone."""
    alice, bob = await connect(await user("alice")), await connect(await user("bob"))
    await join(alice, "general")
    await join(bob, "general")
    ack = await send(alice, "general", "regrettable", "a1")
    await send(alice, "general", "fine", "a2")
    assert [f["seq"] for f in await messages(bob, 2)] == [1, 2]
    assert [f["seq"] for f in await messages(alice, 2)] == [1, 2]  # her own, broadcast
    await act(moderation.message_hide)(moderator=mod, room_id="general", message_id=ack["messageId"], reason="rude")
    removed = {
        "type": "messageRemoved",
        "roomId": "general",
        "seq": 3,  # the removal's own place in the room's sequence
        "messageId": ack["messageId"],
        "messageSeq": 1,
        "removedBy": "moderator",
    }
    assert await messages(bob, 1, "messageRemoved") == [removed]
    assert await messages(alice, 1, "messageRemoved") == [removed]
    history = await bob.request({"action": "history", "roomId": "general"})
    tombstone = history["messages"][0]
    assert (tombstone["seq"], tombstone["message"], tombstone["removed"]) == (1, "", True)
    assert "removed" not in history["messages"][1]
    carol = await connect(await user("carol"))
    assert (await join(carol, "general"))["messages"][0]["message"] == ""
    # A client that had both messages and resumes from seq 2 is told seq 1 is a tombstone now.
    resumed = await join(carol, "general", last_seq=2)
    assert (resumed["recovered"], resumed["messages"], resumed["removed"]) == (
        True,
        [],
        [{"messageId": ack["messageId"], "seq": 1}],
    )
    assert resumed["events"] == [removed]  # v2: the removal itself, at its seq
    assert "regrettable" not in str(history) + str(resumed)


async def test_a_message_removed_before_its_broadcast_arrives_is_sent_as_a_tombstone(
    connect: Connect, mod: Any
) -> None:
    """If the removal overtakes the message's own event, the socket gets the tombstone, never the text.

    The removal has a seq of its own, after the message's: the socket sees the gap, reads the
    message from the store (a tombstone by now) and sends it before the removal; the
    message's late event is a seq it has, dropped.
    """
    from chat import broadcast, protocol
    from chat.storage import get_store
    from chat.storage.base import NewMessage

    bob = await connect(await user("bob"))
    await join(bob, "general")
    new = NewMessage(
        room_id="general",
        user_id="0",
        username="ghost",
        text="secret",
        connection_id="c",
        client_message_id=None,
        timestamp=services.utcnow(),
        ttl_seconds=3600,
    )
    await sync_to_async(services.room_create)(room_id="general")
    stored = (await sync_to_async(get_store().append_message)(new)).message
    # The removal (seq 2) is broadcast first ...
    await act(moderation.message_hide)(moderator=mod, room_id="general", message_id=stored.message_id, reason="x")
    frames = await messages(bob, 1)
    assert [(f["seq"], f["message"], f.get("removed")) for f in frames] == [(1, "", True)]
    removal = await bob.take(lambda f: f["type"] == "messageRemoved")
    assert (removal["seq"], removal["messageSeq"], removal["messageId"]) == (2, 1, stored.message_id)
    await broadcast.room_event(protocol.room_event(stored))  # ... then the message's own, with the text
    assert await bob.quiet() == []


async def test_purging_a_user_removes_their_messages_live(connect: Connect, mod: Any) -> None:
    """A purge deletes every message of one user, and joined sockets drop each at once."""
    spammer_user = await user("spammer")
    spammer, bob = await connect(spammer_user), await connect(await user("bob"))
    await join(bob, "general")
    for n in range(3):
        await send(spammer, "general", f"buy now {n}", f"s{n}")
    assert [f["seq"] for f in await messages(bob, 3)] == [1, 2, 3]
    removed = await act(moderation.user_messages_purge)(moderator=mod, user=spammer_user, reason="spam")
    assert [m.seq for m in removed] == [1, 2, 3]
    removals = await messages(bob, 3, "messageRemoved")
    # Each removal has its own seq (4, 5, 6) and names the message's (1, 2, 3).
    assert [(f["seq"], f["messageSeq"], f["removedBy"]) for f in removals] == [
        (4, 1, "moderator"),
        (5, 2, "moderator"),
        (6, 3, "moderator"),
    ]
    history = await bob.request({"action": "history", "roomId": "general"})
    assert [(m["message"], m.get("removed")) for m in history["messages"]] == [("", True)] * 3


async def test_a_ban_closes_every_socket_with_4403_and_refuses_new_ones(connect: Connect, mod: Any) -> None:
    """A ban closes all of the user's sockets with 4403 at once; a new socket is refused with 4403 until unbanned."""
    bob_user = await user("bob")
    first, second = await connect(bob_user), await connect(bob_user)
    alice = await connect(await user("alice"))
    await act(moderation.user_ban)(moderator=mod, user=bob_user, reason="abuse")
    for socket in (first, second):
        assert await socket.closed(wait=1.0) == 4403
        assert socket.frames[-1] == {"type": "banned", "reason": "abuse", "until": None}  # why, before the close
    assert await alice.quiet() == []  # others stay connected
    again = await connect(bob_user)
    assert await again.closed() == 4403
    await act(moderation.user_unban)(moderator=mod, user=bob_user, reason="appeal granted")
    back = await connect(bob_user)
    assert await back.quiet() == []


async def test_reporting_a_message_puts_it_in_the_queue_once(connect: Connect, mod: Any) -> None:
    """reportMessage is answered with reported, stores one report per reporter, and refuses unknown messages."""
    alice_user = await user("alice")
    alice, bob = await connect(alice_user), await connect(await user("bob"))
    ack = await send(bob, "general", "offensive", "b1")
    frame = {"action": "reportMessage", "roomId": "general", "messageId": ack["messageId"], "reason": "insult"}
    assert await alice.request(frame) == {"type": "reported", "roomId": "general", "messageId": ack["messageId"]}
    assert (await alice.request(frame))["type"] == "reported"
    reports = await sync_to_async(lambda: list(Report.objects.values("reporter", "text", "reason", "status", "seq")))()
    assert reports == [{"reporter": alice_user.pk, "text": "offensive", "reason": "insult", "status": "open", "seq": 1}]
    unknown = await alice.request({**frame, "messageId": "00000000-0000-4000-8000-000000000000"})
    assert (unknown["code"], unknown["action"]) == ("unknown_message", "reportMessage")
    blank = await alice.request({**frame, "reason": "  "})
    assert blank["code"] == "invalid_field"


def test_destructive_admin_actions_ask_first_saying_what_they_will_do(mod: Any, mod_client: Client) -> None:
    """Purging a user and banning carry the question confirm.js asks before posting (deleting selected messages
    and a report's delete or ban: test_working_a_report_hides_the_message_and_closes_every_report_of_it)."""
    make_user("mallory")
    services.room_create(room_id="general")
    room = mod_client.get("/admin/moderation/rooms/general/").content.decode()
    users = mod_client.get("/admin/moderation/users/?username=mallory").content.decode()
    assert 'data-confirm="Delete every message of {username}' in room
    assert 'data-confirm="Ban {username} for {days} days (0: until lifted)? Their open sockets close now' in users
    assert all("moderation/confirm.js" in page for page in (room, users))


def test_working_a_report_hides_the_message_and_closes_every_report_of_it(mod: Any, mod_client: Client) -> None:
    """Acting on a report from its admin page hides the message and resolves all open reports of it."""
    from chat.storage import get_store
    from chat.storage.base import NewMessage

    author, first, second = make_user("author"), make_user("r1"), make_user("r2")
    message = (
        get_store()
        .append_message(
            NewMessage(
                room_id=services.room_create(room_id="general").room_id,
                user_id=str(author.pk),
                username="author",
                text="nasty",
                connection_id="c",
                client_message_id=None,
                timestamp=services.utcnow(),
                ttl_seconds=3600,
            )
        )
        .message
    )
    reports = [
        Report.objects.create(
            room_id="general",
            message_id=message.message_id,
            seq=1,
            author_id=str(author.pk),
            author_username="author",
            text="nasty",
            reporter=reporter,
            reason="abuse",
            created_at=services.utcnow(),
        )
        for reporter in (first, second)
    ]
    queue = mod_client.get("/admin/chat/report/?status__exact=open").content.decode()
    assert f"/admin/moderation/reports/{reports[0].pk}/" in queue and "nasty" in queue
    page = mod_client.get(f"/admin/moderation/reports/{reports[0].pk}/").content.decode()
    assert "nasty" in page
    # Its delete and ban ask first, saying what they do (static/moderation/confirm.js).
    assert "data-confirm=\"{action} {author}? delete: the message's text is erased for good" in page
    assert 'data-confirm-when="action=delete|ban"' in page and "moderation/confirm.js" in page
    room = mod_client.get("/admin/moderation/rooms/general/").content.decode()
    assert 'data-confirm="Delete {count} messages for good?' in room and 'data-confirm-when="removal=delete"' in room
    response = mod_client.post(
        f"/admin/moderation/reports/{reports[0].pk}/", {"action": "hide", "reason": "abusive", "mute_minutes": 60}
    )
    assert response.status_code == 302
    assert set(Report.objects.values_list("status", flat=True)) == {"resolved"}
    stored = get_store().get_message(room_id="general", message_id=message.message_id, now=services.utcnow())
    assert stored is not None and stored.removed == "hidden"
    assert list(AuditLog.objects.order_by("at").values_list("action", flat=True)) == [
        "message_hide",
        "report_resolve",
    ]


async def test_an_expired_ban_or_mute_no_longer_applies(connect: Connect, mod: Any) -> None:
    """A ban or mute past its end refuses nothing: the user connects and posts again."""
    bob_user = await user("bob")

    def expired() -> None:
        past = services.utcnow() - timedelta(minutes=1)
        Ban.objects.create(user=bob_user, reason="x", created_at=past - timedelta(hours=1), expires_at=past)
        Mute.objects.create(user=bob_user, reason="x", created_at=past - timedelta(hours=1), expires_at=past)

    await sync_to_async(expired)()
    bob = await connect(bob_user)
    assert (await send(bob, "general", "free again", "b1"))["type"] == "ack"


async def test_a_private_rooms_message_cannot_be_reported_by_a_non_member(connect: Connect, mod: Any) -> None:
    """reportMessage of a message in a private room the reporter is not in is forbidden and files nothing."""
    room = await make_room("secret", private=True)
    alice_user = await user("alice")
    await act(moderation.room_member_add)(moderator=mod, room_id=room, user=alice_user, reason="team")
    alice, bob = await connect(alice_user), await connect(await user("bob"))
    ack = await send(alice, room, "private words", "a1")
    refused = await bob.request(
        {"action": "reportMessage", "roomId": room, "messageId": ack["messageId"], "reason": "curious"}
    )
    assert refused["code"] == "unknown_room" and "private words" not in str(refused)
    assert not await sync_to_async(Report.objects.exists)()


def test_unarchiving_and_dismissing_are_audited(mod: Any, mod_client: Client) -> None:
    """An archived room can be unarchived from its page, and a report dismissed from its page; both audited."""
    moderation.room_archive(moderator=mod, room_id="general", reason="quiet")
    mod_client.post("/admin/moderation/rooms/general/", {"op": "unarchive", "reason": "back"})
    room = services.room_get("general")
    assert room is not None and room.archived is False
    report = Report.objects.create(
        room_id="general",
        message_id="m-1",
        seq=1,
        author_id="1",
        author_username="x",
        text="fine really",
        reporter=make_user("reporter"),
        reason="?",
        created_at=services.utcnow(),
    )
    mod_client.post(f"/admin/moderation/reports/{report.pk}/", {"action": "dismiss", "reason": "not a problem"})
    report.refresh_from_db()
    assert (report.status, report.resolved_by, report.resolution) == ("dismissed", mod, "not a problem")
    assert list(AuditLog.objects.order_by("at").values_list("action", "reason")) == [
        ("room_archive", "quiet"),
        ("room_unarchive", "back"),
        ("report_dismiss", "not a problem"),
    ]


async def test_acting_on_a_report_handled_already_applies_nothing_again(connect: Connect, mod: Any) -> None:
    """A second action on a closed report (a stale page, a second moderator) deletes, broadcasts and audits nothing
    more, and says who handled it and when."""
    other_mod = await user("mod2", staff=True, moderator=True)
    alice_user, reporter = await user("alice"), await user("reporter")
    alice, watcher = await connect(alice_user), await connect(await user("watcher"))
    await join(watcher, "general")
    ack = await send(alice, "general", "nasty", "a1")

    def file_report(by: Any) -> Report:
        return Report.objects.create(
            room_id="general",
            message_id=ack["messageId"],
            seq=ack["seq"],
            author_id=str(alice_user.pk),
            author_username="alice",
            text="nasty",
            reporter=by,
            reason="abuse",
            created_at=services.utcnow(),
        )

    first = await sync_to_async(file_report)(reporter)
    second = await sync_to_async(file_report)(await user("reporter2"))

    def post(moderator: Any, report: Report) -> list[str]:
        client = Client()
        client.force_login(moderator)
        page = client.post(
            f"/admin/moderation/reports/{report.pk}/",
            {"action": "delete", "reason": "abusive", "mute_minutes": 60},
            follow=True,
        )
        return [str(m) for m in page.context["messages"]]

    assert "delete done" in " ".join(await sync_to_async(post)(mod, first))
    again = " ".join(await sync_to_async(post)(mod, first))  # the same form posted twice
    stale = " ".join(await sync_to_async(post)(other_mod, second))  # closed with the first
    for said in (again, stale):
        assert "handled already" in said and "by mod at" in said and "nothing was done" in said
    removals = [f for f in await watcher.quiet() if f["type"] == "messageRemoved"]
    assert [f["messageId"] for f in removals] == [ack["messageId"]]
    actions = await sync_to_async(lambda: list(AuditLog.objects.values_list("action", flat=True)))()
    assert sorted(actions) == ["message_delete", "report_resolve"]
