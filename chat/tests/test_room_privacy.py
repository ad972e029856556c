"""No private room leaks: every way to name a room answers a non-member as for no room at all.

One table, `PROBES`, names every URL and every protocol action that takes a room id, with
how to ask it about a room. The walk asks each probe about a private room (with messages,
that the caller is not a member of) and about a random id, and the two answers must be the
same once the id itself is taken out. A URL pattern or a client action that is in neither
`PROBES` nor `NAMES_NO_ROOM` fails the suite: a new endpoint must say how it treats rooms.

Creating names a room too: a name whose derived id is a private room's answers exactly as a
name no room has (a new room, of an id with its own random tail), so the comparison there
takes out the tail and the time as well as the name.

A private room's message can also be named by its id alone, from a room the caller may read
(`MESSAGE_PROBES`: edit, delete, react, reply, thread): such an id must answer as an id that
names no message at all, never "that message is in another room".

"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from chat import protocol, services
from chat.storage import get_store
from chat.storage.base import NewMessage
from chat.tests.conftest import OpenSocket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

WAIT = 5.0
SECRET_NAME = "Quarterly Layoff Plans"


@dataclass
class World:
    """A signed-in non-member (HTTP client and socket) and the rooms they must not see."""

    client: Client
    socket: WebsocketCommunicator
    private_room: str
    message_id: str  # a message of the private room
    message_seq: int  # its seq
    open_room: str  # a public room the caller may read


Probe = Callable[[World, str], Awaitable[Any]]


def _scrub(value: Any, room_id: str) -> Any:
    """The answer with the asked-for id taken out (it is echoed, rightly, in both answers)."""
    if isinstance(value, str):
        # Django's CSRF tokens in a page differ per render.
        return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", value.replace(room_id, "<room>"))
    if isinstance(value, (list, tuple)):
        return [_scrub(item, room_id) for item in value]
    if isinstance(value, dict):
        return {key: _scrub(item, room_id) for key, item in value.items()}
    return value


async def _http(world: World, method: str, path: str, **kwargs: Any) -> tuple[int, str]:
    call = getattr(world.client, method)
    response = await sync_to_async(call)(path, **kwargs)
    return response.status_code, response.content.decode("utf-8", "replace")


async def _frame(world: World, frame: dict[str, Any]) -> dict[str, Any]:
    await world.socket.send_json_to(frame)
    answer = await world.socket.receive_json_from(timeout=WAIT)
    assert isinstance(answer, dict)
    return answer


_TAIL = re.compile(r"<room>-[a-z0-9]{6}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


def _scrub_created(value: Any) -> Any:
    """A creating answer with the new room's random tail and its creation time taken out."""
    return json.loads(_TIME.sub("<time>", _TAIL.sub("<room>-<tail>", json.dumps(value))))


async def rest_create(world: World, room_id: str) -> Any:
    """A room named as the id: its derived id would be the private room's."""
    return await _http(world, "post", "/api/rooms", data=json.dumps({"name": room_id}), content_type="application/json")


async def rest_list(world: World, room_id: str) -> Any:
    status, body = await _http(world, "get", "/api/rooms")
    return status, [r["roomId"] == room_id or r["name"] == SECRET_NAME for r in json.loads(body)["rooms"]]


async def page_room(world: World, room_id: str) -> Any:
    return await _http(world, "get", f"/rooms/{room_id}/")


async def page_rooms_list(world: World, room_id: str) -> Any:
    status, body = await _http(world, "get", "/")
    return status, room_id in body or SECRET_NAME in body


async def page_rooms_create(world: World, room_id: str) -> Any:
    response = await sync_to_async(world.client.post)("/", data={"name": room_id})
    return response.status_code, response.get("Location"), response.content.decode()


async def rest_upload_slot(world: World, room_id: str) -> Any:
    body = {"roomId": room_id, "name": "a.txt", "size": 3, "contentType": "text/plain"}
    return await _http(world, "post", "/api/uploads", data=json.dumps(body), content_type="application/json")


async def ws_join(world: World, room_id: str) -> Any:
    return await _frame(world, {"action": "joinRoom", "roomId": room_id})


async def ws_history(world: World, room_id: str) -> Any:
    return await _frame(world, {"action": "history", "roomId": room_id})


async def ws_history_around(world: World, room_id: str) -> Any:
    """Jumping to the private room's message (a quoted reply, a search hit) by its seq."""
    return await _frame(world, {"action": "history", "roomId": room_id, "aroundSeq": world.message_seq})


async def ws_history_after(world: World, room_id: str) -> Any:
    """Filling up from that message towards the live end, page by page."""
    return await _frame(world, {"action": "history", "roomId": room_id, "afterSeq": max(world.message_seq - 1, 0)})


