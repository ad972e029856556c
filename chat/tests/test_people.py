"""People and rooms: rooms users make, private rooms and invitations, DMs, members, roles, mutes.

The rules first (chat.people_rules, the protocol's parsers: no server), then the actions
through the real ASGI application on both storage backends: every socket of a user hears of
its room list changing, membership changes are room events a resume replays, and every bad
request gets its own error code and changes nothing.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from pytest_django.fixtures import Settings

from accounts.identity import identity_from_user
from chat import people, people_rules, protocol
from chat.errors import ChatError, ErrorCode
from chat.records import MEMBER, OWNER, Membership
from chat.storage import get_store
from chat.tests.conftest import OpenSocket
from tests.frames import as_read

WAIT = 10.0

# --- the rules (pure) ---------------------------------------------------------------------


def test_one_name_in_any_case_or_spacing_is_one_name() -> None:
    """A name's key (what makes it taken) ignores case, spacing and accents; no ASCII letter gives a digest."""
    assert people_rules.room_name_key("Book Club!") == people_rules.room_name_key("  book   CLUB ") == "book-club"
    assert people_rules.room_name_key("Café Crème") == "cafe-creme"
    assert people_rules.room_name_key("日本").startswith("room-")
    assert people_rules.room_name_key("日本") != people_rules.room_name_key("中国")
    assert not people_rules.room_name_key("DM - secrets").startswith("dm-")


def test_a_rooms_id_is_its_name_and_a_random_tail() -> None:
    """The id reads as the name, its tail is drawn at random, and it is always a valid id, never a DM's."""
    assert people_rules.room_id_for_name("Book Club!", tail="k3x9qa") == "book-club-k3x9qa"
    assert people_rules.room_id_for_name("日本", tail="abc123") == "room-abc123"
    assert people_rules.room_id_for_name("DM - secrets", tail="abc123") == "room-abc123"
    long = people_rules.room_id_for_name("x" * 100, tail="abc123")
    assert long == "x" * 57 + "-abc123" and protocol.ROOM_ID_RE.match(long)
    assert people_rules.room_id_for_name("a" * 56 + " b", tail="abc123") == "a" * 56 + "-abc123"
    tails = {people_rules.new_room_id_tail() for _ in range(50)}
    assert len(tails) == 50 and all(re.fullmatch(r"[a-z0-9]{6}", t) for t in tails)


def test_an_empty_room_name_is_refused() -> None:
    """A name of spaces only is empty_room_name."""
    with pytest.raises(ChatError) as refused:
        people_rules.room_name_key("   ")
    assert refused.value.code == ErrorCode.EMPTY_ROOM_NAME


def test_a_dm_id_is_the_same_both_ways_and_differs_per_group() -> None:
    """The DM of the same people has one id, whoever opens it; other people, another id."""
    one = people_rules.direct_room_id(["7", "12"])
    assert one == people_rules.direct_room_id(["12", "7", "7"])
    assert one.startswith("dm-") and protocol.ROOM_ID_RE.match(one)
    assert one != people_rules.direct_room_id(["7", "12", "3"])


def test_a_dm_needs_someone_else_and_at_most_the_maximum() -> None:
    """A DM with yourself is self_invite; past the maximum people it is too_many_members."""
    with pytest.raises(ChatError) as alone:
        people_rules.check_direct_people(opener="1", others=["1"], max_members=8)
    assert alone.value.code == ErrorCode.SELF_INVITE
    with pytest.raises(ChatError) as crowd:
        people_rules.check_direct_people(opener="1", others=["2", "3"], max_members=2)
    assert crowd.value.code == ErrorCode.TOO_MANY_MEMBERS
    assert people_rules.check_direct_people(opener="2", others=["1", "2"], max_members=2) == ["1", "2"]


def _members(*pairs: tuple[str, str]) -> list[Membership]:
    return [Membership(room_id="r", user_id=user, role=role) for user, role in pairs]


