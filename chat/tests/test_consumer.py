"""The chat consumer through the real routing (Origin check, session auth, URL router).

Every test talks to `chatsite.asgi.application` with channels' WebsocketCommunicator, signed
in with a real session cookie, on the in-memory channel layer and the test database.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.db import OperationalError
from django.test import Client
from pytest_django.fixtures import Settings

from chat import broadcast, protocol, services
from chat.storage import get_store
from chat.storage.base import MessageRecord, NewMessage
from chat.storage.local import LocalStore
from chatsite.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

ORIGIN = b"http://127.0.0.1"
WAIT = 5.0  # seconds for a frame that must arrive

Frame = dict[str, Any]
Connect = Callable[..., Awaitable[WebsocketCommunicator]]


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def cookie_for(db: None) -> Callable[[str], bytes]:
    """Sign a user in (creating them) and return their session Cookie header."""

    def sign_in(username: str, *, active: bool = True) -> bytes:
        user = get_user_model().objects.create_user(username=username, is_active=active)
        client = Client()
        client.force_login(user)
        return f"sessionid={client.cookies['sessionid'].value}".encode()

    return sign_in


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """Open sockets through the real ASGI application; close them and flush the layer after."""
    opened: list[WebsocketCommunicator] = []

    async def open_socket(cookie: bytes | None, *, origin: bytes | None = ORIGIN, expect: bool = True) -> Any:
        headers = [(b"host", b"127.0.0.1")] + ([(b"origin", origin)] if origin is not None else [])
        if cookie is not None:
            headers.append((b"cookie", cookie))
        comm = WebsocketCommunicator(application, "/ws/", headers=headers)
        opened.append(comm)
        connected, _ = await comm.connect(timeout=WAIT)
        assert connected is expect
        return comm

    yield open_socket
    for comm in opened:
        await comm.disconnect(timeout=WAIT)
    layer = get_channel_layer()
    assert layer is not None
    await layer.flush()  # type: ignore[attr-defined]


@pytest.fixture
async def alice(connect: Connect, cookie_for: Callable[[str], bytes]) -> WebsocketCommunicator:
    return await connect(await sync_to_async(cookie_for)("alice"))


@pytest.fixture
async def bob(connect: Connect, cookie_for: Callable[[str], bytes]) -> WebsocketCommunicator:
    return await connect(await sync_to_async(cookie_for)("bob"))


@pytest.fixture
async def room() -> str:
    """A fresh room (besides general) that exists in the store."""
    await sync_to_async(services.room_create)(room_id="lounge", name="Lounge")
    return "lounge"


# --- helpers --------------------------------------------------------------------------------


async def recv(comm: WebsocketCommunicator) -> Frame:
    frame = await comm.receive_json_from(timeout=WAIT)
    assert isinstance(frame, dict)
    return frame


async def join(comm: WebsocketCommunicator, room_id: str, last_seq: int | None = None) -> Frame:
    frame: Frame = {"action": "joinRoom", "roomId": room_id}
    if last_seq is not None:
        frame["lastSeq"] = last_seq
    await comm.send_json_to(frame)
    reply = await recv(comm)
    assert reply["type"] == "joined", reply
    return reply


async def send(
    comm: WebsocketCommunicator, room_id: str, text: str, cmid: str | None, *, joined: bool = True, **extra: Any
) -> Frame:
    """Send a message and return its ack; a joined sender also gets its own message frame."""
    frame: Frame = {"action": "sendMessage", "roomId": room_id, "message": text, **extra}
    if cmid is not None:
        frame["clientMessageId"] = cmid
    await comm.send_json_to(frame)
    frames = [await recv(comm) for _ in range(2 if joined else 1)]
    by_type = {f["type"]: f for f in frames}
    assert set(by_type) == ({"ack", "message"} if joined else {"ack"}), frames
    ack = by_type["ack"]
    if joined:
        echo = by_type["message"]
        assert (echo["messageId"], echo["seq"], echo["clientMessageId"]) == (ack["messageId"], ack["seq"], cmid)
    return ack


async def ping(comm: WebsocketCommunicator) -> None:
    """The socket is open and answering."""
    await comm.send_json_to({"action": "ping"})
    assert await recv(comm) == {"type": "pong"}


async def stored(room_id: str) -> list[MessageRecord]:
    return await sync_to_async(get_store().messages_before)(
        room_id=room_id, before_seq=None, limit=1000, now=datetime.now(UTC)
    )


async def user_id(username: str) -> str:
    user = await get_user_model().objects.aget(username=username)
    return str(user.pk)


# --- connecting -----------------------------------------------------------------------------


async def test_unauthenticated_socket_is_accepted_then_closed_4401(connect: Connect) -> None:
    """A socket without credentials is accepted, cannot send, and is closed with 4401 (not a bare 1006)."""
    comm = await connect(None)
    await comm.send_json_to({"action": "sendMessage", "roomId": "general", "message": "hi", "clientMessageId": "c"})
    assert await comm.receive_output(timeout=WAIT) == {"type": "websocket.close", "code": 4401}
    assert await stored("general") == []


async def test_unknown_session_is_closed_4401(connect: Connect) -> None:
    """A session cookie that names no session is closed with 4401."""
    comm = await connect(b"sessionid=doesnotexist0123456789abcdefgh")
    assert await comm.receive_output(timeout=WAIT) == {"type": "websocket.close", "code": 4401}


async def test_inactive_user_is_closed_4401(connect: Connect, cookie_for: Callable[..., bytes]) -> None:
    """A deactivated account cannot open a chat socket."""
    cookie = await sync_to_async(cookie_for)("mallory", active=False)
    comm = await connect(cookie)
    assert await comm.receive_output(timeout=WAIT) == {"type": "websocket.close", "code": 4401}


@pytest.mark.parametrize("origin", [b"http://evil.example", b"https://127.0.0.1.evil.example", b"null", None])
async def test_foreign_or_missing_origin_is_rejected(
    connect: Connect, cookie_for: Callable[[str], bytes], origin: bytes | None
) -> None:
    """A handshake from an origin that is not allowed is refused, even with a valid session."""
    cookie = await sync_to_async(cookie_for)("alice")
    await connect(cookie, origin=origin, expect=False)


# --- join, send, ack, message, history, ping, leave ------------------------------------------


async def test_join_answers_with_joined(alice: WebsocketCommunicator) -> None:
    """joinRoom on the default room answers joined with its lastSeq and latest messages."""
    assert await join(alice, "general") == {
        "type": "joined",
        "roomId": "general",
        "lastSeq": 0,
        "messages": [],
        "recovered": True,
    }


async def test_message_reaches_every_member_and_the_sender_gets_an_ack(
    alice: WebsocketCommunicator, bob: WebsocketCommunicator
) -> None:
    """A sent message is acked to the sender and delivered to every joined socket, sender included."""
    await join(alice, "general")
    await join(bob, "general")
    ack = await send(alice, "general", "hello bob", "c-1")
    got = await recv(bob)
    assert got == {
        "type": "message",
        "roomId": "general",
        "messageId": ack["messageId"],
        "seq": 1,
        "userId": await user_id("alice"),
        "username": "alice",
        "message": "hello bob",
        "timestamp": got["timestamp"],
        "clientMessageId": "c-1",
    }
    assert ack == {
        "type": "ack",
        "roomId": "general",
        "clientMessageId": "c-1",
        "messageId": got["messageId"],
        "seq": 1,
    }
    assert [m.text for m in await stored("general")] == ["hello bob"]


async def test_seqs_count_up_per_room(alice: WebsocketCommunicator, room: str) -> None:
    """Each room has its own sequence 1, 2, 3, ..."""
    await join(alice, "general")
    await join(alice, room)
    assert (await send(alice, "general", "g1", "a"))["seq"] == 1
    assert (await send(alice, room, "l1", "b"))["seq"] == 1
    assert (await send(alice, "general", "g2", "c"))["seq"] == 2
    assert (await send(alice, room, "l2", None))["seq"] == 2


async def test_identity_fields_in_a_frame_are_ignored(alice: WebsocketCommunicator, bob: WebsocketCommunicator) -> None:
    """userId and username in a client frame never change who a message is from."""
    await join(alice, "general")
    await join(bob, "general")
    bob_id = await user_id("bob")
    await send(alice, "general", "it's me", "c-1", userId=bob_id, username="bob", user_id=bob_id)
    got = await recv(bob)
    assert (got["userId"], got["username"]) == (await user_id("alice"), "alice")
    [message] = await stored("general")
    assert (message.user_id, message.username) == (await user_id("alice"), "alice")


async def test_history_pages_backwards(alice: WebsocketCommunicator) -> None:
    """history returns up to `limit` messages below beforeSeq, oldest first, and whether there is more."""
    await join(alice, "general")
    for n in range(1, 6):
        await send(alice, "general", f"m{n}", f"c-{n}")
    await alice.send_json_to({"action": "history", "roomId": "general", "limit": 2})
    latest = await recv(alice)
    assert (latest["type"], [m["seq"] for m in latest["messages"]], latest["hasMore"]) == ("history", [4, 5], True)
    await alice.send_json_to({"action": "history", "roomId": "general", "beforeSeq": 4, "limit": 2})
    older = await recv(alice)
    assert ([m["message"] for m in older["messages"]], older["hasMore"]) == (["m2", "m3"], True)
    await alice.send_json_to({"action": "history", "roomId": "general", "beforeSeq": 2})
    oldest = await recv(alice)
    assert ([m["seq"] for m in oldest["messages"]], oldest["hasMore"]) == ([1], False)


async def test_history_does_not_need_a_join(alice: WebsocketCommunicator, bob: WebsocketCommunicator) -> None:
    """A socket can read a room's history without joining it."""
    await join(alice, "general")
    await send(alice, "general", "before bob", "c-1")
    await bob.send_json_to({"action": "history", "roomId": "general"})
    page = await recv(bob)
    assert [m["message"] for m in page["messages"]] == ["before bob"]