async def ws_send(world: World, room_id: str) -> Any:
    return await _frame(world, {"action": "sendMessage", "roomId": room_id, "message": "hi", "clientMessageId": "c1"})


async def ws_report(world: World, room_id: str) -> Any:
    frame = {"action": "reportMessage", "roomId": room_id, "messageId": world.message_id, "reason": "spam"}
    return await _frame(world, frame)


def _message_probe(action: str, **fields: Any) -> Probe:
    """A change to the private room's message (chat.message_changes, chat.reactions), by a non-member."""

    async def probe(world: World, room_id: str) -> Any:
        return await _frame(world, {"action": action, "roomId": room_id, "messageId": world.message_id, **fields})

    return probe


async def ws_leave(world: World, room_id: str) -> Any:
    return await _frame(world, {"action": "leaveRoom", "roomId": room_id})


async def ws_typing(world: World, room_id: str) -> Any:
    return await _frame(world, {"action": "typing", "roomId": room_id})


async def ws_create_room(world: World, room_id: str) -> Any:
    """The answer and, when a room was made, the roomAdded frame that follows it to the creator."""
    await world.socket.send_json_to({"action": "createRoom", "name": room_id})
    frames: list[dict[str, Any]] = []
    for _ in range(4):
        frame = await world.socket.receive_json_from(timeout=WAIT)
        frames.append(frame)
        if frame.get("type") == "error" or {f.get("type") for f in frames} >= {"done", "roomAdded"}:
            break
    return sorted(frames, key=lambda f: str(f.get("type")))


def _people_probe(action: str, **fields: Any) -> Probe:
    async def probe(world: World, room_id: str) -> Any:
        return await _frame(world, {"action": action, "roomId": room_id, **fields})

    return probe


async def ws_mark_read(world: World, room_id: str) -> Any:
    return await _frame(world, {"action": "markRead", "roomId": room_id, "seq": 1})


async def ws_receipts(world: World, room_id: str) -> Any:
    return await _frame(world, {"action": "receipts", "roomId": room_id})


async def ws_read_states(world: World, room_id: str) -> Any:
    return await _frame(world, {"action": "readStates", "roomIds": [room_id]})


async def rest_search_room(world: World, room_id: str) -> Any:
    """Search filtered to a room (`room:<id>`): a private room's words are found nowhere."""
    return await _http(world, "get", "/api/search", data={"q": f"plan room:{room_id}"})


async def rest_notify_room(world: World, room_id: str) -> Any:
    body = json.dumps({"roomId": room_id, "level": "all"})
    return await _http(world, "post", "/api/notifications/rooms", data=body, content_type="application/json")


# (kind, name) -> the probe, and whether it creates (a new room, its tail and time taken out).
PROBES: dict[tuple[str, str], tuple[Probe, bool]] = {
    ("url", "api-rooms GET"): (rest_list, False),
    ("url", "api-rooms POST"): (rest_create, True),
    ("url", "chat:room"): (page_room, False),
    ("url", "chat:rooms GET"): (page_rooms_list, False),
    ("url", "chat:rooms POST"): (page_rooms_create, True),
    ("url", "uploads:slots"): (rest_upload_slot, False),
    ("action", "joinRoom"): (ws_join, False),
    ("action", "history"): (ws_history, False),
    ("action", "history aroundSeq"): (ws_history_around, False),
    ("action", "history afterSeq"): (ws_history_after, False),
    ("action", "sendMessage"): (ws_send, False),
    ("action", "reportMessage"): (ws_report, False),
    ("action", "leaveRoom"): (ws_leave, False),
    ("action", "typing"): (ws_typing, False),
    # People and rooms (chat.people)
    ("action", "createRoom"): (ws_create_room, True),
    ("action", "updateRoom"): (_people_probe("updateRoom", name="Mine now", private=False), False),
    ("action", "addMember"): (_people_probe("addMember", username="owner"), False),
    ("action", "addMember self"): (_people_probe("addMember"), False),
    ("action", "removeMember"): (_people_probe("removeMember", username="owner"), False),
    ("action", "removeMember self"): (_people_probe("removeMember"), False),
    ("action", "setMemberRole"): (_people_probe("setMemberRole", username="mallory", role="owner"), False),
    ("action", "muteRoom"): (_people_probe("muteRoom"), False),
    ("action", "members"): (_people_probe("members"), False),
    # Changes people make to messages (chat.message_changes, chat.reactions)
    ("action", "editMessage"): (_message_probe("editMessage", message="mine now", clientMessageId="e1"), False),
    ("action", "deleteMessage"): (_message_probe("deleteMessage"), False),
    ("action", "addReaction"): (_message_probe("addReaction", emoji="👍"), False),
    ("action", "removeReaction"): (_message_probe("removeReaction", emoji="👍"), False),
    ("action", "thread"): (_message_probe("thread"), False),
    # A moderator's message menu: `forbidden` for anyone else, whatever the room (chat.moderation)
    ("action", "moderateMessage"): (_message_probe("moderateMessage", removal="hidden", reason="x"), False),
    ("action", "banUser"): (_people_probe("banUser", userId="1", reason="x"), False),
    ("action", "markRead"): (ws_mark_read, False),
    ("action", "receipts"): (ws_receipts, False),
    ("action", "readStates"): (ws_read_states, False),
    ("url", "notifications-room"): (rest_notify_room, False),
    ("url", "api-search"): (rest_search_room, False),
}

