"""Abuse: frames no client should send, identities and rooms a client may not claim, origins
not on the allow-list. Each refusal is exact (an error frame with its code, a close code, or
HTTP 403), and the room's other members never notice: every test ends with the invariant
check on a room with bystanders.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable

import pytest
import websockets
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from tests.e2e.client import timeout
from tests.faults.cluster import HAPROXY, Cluster, close_all, next_address
from tests.faults.conftest import APP_ORIGIN, BOTS, MEMBER, MODERATOR, PRIVATE_ROOM, Room
from tests.faults.harness import FaultClient
from tests.faults.rawws import BINARY, CLOSE, TEXT, HandshakeRefused, RawSocket

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(HAPROXY is None, reason="HAProxy is not installed (Debian: apt-get install -y haproxy)"),
]


async def raw(cluster: Cluster, user: str, index: int = 0) -> RawSocket:
    server = cluster.servers[index]
    return await RawSocket.open(server.port, headers={"Origin": server.origin, "Cookie": cluster.cookies[user]})


async def attacker(cluster: Cluster, user: str, index: int = 0) -> FaultClient:
    server = cluster.servers[index]
    return await FaultClient.open(
        server.ws_url, cookie=cluster.cookies[user], origin=server.origin, name=user, local_host=next_address()
    )


async def test_oversize_frames_and_messages_are_refused_and_the_socket_stays(
    room: Room, person: Callable[[], str]
) -> None:
    """Over 64 KiB: frame_too_large; a 4001-character message: message_too_long; the socket stays open."""
    mallory = await attacker(room.cluster, person())
    try:
        await mallory.join(room.room_id)
        big = json.dumps({"action": "sendMessage", "roomId": room.room_id, "message": "x" * 70_000})
        assert (await mallory.expect_error(big))["code"] == "frame_too_large"
        long = await mallory.send_message(room.room_id, "y" * 4001)
        assert (long["type"], long["code"]) == ("error", "message_too_long")
        await mallory.ping()
        await room.unharmed(mallory)
        assert not any("x" * 100 in m.text or "y" * 100 in m.text for m in room.cluster.read_store(room.room_id))
    finally:
        await mallory.close()


async def test_a_frame_over_daphnes_limit_drops_only_that_connection(room: Room, person: Callable[[], str]) -> None:
    """A 2 MiB frame (daphne's limit is 1 MiB): that connection is dropped (1006), nobody else's."""
    mallory = await attacker(room.cluster, person(), 1)
    try:
        with contextlib.suppress(websockets.ConnectionClosed):
            await mallory.ws.send("z" * (2 * 1024 * 1024))
        assert await mallory.wait_closed(timeout(10)) == 1006  # dropped: autobahn fails it without a close frame
        await room.unharmed()
    finally:
        await mallory.close()


@pytest.mark.parametrize(
    ("name", "opcode", "payload", "options"),
    [
        ("invalid UTF-8", TEXT, b'{"action": "ping", "x": "\xff\xfe"}', {}),
        ("a lone surrogate in UTF-8", TEXT, b'{"action": "ping", "x": "\xed\xa0\x80"}', {}),
        ("an unmasked client frame", TEXT, b'{"action": "ping"}', {"mask": False}),
        ("a reserved opcode", 0x3, b"boo", {}),
        ("reserved bits set", TEXT, b'{"action": "ping"}', {"rsv": 0x4}),
    ],
)
async def test_frames_that_break_the_websocket_protocol_end_only_that_connection(
    room: Room, person: Callable[[], str], name: str, opcode: int, payload: bytes, options: dict[str, object]
) -> None:
    """Invalid UTF-8, an unmasked or reserved frame: the connection ends (1007/1002 or dropped); others unharmed."""
    mallory = await raw(room.cluster, person())
    try:
        await mallory.send(opcode, payload, **options)  # type: ignore[arg-type]
        code = await mallory.close_code(timeout(10))
        assert code in (None, 1002, 1007), f"{name}: closed with {code}"
        await room.unharmed()
        print(f"\nobserved {name}: {'dropped' if code is None else f'closed {code}'}")
    finally:
        mallory.abort()


async def test_binary_and_fragmented_frames_are_answered_like_any_other(room: Room, person: Callable[[], str]) -> None:
    """A binary frame gets binary_frame; a ping split in three fragments is one frame and gets its pong."""
    mallory = await raw(room.cluster, person())
    try:
        await mallory.send(BINARY, b'{"action": "ping"}')
        answer = await mallory.next_data()
        assert answer is not None and answer.json()["code"] == "binary_frame"
        await mallory.send(TEXT, b'{"action"', fin=False)
        await mallory.send(0x0, b': "pi', fin=False)
        await mallory.send(0x0, b'ng"}')
        answer = await mallory.next_data()
        assert answer is not None and answer.json() == {"type": "pong"}
        await mallory.send(CLOSE, b"\x03\xe8")
        assert await mallory.close_code() == 1000
        await room.unharmed()
    finally:
        mallory.abort()


@pytest.mark.parametrize(
    ("name", "frame", "code"),
    [
        ("30 000 nested arrays", "[" * 30_000 + "]" * 30_000, "invalid_json"),
        ("10 000 nested objects", '{"a":' * 10_000 + "1" + "}" * 10_000, "invalid_json"),
        (
            "a 60 000-digit number",
            '{"action": "history", "roomId": "general", "beforeSeq": ' + "9" * 60_000 + "}",
            None,
        ),
        ("NaN", '{"action": "ping", "n": NaN}', "invalid_json"),
        ("a JSON string, not an object", json.dumps("x" * 50_000), "invalid_frame"),
        ("4 000 keys", json.dumps({"action": "ping", **{f"k{i}": i for i in range(4_000)}}), "pong"),
    ],
)
async def test_deep_huge_and_odd_json_is_answered_quickly_and_exactly(
    room: Room, person: Callable[[], str], name: str, frame: str, code: str | None
) -> None:
    """Deep nesting, huge numbers, NaN, non-objects, thousands of keys: one exact answer each, fast."""
    mallory = await attacker(room.cluster, person())
    try:
        answer = await mallory.request(frame, expect="pong", wait=timeout(5))
        if code == "pong":
            assert answer == {"type": "pong"}
        elif code is None:  # Python refuses to parse it (int max digits), or it is out of range
            assert answer["code"] in ("invalid_json", "invalid_field"), answer
        else:
            assert answer["code"] == code, answer
        await mallory.ping()
        await room.unharmed(mallory)
        print(f"\nobserved {name}: {answer.get('code', answer['type'])}")
    finally:
        await mallory.close()


async def test_identity_fields_in_a_frame_are_ignored(room: Room, person: Callable[[], str]) -> None:
    """A send that claims another user, a seq, a messageId and a timestamp is stored as its real sender's."""
    name = person()
    mallory = await attacker(room.cluster, name)
    try:
        await mallory.join(room.room_id)
        forged = {
            "action": "sendMessage",
            "roomId": room.room_id,
            "message": "I am the moderator",
            "clientMessageId": "forged-1",
            "userId": "1",
            "username": MODERATOR,
            "seq": 1,
            "messageId": "00000000-0000-0000-0000-000000000000",
            "timestamp": "2000-01-01T00:00:00.000Z",
            "type": "message",
        }
        await mallory.send_json(forged)
        ack = await mallory.wait_for(lambda f: f["type"] in ("ack", "error") and f.get("clientMessageId") == "forged-1")
        assert ack["type"] == "ack" and ack["seq"] > 1 and ack["messageId"] != forged["messageId"]
        seen = await room.bystanders[0].wait_for(lambda f: f.get("clientMessageId") == "forged-1")
        assert (seen["username"], seen["messageId"], seen["seq"]) == (name, ack["messageId"], ack["seq"])
        assert seen["timestamp"] != forged["timestamp"]
        stored = next(m for m in room.cluster.read_store(room.room_id) if m.client_message_id == "forged-1")
        assert stored.user_id == seen["userId"] != "1"
        await room.unharmed(mallory)
    finally:
        await mallory.close()


async def test_unknown_and_private_rooms_give_away_nothing(room: Room, person: Callable[[], str]) -> None:
    """Join, resume, history and send on a room that does not exist or is private: an error frame, no message."""
    up = room.cluster
    member = await attacker(up, MEMBER)
    mallory = await attacker(up, person())
    try:
        await member.join(PRIVATE_ROOM)
        secret = await member.send_reliably(PRIVATE_ROOM, "the secret plan")
        asks = []
        for target in ("no-such-room", PRIVATE_ROOM):
            asks += [
                {"action": "joinRoom", "roomId": target},
                {"action": "joinRoom", "roomId": target, "lastSeq": 0},
                {"action": "history", "roomId": target, "limit": 200},
                {"action": "sendMessage", "roomId": target, "message": "let me in", "clientMessageId": "in-1"},
                {"action": "leaveRoom", "roomId": target},
            ]
        codes = []
        for ask in asks:
            reply = await mallory.request(ask, expect="left" if ask["action"] == "leaveRoom" else "error")
            codes.append(reply.get("code", reply["type"]))
        assert codes == [
            *["unknown_room"] * 4,
            "left",
            *["unknown_room"] * 4,
            "left",
        ], codes
        assert "the secret plan" not in json.dumps(mallory.frames)
        assert all(f["type"] != "message" for f in mallory.frames)
        assert [m.seq for m in up.read_store(PRIVATE_ROOM) if m.text == "let me in"] == []
        assert up.read_store("no-such-room") == []
        assert (await mallory.history(room.room_id))["type"] == "history", "public rooms still work for it"
        await room.unharmed(mallory)
        print(f"\nobserved rooms it may not see: {codes}; the private room holds seq {secret['seq']} untouched")
    finally:
        await close_all([member, mallory])


ORIGINS = [
    (APP_ORIGIN, True),
    # DJANGO_ALLOWED_HOSTS entries are host patterns, not origins: another port or scheme of
    # the site's host is another origin (issue 13; the site's own origin is added below).
    ("http://127.0.0.1", False),
    ("http://localhost:8000", False),
    ("http://127.0.0.1.evil.com", False),
    ("http://evil-127.0.0.1", False),
    ("http://127.0.0.1evil.com", False),
    ("http://localhost.evil.com", False),
    ("http://127.0.0.1@evil.com", False),
    ("https://app.example.com.evil.com", False),
    ("https://evil-app.example.com", False),
    ("http://app.example.com", False),
    ("https://app.example.com:8443", False),
    ("null", False),
    ("", False),  # an empty header: 400 (autobahn), not 403
    (None, False),
]


async def test_only_allow_listed_origins_open_a_socket(room: Room) -> None:
    """Exactly the site's own and the allow-listed origins open the socket; look-alikes, null and no Origin are
    refused (403)."""
    server = room.cluster.servers[0]
    origins = [(server.origin, True), *ORIGINS]
    outcomes: dict[str | None, int] = {}
    for origin, _allowed in origins:
        headers = {"Cookie": room.cluster.cookies[BOTS[0]], **({"Origin": origin} if origin is not None else {})}
        try:
            sock = await RawSocket.open(server.port, headers=headers)
        except HandshakeRefused as refused:
            outcomes[origin] = refused.status
            continue
        await sock.send_json({"action": "ping"})
        answer = await sock.next_data()
        assert answer is not None and answer.json() == {"type": "pong"}
        outcomes[origin] = 101
        sock.abort()
    assert outcomes == {o: 101 if ok else 400 if o == "" else 403 for o, ok in origins}
    await room.unharmed()


async def test_a_browser_origin_through_the_balancer_is_checked_the_same(room: Room) -> None:
    """Behind HAProxy too, a look-alike origin is refused (403) and the real one accepted."""
    balancer = room.cluster.balancer
    good = await websockets.connect(balancer.ws_url, origin=Origin(APP_ORIGIN), open_timeout=timeout(10))
    await good.close()
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(
            balancer.ws_url, origin=Origin("https://app.example.com.evil.com"), open_timeout=timeout(10)
        )
    assert refused.value.response.status_code == 403
    await room.unharmed()