async def test_ping_answers_pong(alice: WebsocketCommunicator) -> None:
    """ping is answered with pong."""
    await ping(alice)


async def test_leave_stops_delivery(alice: WebsocketCommunicator, bob: WebsocketCommunicator) -> None:
    """After leaveRoom a socket receives no more of that room's messages."""
    await join(alice, "general")
    await join(bob, "general")
    await alice.send_json_to({"action": "leaveRoom", "roomId": "general"})
    assert await recv(alice) == {"type": "left", "roomId": "general"}
    await send(bob, "general", "anyone?", "c-1")
    await ping(alice)  # the next frame is the pong: no message came first
    assert await alice.receive_nothing(timeout=0.2)


async def test_join_with_last_seq_replays_exactly_what_was_missed(
    alice: WebsocketCommunicator, bob: WebsocketCommunicator
) -> None:
    """joinRoom with lastSeq delivers exactly the messages after it, in order, and recovered true."""
    await join(alice, "general")
    for n in range(1, 5):
        await send(alice, "general", f"m{n}", f"c-{n}")
    joined = await join(bob, "general", last_seq=2)
    assert [m["seq"] for m in joined["messages"]] == [3, 4]
    assert (joined["lastSeq"], joined["recovered"]) == (4, True)
    caught_up = await join(bob, "general", last_seq=4)
    assert (caught_up["messages"], caught_up["recovered"]) == ([], True)