# URL names (or prefixes of included URL sets) and actions that take no room id, and why.
NAMES_NO_ROOM: dict[tuple[str, str], str] = {
    ("url", "admin/"): "moderators' site: moderators may see every room",
    ("url", "metrics"): "process counters, no room names",
    ("url", "login"): "sign-in",
    ("url", "logout"): "sign-out",
    ("url", "logout_everywhere"): "sign-out of every session",
    ("url", "signup"): "sign-up",
    ("url", "cognito_authorize"): "sign-in",
    ("url", "cognito_callback"): "sign-in",
    ("url", "api_auth_token"): "sign-in",
    ("url", "api_auth_refresh"): "sign-in",
    ("url", "api_auth_revoke"): "sign-out of a token client",
    ("url", "api_auth_signout_everywhere"): "sign-out of every sign-in of a token client's user",
    ("url", "api_auth_me"): "who am I",
    ("url", "api_auth_demo"): "the demo accounts' sign-in hint, no room",
    ("url", "jwks"): "public keys",
    ("url", "app"): "static files of the React build; rooms are named after the '#', never sent",
    ("url", "uploads:detail"): "an upload id: only for a reader of its room (uploads/tests/test_sharing.py)",
    ("url", "uploads:receive"): "an upload id and its slot's signed token",
    ("url", "uploads:complete"): "an upload id: only its uploader's",
    ("url", "uploads:download"): "a signed URL minted for readers; a signed-in non-member is refused",
    ("action", "sendmessage"): "the AWS sample's frame: always the default room",
    ("action", "ping"): "no room",
    ("action", "authenticate"): "no room",
    ("action", "refreshToken"): "no room",
    ("action", "presence"): "the socket's own presence: no room",
    ("action", "listRooms"): "the caller's own rooms only",
    ("action", "browseRooms"): "public rooms only",
    ("action", "openDirect"): "names people, not rooms: the caller's own DM",
    ("action", "mentions"): "the caller's mentions, from rooms they may read only",
    ("url", "notifications"): "the caller's own settings",
    ("url", "notifications-subscribe"): "a browser's push subscription",
    ("url", "notifications-unsubscribe"): "a browser's push subscription",
    ("url", "notifications-device"): "a phone's push token",
}


def _url_names() -> set[str]:
    names: set[str] = set()

    def walk(patterns: list[Any], prefix: str) -> None:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                if entry.app_name == "admin" or entry.namespace == "admin":
                    names.add(prefix + str(entry.pattern))
                    continue
                ns = f"{entry.namespace}:" if entry.namespace else ""
                walk(entry.url_patterns, prefix + ns)
            elif isinstance(entry, URLPattern):
                names.add(prefix + (entry.name or str(entry.pattern)))

    walk(get_resolver().url_patterns, "")
    return names


def test_every_url_and_action_is_in_the_table() -> None:
    """A URL or client action that the privacy table does not cover fails: say how it names rooms."""
    covered_urls = {name.split(" ")[0] for kind, name in [*PROBES, *NAMES_NO_ROOM] if kind == "url"}
    covered_actions = {name.split(" ")[0] for kind, name in [*PROBES, *NAMES_NO_ROOM] if kind == "action"}
    assert _url_names() - covered_urls == set(), "URLs not in the privacy table"
    assert set(protocol.CLIENT_ACTIONS) - covered_actions == set(), "actions not in the privacy table"
    assert covered_urls - _url_names() == set(), "the table names URLs that are gone"


def _setup(owner_id: str) -> tuple[str, str, int, str]:
    """A private room with a message (the owner a member), and a public room."""
    store = get_store()
    suffix = uuid.uuid4().hex[:8]
    private_room, open_room = f"secret-{suffix}", f"open-{suffix}"
    services.room_create(room_id=private_room, name=SECRET_NAME, created_by=owner_id)
    store.update_room(room_id=private_room, private=True, now=services.utcnow(), ttl_seconds=3600)
    store.add_member(room_id=private_room, user_id=owner_id)
    new = NewMessage(
        room_id=private_room,
        user_id=owner_id,
        username="owner",
        text="the plan",
        connection_id="c",
        client_message_id=None,
        timestamp=datetime.now(UTC),
        ttl_seconds=86_400,
    )
    stored = store.append_message(new).message
    services.room_create(room_id=open_room, name="Open", created_by=owner_id)
    return private_room, stored.message_id, stored.seq, open_room