def test_a_room_with_members_keeps_an_owner() -> None:
    """The last owner can neither leave nor be demoted while others are in; alone, or with another owner, they can."""
    room = _members(("a", OWNER), ("b", MEMBER))
    for new_role in (None, MEMBER):
        with pytest.raises(ChatError) as refused:
            people_rules.check_owner_stays(members=room, user_id="a", new_role=new_role)
        assert refused.value.code == ErrorCode.LAST_OWNER
    people_rules.check_owner_stays(members=room, user_id="b", new_role=None)
    people_rules.check_owner_stays(members=_members(("a", OWNER)), user_id="a", new_role=None)
    people_rules.check_owner_stays(members=_members(("a", OWNER), ("b", OWNER)), user_id="a", new_role=MEMBER)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"action": "createRoom"}, "invalid_field"),
        ({"action": "createRoom", "name": 5}, "invalid_field"),
        ({"action": "setMemberRole", "roomId": "r", "username": "bob", "role": "king"}, "invalid_field"),
        ({"action": "addMember", "roomId": "Bad Id", "username": "bob"}, "invalid_room"),
        ({"action": "openDirect", "usernames": []}, "invalid_field"),
        ({"action": "openDirect", "usernames": ["ok", 3]}, "invalid_field"),
        ({"action": "muteRoom", "roomId": "r", "muted": "yes"}, "invalid_field"),
        ({"action": "members", "roomId": "r", "next": ""}, "invalid_field"),
    ],
)
def test_bad_people_frames_get_a_code(frame: dict[str, Any], code: str) -> None:
    """Malformed people actions are refused by the parser with a stable code and the action named."""
    with pytest.raises(protocol.ProtocolError) as refused:
        protocol.parse_client_frame(json.dumps(frame), protocol.Limits())
    assert refused.value.code.value == code
    assert refused.value.action == frame["action"]


# --- through the server, on both backends -------------------------------------------------------

pytestmark_db = pytest.mark.django_db(transaction=True)