async def test_resume_past_the_replay_cap_is_not_recovered(
    alice: WebsocketCommunicator, bob: WebsocketCommunicator, settings: Settings
) -> None:
    """A gap larger than CHAT_REPLAY_CAP answers recovered false with the latest page."""
    settings.CHAT_REPLAY_CAP = 2
    await join(alice, "general")
    for n in range(1, 5):
        await send(alice, "general", f"m{n}", f"c-{n}")
    at_cap = await join(bob, "general", last_seq=2)
    assert ([m["seq"] for m in at_cap["messages"]], at_cap["recovered"]) == ([3, 4], True)
    past_cap = await join(bob, "general", last_seq=1)
    assert past_cap["recovered"] is False
    assert [m["seq"] for m in past_cap["messages"]] == [1, 2, 3, 4]  # the latest page
    assert past_cap["lastSeq"] == 4


async def test_send_to_a_room_not_joined_is_stored_and_acked(
    alice: WebsocketCommunicator, bob: WebsocketCommunicator, room: str
) -> None:
    """sendMessage to a room the socket has not joined is stored, acked, and reaches the members."""
    await join(bob, room)
    ack = await send(alice, room, "drive-by", "c-1", joined=False)
    assert ack["seq"] == 1
    got = await recv(bob)
    assert (got["message"], got["messageId"]) == ("drive-by", ack["messageId"])
    await ping(alice)  # alice is not a member: no message frame for her
    assert [m.text for m in await stored(room)] == ["drive-by"]


