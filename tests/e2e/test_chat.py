"""Chat against a real daphne process with real WebSocket clients (the `websockets` package).

One daphne process serves the whole module; every test talks in a room of its own. The
module runs twice: on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from tests.e2e.client import ChatClient, Frame, new_client_message_id
from tests.e2e.conftest import ON_BOTH_DATABASES, Accounts, Connect
from tests.fixtures.servers import DaphneServer

pytestmark = [pytest.mark.timeout(120), ON_BOTH_DATABASES]


def assert_clean(client: ChatClient, room_id: str) -> None:
    """The server never sent this client a duplicate, a hole, or a seq out of order."""
    log = client.room(room_id)
    assert (log.duplicates, log.gaps, log.out_of_order) == ([], [], [])


# --- two users, many users ----------------------------------------------------------------


async def test_two_users_chat_in_a_room(connect: Connect, room: str) -> None:
    """Alice and bob see each other's messages in one order, each once, with the sender's name."""
    alice, bob = await connect("alice"), await connect("bob")
    await alice.join(room)
    await bob.join(room)
    first = await alice.send_message(room, "hi bob")
    assert (first["type"], first["seq"]) == ("ack", 1)
    await bob.wait_for_seq(room, 1)
    second = await bob.send_message(room, "hi alice")
    assert (second["type"], second["seq"]) == ("ack", 2)
    for client in (alice, bob):
        log = await client.wait_for_seq(room, 2)
        assert [(m["seq"], m["username"], m["message"]) for m in log.messages] == [
            (1, "alice", "hi bob"),
            (2, "bob", "hi alice"),
        ]
        assert_clean(client, room)


async def test_concurrent_senders_get_contiguous_seqs_and_everyone_sees_one_order(connect: Connect, room: str) -> None:
    """4 clients sending 25 messages each at once: seqs are 1..100 with no gaps or duplicates, one order for all."""
    senders = [await connect(name) for name in ("alice", "bob", "carol", "dave")]
    for client in senders:
        await client.join(room)

    async def burst(client: ChatClient, i: int) -> list[Frame]:
        return await asyncio.gather(*(client.send_message(room, f"{i}:{n}") for n in range(25)))

    acks = await asyncio.gather(*(burst(client, i) for i, client in enumerate(senders)))
    assert {a["type"] for batch in acks for a in batch} == {"ack"}
    assert sorted(a["seq"] for batch in acks for a in batch) == list(range(1, 101))
    for batch in acks:  # one socket's messages keep the order they were sent in
        assert [a["seq"] for a in batch] == sorted(a["seq"] for a in batch)

    orders = []
    for client in senders:
        log = await client.wait_for_seq(room, 100)
        assert_clean(client, room)
        assert log.seqs == list(range(1, 101))
        orders.append([(m["seq"], m["messageId"], m["message"]) for m in log.messages])
    assert all(order == orders[0] for order in orders)
    acked = {a["messageId"]: a["seq"] for batch in acks for a in batch}
    assert {m_id: seq for seq, m_id, _ in orders[0]} == acked

    history = await senders[0].history(room, limit=200)
    assert [m["seq"] for m in history["messages"]] == list(range(1, 101))
    assert history["hasMore"] is False


# --- retries ----------------------------------------------------------------------------------


async def test_retry_with_the_same_client_message_id_gets_the_original_ack(connect: Connect, room: str) -> None:
    """A retry with the same clientMessageId, on the same or a new socket, gets the original ack; stored once."""
    alice, bob = await connect("alice"), await connect("bob")
    await alice.join(room)
    await bob.join(room)
    cmid = new_client_message_id()
    first = await alice.send_message(room, "only once", client_message_id=cmid)
    assert await alice.send_message(room, "only once", client_message_id=cmid) == first
    await alice.reconnect()
    assert await alice.send_message(room, "only once", client_message_id=cmid) == first
    after = await alice.send_message(room, "next")
    assert after["seq"] == first["seq"] + 1
    log = await bob.wait_for_seq(room, after["seq"])
    await bob.quiet(room)
    assert log.texts == ["only once", "next"]
    assert_clean(bob, room)
    history = await bob.history(room)
    assert [m["message"] for m in history["messages"]] == ["only once", "next"]


async def test_concurrent_retries_from_two_sockets_store_one_message(connect: Connect, room: str) -> None:
    """The same clientMessageId sent at once from two sockets of one user is stored once, both acked alike."""
    tab1, tab2, bob = await connect("alice"), await connect("alice"), await connect("bob")
    await bob.join(room)
    cmids = [new_client_message_id() for _ in range(10)]
    acks = await asyncio.gather(
        *(
            tab.send_message(room, f"m{i}", client_message_id=cmid)
            for i, cmid in enumerate(cmids)
            for tab in (tab1, tab2)
        )
    )
    assert {a["type"] for a in acks} == {"ack"}
    for i in range(len(cmids)):
        assert acks[2 * i] == acks[2 * i + 1]
    assert sorted(a["seq"] for a in acks[::2]) == list(range(1, 11))
    log = await bob.wait_for_seq(room, 10)
    await bob.quiet(room)
    assert log.seqs == list(range(1, 11))
    assert_clean(bob, room)


# --- reconnect and resume ----------------------------------------------------------------------


async def test_reconnect_resumes_with_exactly_the_missed_messages(connect: Connect, room: str) -> None:
    """A client that reconnects with joinRoom lastSeq receives exactly what it missed, in order, once."""
    alice, bob = await connect("alice"), await connect("bob")
    await alice.join(room)
    await bob.join(room)
    for n in range(3):
        await alice.send_message(room, f"seen {n}")
    await bob.wait_for_seq(room, 3)
    await bob.close()
    for n in range(5):
        await alice.send_message(room, f"missed {n}")
    joined = (await bob.reconnect())[room]
    assert (joined["recovered"], joined["lastSeq"]) == (True, 8)
    assert [(m["seq"], m["message"]) for m in joined["messages"]] == [(4 + n, f"missed {n}") for n in range(5)]
    live = await alice.send_message(room, "live again")
    log = await bob.wait_for_seq(room, live["seq"])
    await bob.quiet(room)
    assert log.seqs == list(range(1, 10))
    assert_clean(bob, room)


async def test_resume_while_others_keep_sending_leaves_no_gap_or_duplicate(connect: Connect, room: str) -> None:
    """Reconnecting in the middle of a stream of messages ends with every seq exactly once, in order."""
    alice, bob = await connect("alice"), await connect("bob")
    await alice.join(room)
    await bob.join(room)
    total = 60

    async def stream() -> None:
        for n in range(total):
            assert (await alice.send_message(room, f"m{n}"))["type"] == "ack"

    sending = asyncio.create_task(stream())
    for at in (5, 20, 35):
        await bob.wait_for_seq(room, at)
        await bob.reconnect()
    await sending
    log = await bob.wait_for_seq(room, total)
    await bob.quiet(room)
    assert log.seqs == list(range(1, total + 1))
    assert log.texts == [f"m{n}" for n in range(total)]
    assert_clean(bob, room)


# --- the AWS original's frame ----------------------------------------------------------------


async def test_legacy_aws_frame_works_for_a_client_that_never_joined(connect: Connect) -> None:
    """{"action":"sendmessage","data":...} from a client that never joined reaches general, and it hears replies."""
    veteran, bob = await connect("lambda-veteran"), await connect("bob")
    await bob.join("general")
    mark = len(veteran.frames)
    await veteran.send_json({"action": "sendmessage", "data": "hello from the serverless days"})
    ack = await veteran.wait_for(lambda f: f["type"] == "ack", after=mark)
    assert (ack["roomId"], ack["clientMessageId"]) == ("general", None)
    got = await bob.wait_for(lambda f: f["type"] == "message" and f["messageId"] == ack["messageId"])
    assert (got["username"], got["message"], got["seq"]) == (
        "lambda-veteran",
        "hello from the serverless days",
        ack["seq"],
    )
    reply = await bob.send_message("general", "welcome back")
    heard = await veteran.wait_for(lambda f: f["type"] == "message" and f["messageId"] == reply["messageId"])
    assert (heard["roomId"], heard["message"], heard["seq"]) == ("general", "welcome back", ack["seq"] + 1)


# --- bad input over a real socket ----------------------------------------------------------------

ROOM = "{room}"  # replaced by the test's room
BAD_INPUTS: list[tuple[str, str | bytes, str]] = [
    ("invalid JSON", '{"action": "sendMessage", "roomId": "{room}", ', "invalid_json"),
    ("NaN", '{"action":"joinRoom","roomId":"{room}","lastSeq":NaN}', "invalid_json"),
    ("binary frame", b'{"action":"sendMessage","roomId":"{room}","message":"hi"}', "binary_frame"),
    ("not an object", '["sendMessage", "{room}", "hi"]', "invalid_frame"),
    ("no action", '{"roomId":"{room}","message":"hi"}', "invalid_frame"),
    ("unknown action", '{"action":"deleteEverything","roomId":"{room}"}', "unknown_action"),
    ("handler name", '{"action":"chat_message","type":"chat.message","room_id":"{room}","seq":1}', "unknown_action"),
    ("event type", '{"action":"websocket.disconnect","code":1000}', "unknown_action"),
    ("missing message", '{"action":"sendMessage","roomId":"{room}"}', "invalid_field"),
    ("missing roomId", '{"action":"sendMessage","message":"hi"}', "invalid_field"),
    ("message a number", '{"action":"sendMessage","roomId":"{room}","message":42}', "invalid_field"),
    ("lastSeq a bool", '{"action":"joinRoom","roomId":"{room}","lastSeq":true}', "invalid_field"),
    ("lastSeq a float", '{"action":"joinRoom","roomId":"{room}","lastSeq":2.5}', "invalid_field"),
    ("limit out of range", '{"action":"history","roomId":"{room}","limit":100000}', "invalid_field"),
    ("empty message", '{"action":"sendMessage","roomId":"{room}","message":""}', "empty_message"),
    ("white space message", '{"action":"sendMessage","roomId":"{room}","message":"  \\n "}', "empty_message"),
    (
        "4001 characters",
        '{"action":"sendMessage","roomId":"{room}","message":"' + "y" * 4001 + '"}',
        "message_too_long",
    ),
    ("invalid room", '{"action":"sendMessage","roomId":"No Such/Room","message":"hi"}', "invalid_room"),
    ("unknown room", '{"action":"sendMessage","roomId":"no-such-room-here","message":"hi"}', "unknown_room"),
    ("unknown room join", '{"action":"joinRoom","roomId":"no-such-room-here"}', "unknown_room"),
    (
        "frame over 64 KiB",
        '{"action":"sendMessage","roomId":"{room}","message":"' + "z" * 70_000 + '"}',
        "frame_too_large",
    ),
]


def fill(frame: str | bytes, room_id: str) -> str | bytes:
    if isinstance(frame, bytes):
        return frame.replace(ROOM.encode(), room_id.encode())
    return frame.replace(ROOM, room_id)


@pytest.mark.parametrize(("frame", "code"), [(f, c) for _, f, c in BAD_INPUTS], ids=[n for n, _, _ in BAD_INPUTS])
async def test_bad_input_gets_an_error_frame_and_no_one_else_notices(
    connect: Connect, room: str, frame: str | bytes, code: str
) -> None:
    """Each bad input is answered with its error code; the socket keeps working; nothing is stored or seen."""
    alice, bob = await connect("alice"), await connect("bob")
    await alice.join(room)
    await bob.join(room)
    before = await alice.send_message(room, "before")
    await bob.wait_for_seq(room, before["seq"])
    error = await alice.expect_error(fill(frame, room))
    assert error["code"] == code
    assert error.get("retryable") is None  # the client must fix the frame, not retry it
    await alice.ping()
    after = await alice.send_message(room, "after")
    assert after["seq"] == before["seq"] + 1  # nothing was stored in between
    log = await bob.wait_for_seq(room, after["seq"])
    assert log.texts == ["before", "after"]
    assert {f["type"] for f in bob.frames} <= {"joined", "message", "pong"}  # bob noticed nothing
    assert_clean(bob, room)


async def test_error_frame_names_the_action_and_client_message_id(connect: Connect, room: str) -> None:
    """A refused send names its action and clientMessageId, so the client can mark that message failed."""
    alice = await connect("alice")
    error = await alice.send_message(room, " ", client_message_id="cmid-blank")
    assert (error["type"], error["code"], error["action"], error["clientMessageId"]) == (
        "error",
        "empty_message",
        "sendMessage",
        "cmid-blank",
    )


async def test_frame_over_daphnes_limit_closes_only_that_socket(connect: Connect, room: str) -> None:
    """A frame over daphne's 1 MiB limit closes that socket; others are untouched and it can reconnect."""
    alice, bob = await connect("alice"), await connect("bob")
    await alice.join(room)
    await bob.join(room)
    before = await bob.send_message(room, "before")
    await alice.wait_for_seq(room, before["seq"])
    oversized = json.dumps({"action": "sendMessage", "roomId": room, "message": "x" * (1024 * 1024)})
    # daphne drops the connection on reading the frame's header, which can be before the
    # client has written the whole frame out: then the client's own send fails too.
    with contextlib.suppress(ConnectionClosedError):
        await alice.send_raw(oversized)
    # RFC 6455 says 1009; daphne (autobahn's failByDrop) drops the TCP connection instead,
    # which a client sees as 1006. Either way the socket is gone and the message is not stored.
    assert await alice.wait_closed() in {1006, 1009}
    await bob.ping()
    after = await bob.send_message(room, "after")
    assert after["seq"] == before["seq"] + 1
    joined = (await alice.reconnect())[room]
    assert (joined["recovered"], [m["message"] for m in joined["messages"]]) == (True, ["after"])
    assert alice.room(room).texts == ["before", "after"]


