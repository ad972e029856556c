"""Read state across sockets, unread and mention counts, mentions and read receipts, through
the real ASGI application on both storage backends (docs/protocol.md "Read state")."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.identity import Identity
from chat import mentions, protocol
from chat.errors import ChatError, ErrorCode
from chat.storage import get_store
from chat.storage.base import NewMessage
from chat.tests.conftest import OpenSocket
from unread import counting
from unread import services as unread
from unread.models import Preference

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

WAIT = 5.0


async def next_of(comm: WebsocketCommunicator, kind: str, **match: Any) -> dict[str, Any]:
    """The next frame of this type (and these fields), skipping others, within WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no {kind} frame {match} within {WAIT} s"
        frame = await comm.receive_json_from(timeout=left)
        if frame.get("type") == kind and all(frame.get(k) == v for k, v in match.items()):
            return frame  # type: ignore[no-any-return]


async def user(name: str, *, staff: bool = False) -> tuple[str, bytes]:
    account = await get_user_model().objects.acreate(username=name, is_staff=staff)
    client = Client()
    await sync_to_async(client.force_login)(account)
    return str(account.pk), f"sessionid={client.cookies['sessionid'].value}".encode()


def room(room_id: str, *, private_members: list[str] | None = None, owner: str | None = None) -> str:
    store = get_store()
    store.ensure_room(room_id=room_id, name=room_id.title(), created_by=owner, now=datetime.now(UTC))
    if private_members is not None:
        store.update_room(room_id=room_id, private=True, now=datetime.now(UTC), ttl_seconds=3600)
        for member in private_members:
            store.add_member(room_id=room_id, user_id=member)
    return room_id


def post(room_id: str, user_id: str, text: str, *, count: int = 1, mention: tuple[str, ...] = ()) -> int:
    store = get_store()
    seq = 0
    for n in range(count):
        new = NewMessage(
            room_id=room_id,
            user_id=user_id,
            username=f"user{user_id}",
            text=f"{text} {n}",
            connection_id="c",
            client_message_id=None,
            timestamp=datetime.now(UTC),
            ttl_seconds=3600,
            mentions=mention,
        )
        seq = store.append_message(new).message.seq
    return seq


async def send(comm: WebsocketCommunicator, room_id: str, text: str) -> dict[str, Any]:
    cmid = uuid.uuid4().hex[:12]
    await comm.send_json_to({"action": "sendMessage", "roomId": room_id, "message": text, "clientMessageId": cmid})
    return await next_of(comm, "message", clientMessageId=cmid)


async def join(comm: WebsocketCommunicator, room_id: str) -> dict[str, Any]:
    await comm.send_json_to({"action": "joinRoom", "roomId": room_id})
    return await next_of(comm, "joined", roomId=room_id)


async def test_mark_read_reaches_every_socket_of_the_user_and_no_one_else(
    storage_backend: str, session_sockets: OpenSocket
) -> None:
    """markRead answers readState, and the user's other tabs get the same frame; others do not."""
    alice, alice_cookie = await user("alice")
    bob, bob_cookie = await user("bob")
    await sync_to_async(room)("lobby")
    last = await sync_to_async(post)("lobby", bob, "hello", count=3)
    tab1, tab2 = await session_sockets(alice_cookie), await session_sockets(alice_cookie)
    other = await session_sockets(bob_cookie)
    await tab1.send_json_to({"action": "markRead", "roomId": "lobby", "seq": 2})
    mine = await next_of(tab1, "readState")
    assert mine == {"type": "readState", "roomId": "lobby", "lastReadSeq": 2, "unread": 1, "mentions": 0}
    assert await next_of(tab2, "readState") == mine
    await other.send_json_to({"action": "ping"})
    assert (await other.receive_json_from(timeout=WAIT))["type"] == "pong"  # nothing before it
    # Never back; past the room's last seq: clamped.
    await tab2.send_json_to({"action": "markRead", "roomId": "lobby", "seq": 1})
    assert (await next_of(tab2, "readState"))["lastReadSeq"] == 2
    await tab2.send_json_to({"action": "markRead", "roomId": "lobby", "seq": 10_000})
    assert await next_of(tab2, "readState") == {**mine, "lastReadSeq": last, "unread": 0}
    assert (await next_of(tab1, "readState", lastReadSeq=last))["unread"] == 0
    assert (await sync_to_async(get_store().read_seqs)(user_id=alice, room_ids=["lobby"])) == {"lobby": last}