async def test_retry_with_the_same_client_message_id_is_stored_once(
    alice: WebsocketCommunicator, bob: WebsocketCommunicator
) -> None:
    """A retry with the same clientMessageId gets the original ack and nothing new is stored or shown."""
    await join(alice, "general")
    await join(bob, "general")
    first = await send(alice, "general", "once", "same-id")
    assert (await recv(bob))["seq"] == 1
    await alice.send_json_to(
        {"action": "sendMessage", "roomId": "general", "message": "once", "clientMessageId": "same-id"}
    )
    assert await recv(alice) == first  # the original ack; the re-broadcast is dropped by seq
    await send(alice, "general", "next", "other-id")
    assert [(f["seq"], f["message"]) for f in [await recv(bob)]] == [(2, "next")]  # no duplicate of seq 1
    assert [(m.seq, m.text) for m in await stored("general")] == [(1, "once"), (2, "next")]


async def test_same_client_message_id_from_another_user_is_a_new_message(
    alice: WebsocketCommunicator, bob: WebsocketCommunicator
) -> None:
    """Idempotency is per user: another user's message with the same id is stored."""
    await join(alice, "general")
    await join(bob, "general")
    a = await send(alice, "general", "from alice", "shared")
    await recv(bob)
    b = await send(bob, "general", "from bob", "shared")
    assert (a["seq"], b["seq"]) == (1, 2)
    assert a["messageId"] != b["messageId"]


# --- unknown rooms ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        {"action": "joinRoom", "roomId": "nowhere"},
        {"action": "history", "roomId": "nowhere"},
        {"action": "sendMessage", "roomId": "nowhere", "message": "hi", "clientMessageId": "c-9"},
    ],
)
async def test_unknown_room_is_unknown_room(alice: WebsocketCommunicator, frame: Frame) -> None:
    """A well-formed room id that does not exist is unknown_room, answering the action and room."""
    await alice.send_json_to(frame)
    error = await recv(alice)
    assert (error["type"], error["code"], error["action"], error["roomId"]) == (
        "error",
        "unknown_room",
        frame["action"],
        "nowhere",
    )
    assert error.get("clientMessageId") == frame.get("clientMessageId")
    await ping(alice)
    assert await stored("nowhere") == []


async def test_joining_an_unknown_room_does_not_subscribe(alice: WebsocketCommunicator, room: str) -> None:
    """A failed join leaves no subscription behind: messages of a room created later do not arrive."""
    await alice.send_json_to({"action": "joinRoom", "roomId": "later"})
    assert (await recv(alice))["code"] == "unknown_room"
    await sync_to_async(services.room_create)(room_id="later")
    message = await sync_to_async(get_store().append_message)(new=new_message("later", "hello", seq_hint=1))
    await broadcast.room_event(protocol.room_event(message.message))
    await ping(alice)


# --- bad input: an error frame, the socket stays open, nothing stored, nobody notices -----------