@pytest.fixture
async def world(storage_backend: str, session_sockets: OpenSocket) -> World:
    user_model = get_user_model()
    owner = await user_model.objects.acreate(username="owner")
    mallory = await user_model.objects.acreate(username="mallory")
    private_room, message_id, message_seq, open_room = await sync_to_async(_setup)(str(owner.pk))
    client = Client()
    await sync_to_async(client.force_login)(mallory)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    socket = await session_sockets(cookie)
    return World(
        client=client,
        socket=socket,
        private_room=private_room,
        message_id=message_id,
        message_seq=message_seq,
        open_room=open_room,
    )


@pytest.mark.parametrize("key", list(PROBES), ids=[f"{kind}:{name}" for kind, name in PROBES])
async def test_a_private_room_answers_a_non_member_as_no_room_at_all(world: World, key: tuple[str, str]) -> None:
    """Asked about a private room, a non-member gets the answer given for a room that does not exist."""
    probe, creates = PROBES[key]
    reference = f"nope-{uuid.uuid4().hex[:8]}"
    before = await sync_to_async(get_store().get_room)(world.private_room)
    assert before is not None
    private_answer = _scrub(await probe(world, world.private_room), world.private_room)
    reference_answer = _scrub(await probe(world, reference), reference)
    if creates:
        private_answer, reference_answer = _scrub_created(private_answer), _scrub_created(reference_answer)
    assert SECRET_NAME not in json.dumps(private_answer)
    assert private_answer == reference_answer
    # Nothing was created or changed by asking.
    room = await sync_to_async(get_store().get_room)(world.private_room)
    assert room is not None and room.private and room.name == SECRET_NAME and room.last_seq == before.last_seq
    if not creates:
        assert await sync_to_async(services.room_get)(reference) is None


async def test_a_hidden_rooms_name_is_free_to_anyone_who_cannot_see_it(world: World) -> None:
    """A name is taken only by a room the caller can see: a private room's name makes a new room
    (its own id), as any free name does; the private room is untouched."""
    body = json.dumps({"name": SECRET_NAME, "private": True})
    status, answer = await _http(world, "post", "/api/rooms", data=body, content_type="application/json")
    assert status == 201
    made = json.loads(answer)["room"]
    assert made["roomId"] != world.private_room and made["name"] == SECRET_NAME and made["lastSeq"] == 0
    # Now the caller can see a room of that name: it is taken, for them.
    status, answer = await _http(world, "post", "/api/rooms", data=body, content_type="application/json")
    assert status == 409 and json.loads(answer)["error"] == "room_name_taken"
    room = await sync_to_async(get_store().get_room)(world.private_room)
    assert room is not None and room.private and room.name == SECRET_NAME


def _by_id(action: str, **fields: Any) -> Callable[[World, str], Awaitable[Any]]:
    """`action` in the public room, naming the message `message_id` (the probe's argument)."""

    async def probe(world: World, message_id: str) -> Any:
        return await _frame(world, {"action": action, "roomId": world.open_room, "messageId": message_id, **fields})

    return probe


async def ws_reply_to(world: World, message_id: str) -> Any:
    frame = {"action": "sendMessage", "roomId": world.open_room, "message": "hi", "replyTo": message_id}
    return await _frame(world, {**frame, "clientMessageId": "r1"})


# Every action that names a message by id alone (chat.message_changes, chat.reactions).
MESSAGE_PROBES: dict[str, Callable[[World, str], Awaitable[Any]]] = {
    "editMessage": _by_id("editMessage", message="mine now", clientMessageId="e1"),
    "deleteMessage": _by_id("deleteMessage"),
    "addReaction": _by_id("addReaction", emoji="👍"),
    "removeReaction": _by_id("removeReaction", emoji="👍"),
    "thread": _by_id("thread"),
    "sendMessage replyTo": ws_reply_to,
}


@pytest.mark.parametrize("name", list(MESSAGE_PROBES))
async def test_a_private_rooms_message_id_answers_as_no_message(world: World, name: str) -> None:
    """Named from a public room, a private room's message answers a non-member as an unknown id does."""
    probe = MESSAGE_PROBES[name]
    unknown = str(uuid.uuid4())
    private_answer = _scrub(await probe(world, world.message_id), world.message_id)
    unknown_answer = _scrub(await probe(world, unknown), unknown)
    assert private_answer["type"] == "error" and private_answer["code"] == "unknown_message"
    assert private_answer == unknown_answer
    room = await sync_to_async(get_store().get_room)(world.private_room)
    assert room is not None and room.last_seq == world.message_seq
    assert (await sync_to_async(get_store().get_room)(world.open_room)).last_seq == 0  # type: ignore[union-attr]