async def test_mark_read_is_one_trip_off_the_loop(
    storage_backend: str, session_sockets: OpenSocket, trips: list[str]
) -> None:
    """A markRead in a public room reads the room, moves the mark and counts in one trip, on either store (two
    before): readers send one a second, as often as a small room's messages come."""
    _, alice_cookie = await user("alice")
    bob, _ = await user("bob")
    await sync_to_async(room)("lobby")
    await sync_to_async(post)("lobby", bob, "hello", count=3)
    tab = await session_sockets(alice_cookie)
    await tab.send_json_to({"action": "ping"})
    await next_of(tab, "pong")  # the socket's open is done: its trips are not the markRead's
    trips.clear()
    await tab.send_json_to({"action": "markRead", "roomId": "lobby", "seq": 2})
    assert (await next_of(tab, "readState"))["unread"] == 1
    assert trips == ["_guarded"], trips


@pytest.fixture
def held_marks(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """markReads wait, before their batch, until the test sets this event."""
    held = asyncio.Event()
    real = unread.read_mark

    async def read_mark_held(**kwargs: Any) -> dict[str, Any]:
        await held.wait()
        return await real(**kwargs)

    monkeypatch.setattr(unread, "read_mark", read_mark_held)
    return held


async def test_a_reply_sent_just_after_a_mark_read_is_not_held_behind_it(
    session_sockets: OpenSocket, held_marks: asyncio.Event
) -> None:
    """Reading, then replying: the markRead waits for its batch (gathered for a moment), the
    reply does not wait for the markRead. It is stored and broadcast while the mark is still
    held, and the mark's answer follows once its batch is written."""
    _, alice_cookie = await user("alice")
    bob, _ = await user("bob")
    await sync_to_async(room)("lobby")
    last = await sync_to_async(post)("lobby", bob, "hello", count=3)
    tab = await session_sockets(alice_cookie)
    await join(tab, "lobby")
    await tab.send_json_to({"action": "markRead", "roomId": "lobby", "seq": last})
    reply = await send(tab, "lobby", "on it")
    assert reply["seq"] == last + 1
    held_marks.set()
    assert await next_of(tab, "readState") == {
        "type": "readState",
        "roomId": "lobby",
        "lastReadSeq": last,
        "unread": 0,  # the reply is alice's own
        "mentions": 0,
    }


async def test_a_mark_read_just_before_the_tab_closes_still_reaches_the_other_tabs(
    session_sockets: OpenSocket, held_marks: asyncio.Event
) -> None:
    """Read, then close the tab at once: the mark is still stored and the user's other tabs
    are told, though the closed one is gone before the batch is written."""
    alice, alice_cookie = await user("alice")
    bob, _ = await user("bob")
    await sync_to_async(room)("lobby")
    last = await sync_to_async(post)("lobby", bob, "hello", count=3)
    closing, staying = await session_sockets(alice_cookie), await session_sockets(alice_cookie)
    await closing.send_json_to({"action": "markRead", "roomId": "lobby", "seq": last})
    await closing.send_json_to({"action": "ping"})
    await next_of(closing, "pong")  # the markRead was read and is held
    await closing.disconnect()
    held_marks.set()
    assert (await next_of(staying, "readState"))["lastReadSeq"] == last
    assert await sync_to_async(get_store().read_seqs)(user_id=alice, room_ids=["lobby"]) == {"lobby": last}


async def test_mark_reads_arriving_together_share_one_trip_and_each_gets_its_own_answer(
    storage_backend: str, trips: list[str]
) -> None:
    """markReads that arrive while the store is busy are written in one trip and one
    transaction (one synced commit); each answer is its own: its mark, its counts, its error."""
    alice, bob, carol, mallory = (Identity(user_id=u, username=u) for u in ("u-alice", "u-bob", "u-carol", "u-mal"))
    await sync_to_async(room)("lobby")
    await sync_to_async(room)("secret", private_members=[alice.user_id])
    last = await sync_to_async(post)("lobby", "u-dave", "hello", count=4)
    await sync_to_async(post)("secret", alice.user_id, "plans", count=2, mention=(carol.user_id,))
    trips.clear()
    marks = [(alice, "lobby", 1), (bob, "lobby", 99), (alice, "secret", 1), (mallory, "secret", 2), (alice, "lobby", 3)]
    found = await asyncio.gather(
        *(unread.read_mark(identity=who, room_id=room_id, seq=seq, origin=None) for who, room_id, seq in marks),
        return_exceptions=True,
    )
    assert trips == ["_guarded"], trips
    frame = protocol.read_state_frame
    assert found[0] == found[4] == frame(room_id="lobby", last_read_seq=3, unread=1, mentions=0)  # the higher wins
    assert found[1] == frame(room_id="lobby", last_read_seq=last, unread=0, mentions=0)  # clamped
    assert found[2] == frame(room_id="secret", last_read_seq=1, unread=0, mentions=0)  # alice's own
    assert isinstance(found[3], ChatError) and found[3].code == ErrorCode.UNKNOWN_ROOM
    stored = await sync_to_async(get_store().room_readers)(room_id="lobby", user_ids=[alice.user_id, bob.user_id])
    assert stored == {alice.user_id: 3, bob.user_id: last}
    assert await sync_to_async(get_store().read_seqs)(user_id=mallory.user_id, room_ids=["secret"]) == {}


async def test_a_mark_that_does_not_move_tells_no_other_socket(
    storage_backend: str, session_sockets: OpenSocket
) -> None:
    """A markRead at or below the stored mark answers where the mark is, and the user's other
    sockets, which heard of that mark when it moved, are told nothing."""
    _, alice_cookie = await user("alice")
    bob, _ = await user("bob")
    await sync_to_async(room)("lobby")
    await sync_to_async(post)("lobby", bob, "hello", count=3)
    tab1, tab2 = await session_sockets(alice_cookie), await session_sockets(alice_cookie)
    await tab1.send_json_to({"action": "markRead", "roomId": "lobby", "seq": 2})
    assert (await next_of(tab1, "readState"))["lastReadSeq"] == 2
    assert (await next_of(tab2, "readState"))["lastReadSeq"] == 2
    for seq in (2, 1):
        await tab1.send_json_to({"action": "markRead", "roomId": "lobby", "seq": seq})
        assert (await next_of(tab1, "readState"))["lastReadSeq"] == 2
    await tab2.send_json_to({"action": "ping"})
    assert (await tab2.receive_json_from(timeout=WAIT))["type"] == "pong"  # nothing before it


async def test_bad_mark_read_gets_a_clear_error_and_a_private_room_stays_hidden(
    storage_backend: str, session_sockets: OpenSocket
) -> None:
    """A seq that is no seq is invalid_field; a private room answers a non-member unknown_room."""
    owner, _ = await user("owner")
    _, cookie = await user("mallory")
    await sync_to_async(room)("secret", private_members=[owner])
    await sync_to_async(post)("secret", owner, "plans")
    comm = await session_sockets(cookie)
    await comm.send_json_to({"action": "markRead", "roomId": "secret", "seq": "1"})
    error = await next_of(comm, "error")
    assert (error["code"], error["action"]) == ("invalid_field", "markRead")
    await comm.send_json_to({"action": "markRead", "roomId": "secret", "seq": 1})
    error = await next_of(comm, "error")
    assert (error["code"], error["roomId"]) == ("unknown_room", "secret")
    await comm.send_json_to({"action": "readStates"})
    states = await next_of(comm, "readStates")
    assert "secret" not in {s["roomId"] for s in states["rooms"]}


async def test_room_list_counts_unread_and_mentions_bounded_and_survive_reconnect(
    storage_backend: str, session_sockets: OpenSocket
) -> None:
    """readStates: per room, unread messages of others and mentions of me; past 99 it is 100."""
    alice, cookie = await user("alice")
    bob, _ = await user("bob")
    await sync_to_async(room)("busy")
    await sync_to_async(room)("quiet")
    await sync_to_async(post)("busy", bob, "spam", count=130)
    await sync_to_async(post)("quiet", bob, "hey", count=2)
    await sync_to_async(post)("quiet", bob, "@alice look", mention=(alice,))
    await sync_to_async(post)("quiet", alice, "mine")
    comm = await session_sockets(cookie)
    await comm.send_json_to({"action": "readStates", "roomIds": ["busy", "quiet"]})
    states = {s["roomId"]: s for s in (await next_of(comm, "readStates"))["rooms"]}
    assert (states["busy"]["unread"], counting.badge(states["busy"]["unread"])) == (100, "99+")
    assert (states["quiet"]["unread"], states["quiet"]["mentions"]) == (3, 1)
    await comm.send_json_to({"action": "markRead", "roomId": "quiet", "seq": 2})
    assert (await next_of(comm, "readState"))["unread"] == 1
    await comm.disconnect()
    again = await session_sockets(cookie)  # after a reconnect: read from the store
    await again.send_json_to({"action": "readStates", "roomIds": ["quiet"]})
    (quiet,) = (await next_of(again, "readStates"))["rooms"]
    assert quiet == {"type": "readState", "roomId": "quiet", "lastReadSeq": 2, "unread": 1, "mentions": 1}


async def test_mentions_are_resolved_by_the_server_and_listed(
    storage_backend: str, session_sockets: OpenSocket
) -> None:
    """@name of a reader becomes a user id in the frame; a non-member is not mentioned; the
    mentioned user gets a live readState and finds the message in `mentions`."""
    alice, alice_cookie = await user("alice")
    bob, bob_cookie = await user("bob")
    carol, _ = await user("carol")
    await sync_to_async(room)("team", private_members=[alice, bob], owner=alice)
    bob_socket = await session_sockets(bob_cookie)
    alice_socket = await session_sockets(alice_cookie)
    await join(alice_socket, "team")
    frame = await send(alice_socket, "team", "@Bob and @carol, see mail@example.com")
    assert frame["mentions"] == [bob]  # carol is no member: no mention, nothing told
    live = await next_of(bob_socket, "readState", roomId="team")  # bob has not joined "team"
    assert (live["unread"], live["mentions"]) == (1, 1)
    await bob_socket.send_json_to({"action": "mentions"})
    listed = await next_of(bob_socket, "mentions")
    assert [m["messageId"] for m in listed["messages"]] == [frame["messageId"]]
    # @room: every member, from the room's owner; from anyone else it is plain text.
    assert (await send(alice_socket, "team", "@room standup"))["mentions"] == [bob]
    await join(bob_socket, "team")
    assert "mentions" not in await send(bob_socket, "team", "@room hello?")
    assert carol not in frame["mentions"]


async def test_here_and_room_in_a_public_room_reach_those_present_and_its_members(
    storage_backend: str, session_sockets: OpenSocket
) -> None:
    """In a public room the owner's @here reaches everyone present (members with a socket
    open, anyone reading the room now) and @room also the members who are away; someone
    online elsewhere who is neither is not mentioned; a plain member's @room is plain text."""
    ann, ann_cookie = await user("ann")
    bob, _ = await user("bob")  # a member, offline
    cid, cid_cookie = await user("cid")  # no member, reading the room now
    dee, dee_cookie = await user("dee")  # no member, online, elsewhere
    eve, eve_cookie = await user("eve")  # a member, online, elsewhere
    await sync_to_async(room)("plaza", owner=ann)
    for member in (ann, bob, eve):
        await sync_to_async(get_store().add_member)(room_id="plaza", user_id=member)
    ann_socket = await session_sockets(ann_cookie)
    await join(ann_socket, "plaza")
    await join(await session_sockets(cid_cookie), "plaza")
    dee_socket = await session_sockets(dee_cookie)
    eve_socket = await session_sockets(eve_cookie)
    for online in (dee_socket, eve_socket):  # a round trip: the socket's connect has finished
        await online.send_json_to({"action": "ping"})
        await next_of(online, "pong")
    here = await send(ann_socket, "plaza", "@here lunch?")
    assert here.get("mentions") == sorted([cid, eve])
    everyone = await send(ann_socket, "plaza", "@room meeting at noon")
    assert everyone.get("mentions") == sorted([bob, cid, eve])
    assert dee not in everyone["mentions"]
    await join(eve_socket, "plaza")
    assert "mentions" not in await send(eve_socket, "plaza", "@room me too")


def test_mention_parsing_is_pure_and_strict() -> None:
    """@name after a space or at the start; e-mail addresses and trailing punctuation are not names."""
    parsed = mentions.parse("@Alice, hi @bob. mail a@b.c @@x @here")
    assert parsed.usernames == frozenset({"alice", "bob"})
    assert parsed.here and not parsed.room
    assert mentions.resolve(
        parsed, author_id="1", user_ids_by_name={"alice": "1", "bob": "2"}, may_broadcast=False, readers=None
    ) == ("2",)
    assert mentions.resolve(
        mentions.parse("@here"),
        author_id="1",
        user_ids_by_name={},
        may_broadcast=True,
        readers=["1", "2", "3"],
        present=["2", "9"],
    ) == ("2",)


async def test_read_receipts_in_small_private_rooms_and_the_opt_out(
    storage_backend: str, session_sockets: OpenSocket
) -> None:
    """A member reading further is told to the room's joined sockets; not when turned off."""
    alice, alice_cookie = await user("alice")
    bob, bob_cookie = await user("bob")
    await sync_to_async(room)("dm", private_members=[alice, bob])
    seq = await sync_to_async(post)("dm", alice, "hi bob")
    alice_socket, bob_socket = await session_sockets(alice_cookie), await session_sockets(bob_cookie)
    await join(alice_socket, "dm")
    await bob_socket.send_json_to({"action": "markRead", "roomId": "dm", "seq": seq})
    receipt = await next_of(alice_socket, "readReceipt")
    assert receipt == {"type": "readReceipt", "roomId": "dm", "userId": bob, "username": "bob", "lastReadSeq": seq}
    await alice_socket.send_json_to({"action": "receipts", "roomId": "dm"})
    readers = (await next_of(alice_socket, "receipts"))["readers"]
    assert readers == [{"userId": bob, "username": "bob", "lastReadSeq": seq}]
    await Preference.objects.acreate(user_id=bob, send_receipts=False)
    seq = await sync_to_async(post)("dm", alice, "still there?")
    await bob_socket.send_json_to({"action": "markRead", "roomId": "dm", "seq": seq})
    await next_of(bob_socket, "readState", lastReadSeq=seq)
    await alice_socket.send_json_to({"action": "receipts", "roomId": "dm"})
    assert (await next_of(alice_socket, "receipts"))["readers"] == []


def test_read_state_frame_shape() -> None:
    """The readState frame names exactly the fields of docs/protocol.md."""
    frame = protocol.read_state_frame(room_id="r", last_read_seq=3, unread=2, mentions=1)
    assert frame == {"type": "readState", "roomId": "r", "lastReadSeq": 3, "unread": 2, "mentions": 1}