TOO_LONG = "x" * 4001
BAD_FRAMES: list[tuple[str, str | bytes, str]] = [
    ("invalid JSON", "{not json", "invalid_json"),
    ("empty frame", "", "invalid_json"),
    ("NaN", '{"action":"joinRoom","roomId":"general","lastSeq":NaN}', "invalid_json"),
    ("deep nesting", '{"action":"ping","x":' + "[" * 20000 + "]" * 20000 + "}", "invalid_json"),
    ("binary frame", b'{"action":"sendMessage","roomId":"general","message":"hi"}', "binary_frame"),
    ("a JSON array", '["sendMessage","general","hi"]', "invalid_frame"),
    ("no action", '{"roomId":"general","message":"hi"}', "invalid_frame"),
    ("unknown action", '{"action":"pinMessage","roomId":"general","message":"hi"}', "unknown_action"),
    ("lone surrogate action", '{"action":"\\ud800","roomId":"general"}', "unknown_action"),
    ("missing roomId", '{"action":"sendMessage","message":"hi"}', "invalid_field"),
    ("missing message", '{"action":"sendMessage","roomId":"general"}', "invalid_field"),
    ("message not a string", '{"action":"sendMessage","roomId":"general","message":5}', "invalid_field"),
    ("lastSeq true", '{"action":"joinRoom","roomId":"general","lastSeq":true}', "invalid_field"),
    ("lastSeq float", '{"action":"joinRoom","roomId":"general","lastSeq":1.5}', "invalid_field"),
    ("negative beforeSeq", '{"action":"history","roomId":"general","beforeSeq":-1}', "invalid_field"),
    ("lone surrogate message", '{"action":"sendMessage","roomId":"general","message":"\\udc00"}', "invalid_field"),
    ("empty message", '{"action":"sendMessage","roomId":"general","message":""}', "empty_message"),
    ("white space message", '{"action":"sendMessage","roomId":"general","message":" \\n\\t "}', "empty_message"),
    ("legacy empty data", '{"action":"sendmessage","data":"  "}', "empty_message"),
    ("too long", json.dumps({"action": "sendMessage", "roomId": "general", "message": TOO_LONG}), "message_too_long"),
    ("legacy too long", json.dumps({"action": "sendmessage", "data": TOO_LONG}), "message_too_long"),
    ("uppercase room", '{"action":"sendMessage","roomId":"General","message":"hi"}', "invalid_room"),
    ("path-like room", '{"action":"joinRoom","roomId":"../general"}', "invalid_room"),
    ("room with newline", '{"action":"joinRoom","roomId":"general\\n"}', "invalid_room"),
    ("room with dot", '{"action":"sendMessage","roomId":"chat.room.general","message":"hi"}', "invalid_room"),
    ("frame over 64 KiB", json.dumps({"action": "ping", "pad": "x" * 70_000}), "frame_too_large"),
    (
        "multi-byte frame over 64 KiB",
        json.dumps({"action": "ping", "p": "é" * 33_000}, ensure_ascii=False),
        "frame_too_large",
    ),
]


@pytest.mark.parametrize(("frame", "code"), [(f, c) for _, f, c in BAD_FRAMES], ids=[n for n, _, _ in BAD_FRAMES])
async def test_bad_input_gets_an_error_frame_and_changes_nothing(
    alice: WebsocketCommunicator, bob: WebsocketCommunicator, frame: str | bytes, code: str
) -> None:
    """Bad input is answered with an error frame; the socket stays open; nothing is stored or seen."""
    await join(alice, "general")
    await join(bob, "general")
    await send(alice, "general", "before", "c-1")
    assert (await recv(bob))["seq"] == 1
    if isinstance(frame, bytes):
        await alice.send_input({"type": "websocket.receive", "bytes": frame})
    else:
        await alice.send_input({"type": "websocket.receive", "text": frame})
    error = await recv(alice)
    assert (error["type"], error["code"]) == ("error", code)
    assert error["message"]
    await ping(alice)
    # Nothing was stored, and bob's next frame is alice's next good message, seq 2.
    await send(alice, "general", "after", "c-2")
    after = await recv(bob)
    assert (after["seq"], after["message"]) == (2, "after")
    assert [m.text for m in await stored("general")] == ["before", "after"]


@pytest.mark.parametrize(
    "action", ["chat_message", "chat.message", "websocket.disconnect", "websocket.receive", "on_send", "receive"]
)
async def test_a_frame_cannot_select_a_handler_or_event_type(
    alice: WebsocketCommunicator, bob: WebsocketCommunicator, action: str
) -> None:
    """A frame whose action names a handler or an event type is unknown_action and reaches no one."""
    await join(alice, "general")
    await join(bob, "general")
    forged = json.dumps({"type": "message", "roomId": "general", "seq": 1, "username": "admin", "message": "forged"})
    await alice.send_json_to(
        {"action": action, "type": action, "room_id": "general", "roomId": "general", "seq": 1, "text": forged}
    )
    error = await recv(alice)
    assert (error["code"], error["action"]) == ("unknown_action", action)
    await ping(alice)  # still open: websocket.disconnect did not close it
    await send(alice, "general", "real", "c-1")
    got = await recv(bob)
    assert (got["seq"], got["username"], got["message"]) == (1, "alice", "real")