async def test_unauthenticated_socket_is_closed_4401(chat_server: DaphneServer) -> None:
    """A socket without a session is closed with 4401 and cannot send."""
    client = await ChatClient.connect(chat_server.ws_url, cookie=None, origin=chat_server.origin)
    try:
        await client.send_json({"action": "sendmessage", "data": "anonymous"})
        assert await client.wait_closed() == 4401
        assert [f for f in client.frames if f["type"] == "ack"] == []
    finally:
        await client.close()


@pytest.mark.parametrize("origin", ["http://evil.example", None])
async def test_foreign_origin_is_refused_at_the_handshake(
    chat_server: DaphneServer, accounts: Accounts, origin: str | None
) -> None:
    """A signed-in cookie from a page on another origin (or none) cannot open the socket."""
    cookie = await asyncio.to_thread(accounts.cookie, "alice")
    with pytest.raises(InvalidStatus) as refused:
        await ChatClient.connect(chat_server.ws_url, cookie=cookie, origin=origin)
    assert refused.value.response.status_code == 403


async def test_messages_render_as_the_text_sent(connect: Connect, room: str) -> None:
    """Markup and non-ASCII text travel as the exact text sent, never altered."""
    alice, bob = await connect("alice"), await connect("bob")
    await bob.join(room)
    text = '<img src=x onerror="alert(1)"> & ünïcødé 🙂 \\n "quotes"'
    ack = await alice.send_message(room, text)
    log = await bob.wait_for_seq(room, ack["seq"])
    assert log.texts == [text]
