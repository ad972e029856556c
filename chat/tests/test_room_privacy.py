"""No private room leaks: every way to name a room answers a non-member as for no room at all.

One table, `PROBES`, names every URL and every protocol action that takes a room id, with
how to ask it about a room. The walk asks each probe about a private room (with messages,
that the caller is not a member of) and about a random id, and the two answers must be the
same once the id itself is taken out. A URL pattern or a client action that is in neither
`PROBES` nor `NAMES_NO_ROOM` fails the suite: a new endpoint must say how it treats rooms.

Creating is the one way to name a room that cannot hide that an id is taken (a random id is
created): there the private room's answer must equal the answer for another hidden room of
another name, settings and size, so that only "taken" is told, nothing of the room.
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
    other_hidden: str  # another room the caller may not see (archived, another name and size)


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


async def rest_create(world: World, room_id: str) -> Any:
    return await _http(
        world, "post", "/api/rooms", data=json.dumps({"roomId": room_id}), content_type="application/json"
    )


async def rest_list(world: World, room_id: str) -> Any:
    status, body = await _http(world, "get", "/api/rooms")
    return status, [r["roomId"] == room_id or r["name"] == SECRET_NAME for r in json.loads(body)["rooms"]]


async def page_room(world: World, room_id: str) -> Any:
    return await _http(world, "get", f"/rooms/{room_id}/")


async def page_rooms_list(world: World, room_id: str) -> Any:
    status, body = await _http(world, "get", "/")
    return status, room_id in body or SECRET_NAME in body


async def page_rooms_create(world: World, room_id: str) -> Any:
    return await _http(world, "post", "/", data={"room_id": room_id, "name": ""})


async def rest_upload_slot(world: World, room_id: str) -> Any:
    body = {"roomId": room_id, "name": "a.txt", "size": 3, "contentType": "text/plain"}
    return await _http(world, "post", "/api/uploads", data=json.dumps(body), content_type="application/json")


async def ws_join(world: World, room_id: str) -> Any:
    return await _frame(world, {"action": "joinRoom", "roomId": room_id})


async def ws_history(world: World, room_id: str) -> Any:
    return await _frame(world, {"action": "history", "roomId": room_id})


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
    return await _frame(world, {"action": "createRoom", "name": room_id})


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


# (kind, name) -> the probe, and whether it creates (compared with another hidden room).
PROBES: dict[tuple[str, str], tuple[Probe, bool]] = {
    ("url", "api-rooms GET"): (rest_list, False),
    ("url", "api-rooms POST"): (rest_create, True),
    ("url", "chat:room"): (page_room, False),
    ("url", "chat:rooms GET"): (page_rooms_list, False),
    ("url", "chat:rooms POST"): (page_rooms_create, True),
    ("url", "uploads:slots"): (rest_upload_slot, False),
    ("action", "joinRoom"): (ws_join, False),
    ("action", "history"): (ws_history, False),
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


def _setup(owner_id: str) -> tuple[str, str, str]:
    """A private room with a message (the owner a member), and an archived room."""
    store = get_store()
    suffix = uuid.uuid4().hex[:8]
    private_room, archived_room = f"secret-{suffix}", f"old-{suffix}"
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
    message_id = store.append_message(new).message.message_id
    services.room_create(room_id=archived_room, name="Another Name", created_by=owner_id)
    store.update_room(room_id=archived_room, archived=True, now=services.utcnow(), ttl_seconds=3600)
    return private_room, message_id, archived_room


@pytest.fixture
async def world(storage_backend: str, session_sockets: OpenSocket) -> World:
    user_model = get_user_model()
    owner = await user_model.objects.acreate(username="owner")
    mallory = await user_model.objects.acreate(username="mallory")
    private_room, message_id, archived_room = await sync_to_async(_setup)(str(owner.pk))
    client = Client()
    await sync_to_async(client.force_login)(mallory)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    socket = await session_sockets(cookie)
    return World(
        client=client, socket=socket, private_room=private_room, message_id=message_id, other_hidden=archived_room
    )


@pytest.mark.parametrize("key", list(PROBES), ids=[f"{kind}:{name}" for kind, name in PROBES])
async def test_a_private_room_answers_a_non_member_as_no_room_at_all(world: World, key: tuple[str, str]) -> None:
    """Asked about a private room, a non-member gets the answer given for a room that does not exist."""
    probe, creates = PROBES[key]
    reference = world.other_hidden if creates else f"nope-{uuid.uuid4().hex[:8]}"
    before = await sync_to_async(get_store().get_room)(world.private_room)
    assert before is not None
    private_answer = _scrub(await probe(world, world.private_room), world.private_room)
    reference_answer = _scrub(await probe(world, reference), reference)
    assert SECRET_NAME not in json.dumps(private_answer)
    assert private_answer == reference_answer
    # Nothing was created or changed by asking.
    room = await sync_to_async(get_store().get_room)(world.private_room)
    assert room is not None and room.private and room.name == SECRET_NAME and room.last_seq == before.last_seq
    if not creates:
        assert await sync_to_async(services.room_get)(reference) is None