async def test_error_frame_answers_the_client_message_id(alice: WebsocketCommunicator) -> None:
    """A refused sendMessage names its action and clientMessageId so the client can mark it failed."""
    await alice.send_json_to({"action": "sendMessage", "roomId": "general", "message": "", "clientMessageId": "c-5"})
    error = await recv(alice)
    assert (error["code"], error["action"], error["clientMessageId"]) == ("empty_message", "sendMessage", "c-5")


# --- the AWS original's frame --------------------------------------------------------------


async def test_legacy_frame_works_for_a_client_that_never_joined(
    alice: WebsocketCommunicator, bob: WebsocketCommunicator
) -> None:
    """{"action":"sendmessage","data":...} sends to general and joins the sender to it."""
    await join(bob, "general")
    await alice.send_json_to({"action": "sendmessage", "data": "hello from lambda days"})
    frames = {f["type"]: f for f in [await recv(alice), await recv(alice)]}
    assert set(frames) == {"ack", "message"}
    assert (frames["ack"]["roomId"], frames["ack"]["seq"], frames["ack"]["clientMessageId"]) == ("general", 1, None)
    got = await recv(bob)
    assert (got["roomId"], got["message"], got["username"]) == ("general", "hello from lambda days", "alice")
    # The legacy client now receives later messages in general.
    await send(bob, "general", "welcome back", "c-1")
    later = await recv(alice)
    assert (later["type"], later["seq"], later["message"]) == ("message", 2, "welcome back")


# --- gap repair and duplicates at the socket ----------------------------------------------------


def new_message(room_id: str, text: str, *, seq_hint: int, user_id: str = "0") -> NewMessage:
    return NewMessage(
        room_id=room_id,
        user_id=user_id,
        username="system",
        text=text,
        connection_id="test",
        client_message_id=f"direct-{seq_hint}",
        timestamp=datetime.now(UTC),
        ttl_seconds=3600,
    )


async def test_a_lost_broadcast_is_repaired_from_the_store(
    alice: WebsocketCommunicator, bob: WebsocketCommunicator
) -> None:
    """A socket that missed a broadcast gets the missing message from the store before the next one."""
    await join(bob, "general")
    await sync_to_async(services.room_create)(room_id="general")
    # Stored, but its broadcast is lost.
    await sync_to_async(get_store().append_message)(new=new_message("general", "lost in transit", seq_hint=1))
    await send(alice, "general", "after the loss", "c-2", joined=False)
    first, second = await recv(bob), await recv(bob)
    assert [(first["seq"], first["message"]), (second["seq"], second["message"])] == [
        (1, "lost in transit"),
        (2, "after the loss"),
    ]


async def test_a_stale_or_repeated_event_is_not_delivered_twice(
    alice: WebsocketCommunicator, bob: WebsocketCommunicator
) -> None:
    """An event for a seq the socket already has (a re-broadcast, a late duplicate) is dropped."""
    await join(alice, "general")
    await join(bob, "general")
    await send(alice, "general", "one", "c-1")
    first = await recv(bob)
    [message] = await stored("general")
    await broadcast.room_event(protocol.room_event(message))  # the same event again
    await send(alice, "general", "two", "c-2")
    second = await recv(bob)
    assert [first["seq"], second["seq"]] == [1, 2]


async def test_join_replays_then_continues_live_without_duplicates(
    alice: WebsocketCommunicator, bob: WebsocketCommunicator
) -> None:
    """Messages in the replay are not sent again live; the next live message follows the replay."""
    await join(alice, "general")
    for n in range(1, 4):
        await send(alice, "general", f"m{n}", f"c-{n}")
    joined = await join(bob, "general", last_seq=0)
    assert [m["seq"] for m in joined["messages"]] == [1, 2, 3]
    for message in await stored("general"):  # late duplicates of everything replayed
        await broadcast.room_event(protocol.room_event(message))
    await send(alice, "general", "m4", "c-4")
    assert (await recv(bob))["seq"] == 4


# --- the store failing -----------------------------------------------------------------------


def failing(*args: Any, **kwargs: Any) -> Any:
    raise OperationalError("database is locked")