class Person:
    """A signed-in user's socket and everything it has received."""

    def __init__(self, name: str, user_id: str, socket: WebsocketCommunicator) -> None:
        self.name = name
        self.user_id = user_id
        self.socket = socket
        self.frames: list[dict[str, Any]] = []

    async def send(self, frame: dict[str, Any]) -> None:
        await self.socket.send_json_to(frame)

    async def wait_for(self, match: Callable[[dict[str, Any]], bool], *, timeout: float = WAIT) -> dict[str, Any]:
        """The first frame (received before or now) that matches; taken off the list."""
        deadline = time.monotonic() + timeout
        while True:
            for frame in self.frames:
                if match(frame):
                    self.frames.remove(frame)
                    return frame
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.name}: no matching frame in {timeout}s; got {self.frames}")
            try:
                self.frames.extend(as_read(await self.socket.receive_json_from(timeout=left)))
            except TimeoutError:
                continue

    async def ask(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Send an action and return its answer: `done`, an error naming it, or its own frame type."""
        await self.send(frame)
        action = frame["action"]
        answer_types = {"listRooms": "rooms", "browseRooms": "browse", "members": "members"}
        return await self.wait_for(
            lambda f: (
                (f.get("type") in ("done", "error") and f.get("action") == action)
                or f.get("type") == answer_types.get(action)
            )
        )

    async def error(self, frame: dict[str, Any]) -> str:
        answer = await self.ask(frame)
        assert answer["type"] == "error", answer
        return str(answer["code"])


async def _person(open_socket: OpenSocket, name: str, *, moderator: bool = False) -> Person:
    user_model = get_user_model()
    user = await user_model.objects.acreate(username=name)
    if moderator:
        group, _ = await Group.objects.aget_or_create(name="moderators")
        await sync_to_async(user.groups.add)(group)
    client = Client()
    await sync_to_async(client.force_login)(user)
    socket = await open_socket(f"sessionid={client.cookies['sessionid'].value}".encode())
    return Person(name, str(user.pk), socket)


def _is(kind: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f.get("type") == kind and all(f.get(k) == v for k, v in fields.items())


def _room_is(kind: str, room_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f.get("type") == kind and (f.get("room") or {}).get("roomId", f.get("roomId")) == room_id


@pytestmark_db
async def test_a_private_room_by_name_its_invitations_and_removals(
    storage_backend: str, session_sockets: OpenSocket
) -> None:
    """A private room made by name; the owner invites by username, the invitee sees it live,
    a removed member's socket leaves at once; every membership change is a room event."""
    alice = await _person(session_sockets, "alice")
    bob = await _person(session_sockets, "bob")
    created = await alice.ask({"action": "createRoom", "name": "Book Club", "private": True, "topic": "Dune"})
    book = created["roomId"]
    assert created["type"] == "done" and re.fullmatch(r"book-club-[a-z0-9]{6}", book), created
    assert created["room"]["kind"] == "private" and created["room"]["role"] == "owner"
    assert (await alice.wait_for(_room_is("roomAdded", book)))["room"]["topic"] == "Dune"
    # The room was made, never opened: the same name again is taken.
    assert await alice.error({"action": "createRoom", "name": "book  club"}) == "room_name_taken"
    assert await alice.error({"action": "createRoom", "name": "  "}) == "empty_room_name"
    assert await alice.error({"action": "createRoom", "name": "General"}) == "room_name_taken"

    # Bob does not see it: joining is answered as for no room at all.
    assert await bob.error({"action": "joinRoom", "roomId": book}) == "unknown_room"
    await alice.send({"action": "joinRoom", "roomId": book})
    joined = await alice.wait_for(_is("joined", roomId=book))
    assert (await alice.ask({"action": "addMember", "roomId": book, "username": "bob"}))["type"] == "done"
    added = await bob.wait_for(_room_is("roomAdded", book))
    assert added["room"]["name"] == "Book Club" and added["room"]["role"] == "member"
    event = await alice.wait_for(_is("memberAdded", roomId=book))
    assert event["userId"] == bob.user_id and event["username"] == "bob" and event["seq"] == joined["lastSeq"] + 1

    # Bad invitations: each its own code, nothing changes.
    assert await alice.error({"action": "addMember", "roomId": book, "username": "nobody"}) == "unknown_user"
    assert await alice.error({"action": "addMember", "roomId": book, "username": "alice"}) == "self_invite"
    carol = await _person(session_sockets, "carol")
    assert await bob.error({"action": "addMember", "roomId": book, "username": "carol"}) == "not_owner"
    assert await carol.error({"action": "addMember", "roomId": book, "username": "carol"}) == "unknown_room"
    assert await carol.error({"action": "members", "roomId": book}) == "unknown_room"
    assert await alice.error({"action": "removeMember", "roomId": book}) == "last_owner"
    assert await alice.error({"action": "removeMember", "roomId": book, "username": "carol"}) == "not_member"

    members = await bob.ask({"action": "members", "roomId": book})
    # Both have a socket open: the member list reads their presence (chat.presence).
    assert {(m["username"], m["role"], m["status"]) for m in members["members"]} == {
        ("alice", "owner", "online"),
        ("bob", "member", "online"),
    }
    assert members["next"] is None

    await bob.send({"action": "joinRoom", "roomId": book})
    await bob.wait_for(_is("joined", roomId=book))
    assert (await alice.ask({"action": "removeMember", "roomId": book, "username": "bob"}))["type"] == "done"
    await bob.wait_for(_is("roomRemoved", roomId=book))
    assert (await bob.wait_for(_is("left", roomId=book)))["reason"] == "removed"
    removed = await alice.wait_for(_is("memberRemoved", roomId=book))
    assert removed["userId"] == bob.user_id
    assert await bob.error({"action": "history", "roomId": book}) == "unknown_room"

    # The membership changes are on the room's sequence: a resume from before them replays them.
    await alice.send({"action": "joinRoom", "roomId": book, "lastSeq": joined["lastSeq"]})
    resumed = await alice.wait_for(_is("joined", roomId=book))
    assert [e["type"] for e in resumed["events"]] == ["memberAdded", "memberRemoved"]


@pytestmark_db
async def test_owners_hand_ownership_on_and_rename(storage_backend: str, session_sockets: OpenSocket) -> None:
    """An owner makes a member an owner (a room event), who may then rename it; every member's list hears of it."""
    alice = await _person(session_sockets, "alice")
    bob = await _person(session_sockets, "bob")
    plans = (await alice.ask({"action": "createRoom", "name": "Plans"}))["roomId"]
    await alice.ask({"action": "addMember", "roomId": plans, "username": "bob"})
    await bob.wait_for(_room_is("roomAdded", plans))
    assert await bob.error({"action": "updateRoom", "roomId": plans, "name": "Bob's"}) == "not_owner"
    await alice.ask({"action": "setMemberRole", "roomId": plans, "username": "bob", "role": "owner"})
    assert (await bob.wait_for(_room_is("roomChanged", plans)))["room"]["role"] == "owner"
    await alice.send({"action": "joinRoom", "roomId": plans, "lastSeq": 0})
    joined = await alice.wait_for(_is("joined", roomId=plans))
    assert [(e["type"], e.get("role")) for e in joined["events"]] == [
        ("memberAdded", "member"),
        ("memberUpdated", "owner"),
    ]
    assert (await bob.ask({"action": "updateRoom", "roomId": plans, "name": "Big Plans", "topic": "Q1"}))[
        "type"
    ] == "done"
    changed = await alice.wait_for(lambda f: f.get("type") == "roomChanged" and f["room"]["name"] == "Big Plans")
    assert changed["room"]["topic"] == "Q1" and changed["room"]["roomId"] == plans
    updated = await alice.wait_for(_is("roomUpdated", roomId=plans))
    assert updated["room"]["name"] == "Big Plans" and updated["room"]["topic"] == "Q1"
    # Alice may leave now: bob owns it too.
    assert (await alice.ask({"action": "removeMember", "roomId": plans}))["type"] == "done"
    await alice.wait_for(_is("roomRemoved", roomId=plans))


@pytestmark_db
async def test_direct_messages_are_one_room_both_ways(
    storage_backend: str, session_sockets: OpenSocket, settings: Settings
) -> None:
    """Opening a DM twice, from either side, gives one room; the other sees it live; a DM takes
    no invitations; moderators do not read it; a group DM is capped."""
    settings.CHAT_MAX_DIRECT_MEMBERS = 3
    alice = await _person(session_sockets, "alice")
    bob = await _person(session_sockets, "bob")
    first = await alice.ask({"action": "openDirect", "usernames": ["bob"]})
    assert first["type"] == "done" and first["roomId"].startswith("dm-") and first["room"]["kind"] == "direct"
    assert first["room"]["name"] == "bob"  # named after the others
    added = await bob.wait_for(_room_is("roomAdded", first["roomId"]))
    assert added["room"]["name"] == "alice"
    again = await bob.ask({"action": "openDirect", "username": "alice"})
    assert again["roomId"] == first["roomId"]
    assert (await alice.ask({"action": "openDirect", "usernames": ["bob"]}))["roomId"] == first["roomId"]
    dm = first["roomId"]
    assert await alice.error({"action": "addMember", "roomId": dm, "username": "bob"}) == "direct_room"
    assert await alice.error({"action": "updateRoom", "roomId": dm, "name": "x"}) == "direct_room"
    assert await alice.error({"action": "openDirect", "usernames": ["alice"]}) == "self_invite"
    assert await alice.error({"action": "openDirect", "usernames": ["ghost"]}) == "unknown_user"
    await _person(session_sockets, "carol")
    await _person(session_sockets, "dave")
    assert await alice.error({"action": "openDirect", "usernames": ["bob", "carol", "dave"]}) == "too_many_members"
    group = await alice.ask({"action": "openDirect", "usernames": ["bob", "carol"]})
    assert group["roomId"] != dm and group["room"]["name"] == "bob, carol"

    # A DM works like any room: send, and the other member receives it.
    await bob.send({"action": "joinRoom", "roomId": dm})
    await bob.wait_for(_is("joined", roomId=dm))
    await alice.send({"action": "sendMessage", "roomId": dm, "message": "hi bob", "clientMessageId": "c1"})
    assert (await bob.wait_for(_is("message", roomId=dm)))["message"] == "hi bob"

    mod = await _person(session_sockets, "mod", moderator=True)
    assert await mod.error({"action": "joinRoom", "roomId": dm}) == "unknown_room"
    assert await mod.error({"action": "members", "roomId": dm}) == "unknown_room"


@pytestmark_db
async def test_room_lists_browse_join_leave_and_mute(storage_backend: str, session_sockets: OpenSocket) -> None:
    """A user's rooms are listed by last activity; public rooms are browsed and joined; a room
    is muted for one user and left (the membership, not just the socket)."""
    alice = await _person(session_sockets, "alice")
    bob = await _person(session_sockets, "bob")
    quiet = (await alice.ask({"action": "createRoom", "name": "Quiet"}))["roomId"]
    busy = (await alice.ask({"action": "createRoom", "name": "Busy"}))["roomId"]
    secret = (await alice.ask({"action": "createRoom", "name": "Secret", "private": True}))["roomId"]
    await alice.send({"action": "joinRoom", "roomId": quiet})
    await alice.wait_for(_is("joined", roomId=quiet))
    await alice.send({"action": "sendMessage", "roomId": quiet, "message": "latest", "clientMessageId": "q1"})
    await alice.wait_for(_is("ack", roomId=quiet))
    listed = await alice.ask({"action": "listRooms"})
    assert listed["rooms"][0]["roomId"] == quiet
    assert {r["roomId"] for r in listed["rooms"]} == {quiet, busy, secret}

    browse = await bob.ask({"action": "browseRooms"})
    ids = {r["roomId"] for r in browse["rooms"]}
    assert {quiet, busy} <= ids and secret not in ids
    assert not any(r["joined"] for r in browse["rooms"])
    assert (await bob.ask({"action": "browseRooms", "query": "bus"}))["rooms"][0]["roomId"] == busy
    assert await bob.error({"action": "addMember", "roomId": secret}) == "unknown_room"
    assert (await bob.ask({"action": "addMember", "roomId": busy}))["type"] == "done"
    await bob.wait_for(_room_is("roomAdded", busy))
    assert [r["roomId"] for r in (await bob.ask({"action": "listRooms"}))["rooms"]] == [busy]

    assert await bob.error({"action": "muteRoom", "roomId": quiet}) == "not_member"
    await bob.ask({"action": "muteRoom", "roomId": busy})
    assert (await bob.wait_for(_room_is("roomChanged", busy)))["room"]["muted"] is True
    assert (await bob.ask({"action": "listRooms"}))["rooms"][0]["muted"] is True

    await bob.send({"action": "joinRoom", "roomId": busy})
    await bob.wait_for(_is("joined", roomId=busy))
    assert (await bob.ask({"action": "removeMember", "roomId": busy}))["type"] == "done"
    await bob.wait_for(_is("roomRemoved", roomId=busy))
    await bob.wait_for(_is("left", roomId=busy))
    assert (await bob.ask({"action": "listRooms"}))["rooms"] == []
    assert await bob.error({"action": "removeMember", "roomId": busy}) == "not_member"


@pytestmark_db
async def test_every_socket_of_a_user_hears_of_a_new_room(storage_backend: str, session_sockets: OpenSocket) -> None:
    """roomAdded reaches each of the invitee's open sockets (a user's tabs and devices)."""
    alice = await _person(session_sockets, "alice")
    bob = await _person(session_sockets, "bob")
    bob_user = await get_user_model().objects.aget(username="bob")
    client = Client()
    await sync_to_async(client.force_login)(bob_user)
    second = Person(
        "bob-2", bob.user_id, await session_sockets(f"sessionid={client.cookies['sessionid'].value}".encode())
    )
    team = (await alice.ask({"action": "createRoom", "name": "Team", "private": True}))["roomId"]
    await alice.ask({"action": "addMember", "roomId": team, "username": "bob"})
    for socket in (bob, second):
        await socket.wait_for(_room_is("roomAdded", team))


@pytestmark_db
async def test_creating_over_http_never_opens_a_taken_room(storage_backend: str) -> None:
    """POST /api/rooms {name} makes a room of a derived id; the same name again is 409
    room_name_taken, not the existing room; a chosen id is refused (ids are never chosen)."""
    user = await get_user_model().objects.acreate(username="alice")
    client = Client()
    await sync_to_async(client.force_login)(user)
    post = sync_to_async(client.post)
    first = await post("/api/rooms", data=json.dumps({"name": "Town"}), content_type="application/json")
    assert first.status_code == 201
    town = first.json()["room"]
    assert re.fullmatch(r"town-[a-z0-9]{6}", town["roomId"]) and town["name"] == "Town"
    second = await post("/api/rooms", data=json.dumps({"name": "  TOWN "}), content_type="application/json")
    assert second.status_code == 409 and second.json()["error"] == "room_name_taken"
    chosen = await post("/api/rooms", data=json.dumps({"roomId": "mine"}), content_type="application/json")
    assert chosen.status_code == 400 and chosen.json()["error"] == "invalid_field"
    membership = await sync_to_async(get_store().get_membership)(room_id=town["roomId"], user_id=str(user.pk))
    assert membership is not None and membership.role == OWNER
    private = await post(
        "/api/rooms", data=json.dumps({"name": "Den", "private": True}), content_type="application/json"
    )
    assert private.status_code == 201
    den = await sync_to_async(get_store().get_room)(private.json()["room"]["roomId"])
    assert den is not None and den.private


@pytestmark_db
@pytest.mark.parametrize("storage_backend", ["dynamodb"], indirect=True)
async def test_browsing_public_rooms_on_dynamodb_is_an_index_query_never_a_scan(
    storage_backend: str, session_sockets: OpenSocket
) -> None:
    """browseRooms reads PublicRoomsIndex: no Scan of the Rooms table (with its memberships),
    and a room made private leaves the list, one made public enters it."""
    alice = await _person(session_sockets, "alice")
    bob = await _person(session_sockets, "bob")
    garden, attic, porch = [
        (await alice.ask({"action": "createRoom", "name": name, "private": private}))["roomId"]
        for name, private in (("Garden", False), ("Attic", True), ("Porch", False))
    ]
    operations: list[str] = []

    def record(model: Any, **_: Any) -> None:
        operations.append(model.name)

    events = get_store().client.meta.events  # type: ignore[attr-defined]
    events.register("before-call.dynamodb", record)
    try:
        browse = await bob.ask({"action": "browseRooms"})
        assert {r["roomId"] for r in browse["rooms"]} == {"general", garden, porch}
        assert "Query" in operations and "Scan" not in operations
        await alice.ask({"action": "updateRoom", "roomId": porch, "private": True})
        await alice.ask({"action": "updateRoom", "roomId": attic, "private": False})
        operations.clear()
        browse = await bob.ask({"action": "browseRooms"})
        assert {r["roomId"] for r in browse["rooms"]} == {"general", garden, attic}
        assert "Scan" not in operations
    finally:
        events.unregister("before-call.dynamodb", record)


@pytestmark_db
async def test_members_answers_page_by_page_with_next(
    storage_backend: str, session_sockets: OpenSocket, settings: Settings
) -> None:
    """A room with more members than CHAT_MEMBERS_PAGE is answered in pages: `next` asks for
    the following one, null on the last; every member once, each with a status."""
    settings.CHAT_MEMBERS_PAGE = 2
    alice = await _person(session_sockets, "alice")
    for name in ("bob", "carol", "dan"):
        await _person(session_sockets, name)
    big = (await alice.ask({"action": "createRoom", "name": "Big"}))["roomId"]
    for name in ("bob", "carol", "dan"):
        assert (await alice.ask({"action": "addMember", "roomId": big, "username": name}))["type"] == "done"
    seen: list[str] = []
    frame: dict[str, Any] = {"action": "members", "roomId": big}
    for _ in range(3):
        page = await alice.ask(frame)
        assert len(page["members"]) <= 2 and all(m["status"] == "online" for m in page["members"])
        seen += [m["username"] for m in page["members"]]
        if page["next"] is None:
            break
        frame = {"action": "members", "roomId": big, "next": page["next"]}
    assert sorted(seen) == ["alice", "bob", "carol", "dan"]


class _Operations:
    """The DynamoDB operations made between start() and stop(), by name (Query, Scan, …)."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._events = get_store().client.meta.events  # type: ignore[attr-defined]

    def _record(self, model: Any, **_: Any) -> None:
        self.names.append(model.name)

    def start(self) -> None:
        self._events.register("before-call.dynamodb", self._record)

    def stop(self) -> None:
        self._events.unregister("before-call.dynamodb", self._record)


def _signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytestmark_db
@pytest.mark.parametrize("storage_backend", ["dynamodb"], indirect=True)
def test_the_room_list_on_dynamodb_is_key_and_index_queries_never_a_scan(storage_backend: str) -> None:
    """The sidebar and GET /api/rooms list public rooms, the user's private rooms and DMs,
    and for a moderator every private room but others' DMs, from index and key queries: no
    Scan of the Rooms table (with every membership in it)."""
    users = {name: get_user_model().objects.create_user(username=name) for name in ("alice", "bob", "carol", "mod")}
    users["mod"].groups.add(Group.objects.get_or_create(name="moderators")[0])
    alice = identity_from_user(users["alice"])
    assert alice is not None
    garden = people.room_create_named(identity=alice, name="Garden").room_id
    attic = people.room_create_named(identity=alice, name="Attic", private=True).room_id
    people.member_add(identity=alice, room_id=attic, username="bob")
    dm = people.direct_open(identity=alice, usernames=("bob",)).room_id
    clients = {name: _signed_in(user) for name, user in users.items()}
    operations = _Operations()
    operations.start()
    try:
        listed = {name: {r["roomId"] for r in c.get("/api/rooms").json()["rooms"]} for name, c in clients.items()}
        sidebar = clients["carol"].get(f"/rooms/{garden}/")
    finally:
        operations.stop()
    assert listed == {
        "alice": {"general", garden, attic, dm},
        "bob": {"general", garden, attic, dm},
        "carol": {"general", garden},
        "mod": {"general", garden, attic},
    }
    assert sidebar.status_code == 200
    assert {r.room_id for r in sidebar.context["rooms"]} == {"general", garden}
    assert "Query" in operations.names and "Scan" not in operations.names


@pytestmark_db
@pytest.mark.parametrize("storage_backend", ["dynamodb"], indirect=True)
def test_the_room_quota_on_dynamodb_is_an_index_query_never_a_scan(storage_backend: str, settings: Settings) -> None:
    """Creating a room counts the creator's rooms of the last day with one index query (no
    Scan): past CHAT_ROOMS_PER_USER_PER_DAY it is 429 quota_exceeded; others' rooms do not count."""
    settings.CHAT_ROOMS_PER_USER_PER_DAY = 2
    alice, bob = (_signed_in(get_user_model().objects.create_user(username=name)) for name in ("alice", "bob"))

    def create(client: Client, name: str) -> Any:
        return client.post("/api/rooms", data=json.dumps({"name": name}), content_type="application/json")

    operations = _Operations()
    operations.start()
    try:
        made = [create(alice, name).status_code for name in ("One", "Two")]
        refused = create(alice, "Three")
        other = create(bob, "Four")
    finally:
        operations.stop()
    assert made == [201, 201]
    assert refused.status_code == 429 and refused.json()["error"] == "quota_exceeded"
    assert other.status_code == 201
    assert "Query" in operations.names and "Scan" not in operations.names