async def test_storage_failure_is_retryable_and_the_retry_is_stored_once(
    alice: WebsocketCommunicator, bob: WebsocketCommunicator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed write answers storage_unavailable for that clientMessageId; the retry stores it once."""
    await join(alice, "general")
    await join(bob, "general")
    with monkeypatch.context() as patch:
        patch.setattr(LocalStore, "append_message", failing)
        await alice.send_json_to(
            {"action": "sendMessage", "roomId": "general", "message": "hi", "clientMessageId": "c-1"}
        )
        error = await recv(alice)
    assert (error["code"], error["action"], error["clientMessageId"], error["retryable"]) == (
        "storage_unavailable",
        "sendMessage",
        "c-1",
        True,
    )
    assert error["retryAfter"] > 0
    assert await stored("general") == []
    ack = await send(alice, "general", "hi", "c-1")
    assert ack["seq"] == 1
    assert (await recv(bob))["seq"] == 1


async def test_a_failed_rejoin_keeps_the_socket_subscribed(
    alice: WebsocketCommunicator, bob: WebsocketCommunicator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rejoin that fails on a store error does not leave an already joined socket deaf to its room."""
    await join(alice, "general")
    await join(bob, "general")
    await send(alice, "general", "m1", "c-1")
    assert (await recv(bob))["seq"] == 1
    with monkeypatch.context() as patch:
        patch.setattr(LocalStore, "messages_before", failing)
        patch.setattr(LocalStore, "messages_after", failing)
        await bob.send_json_to({"action": "joinRoom", "roomId": "general"})
        error = await recv(bob)
    assert (error["code"], error["action"], error["roomId"]) == ("storage_unavailable", "joinRoom", "general")
    await send(alice, "general", "m2", "c-2")
    got = await recv(bob)
    assert (got["seq"], got["message"]) == (2, "m2")


async def test_an_unexpected_error_answers_internal_error_and_keeps_the_socket(
    alice: WebsocketCommunicator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server bug in a handler becomes an internal_error frame naming the action; the socket stays open."""

    async def broken(**kwargs: Any) -> Any:
        raise RuntimeError("bug")

    with monkeypatch.context() as patch:
        patch.setattr(services, "room_history", broken)
        await alice.send_json_to({"action": "history", "roomId": "general"})
        error = await recv(alice)
    assert (error["code"], error["action"], error["retryable"]) == ("internal_error", "history", True)
    await ping(alice)


def test_reading_the_default_room_stores_nothing() -> None:
    """Listing rooms and reading the default room write nothing: its first write stores it."""
    assert get_store().get_room("general") is None
    assert [r.room_id for r in services.room_list()] == ["general"]
    general = services.room_get("general")
    assert general is not None and (general.name, general.last_seq) == ("General", 0)
    assert get_store().get_room("general") is None
    assert get_store().list_rooms() == []


async def test_a_socket_cancelled_halfway_through_its_cleanup_still_deletes_its_row(
    cookie_for: Callable[[str], bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """daphne cancels every application on SIGTERM: a socket cancelled while it cleans up after its client's
    close still deletes its connection row (the cleanup runs on, shielded), so it does not count as open."""
    headers = [(b"host", b"127.0.0.1"), (b"origin", ORIGIN), (b"cookie", await sync_to_async(cookie_for)("alice"))]
    comm = WebsocketCommunicator(application, "/ws/", headers=headers)
    connected, _ = await comm.connect(timeout=WAIT)
    assert connected
    user_id = str(await sync_to_async(lambda: get_user_model().objects.get(username="alice").pk)())

    def rows() -> int:
        return len(get_store().connections_for_user(user_id=user_id, now=services.utcnow()))

    async with asyncio.timeout(WAIT):  # the row is written after the handshake
        while not await sync_to_async(rows)():
            await asyncio.sleep(0.02)
    reached, gate = asyncio.Event(), asyncio.Event()
    real_close = services.connection_close

    async def slow_close(*, connection_id: str) -> None:
        reached.set()
        await gate.wait()
        await real_close(connection_id=connection_id)

    monkeypatch.setattr(services, "connection_close", slow_close)
    await comm.send_input({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(reached.wait(), WAIT)
    comm.future.cancel()  # what daphne's shutdown does to every application
    with pytest.raises(asyncio.CancelledError):
        await comm.future
    gate.set()
    async with asyncio.timeout(WAIT):
        while await sync_to_async(rows)():
            await asyncio.sleep(0.02)
