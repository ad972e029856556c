"""Presence and typing through the real consumer (in-memory layer, embedded presence store).

Sockets that show presence and typing say so with a `presence` action first; the others
never receive either (chat.ephemeral).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from chat import presence, services
from chat.moderation_models import Mute
from chatsite.asgi import application
from tests.frames import as_read

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

WAIT = 5.0
Frame = dict[str, Any]


@pytest.fixture(autouse=True)
def typing_at_once(settings: Any) -> None:
    """Typing frames go out at once, so tests can read frames in order; one test batches."""
    settings.CHAT_TYPING_BATCH_SECONDS = 0


@pytest.fixture
async def sockets() -> AsyncIterator[Callable[[str], Awaitable[tuple[WebsocketCommunicator, str]]]]:
    """Sign a user in and open a socket for them: (socket, user id)."""
    opened: list[WebsocketCommunicator] = []

    def sign_in(username: str) -> tuple[str, str]:
        user, _ = get_user_model().objects.get_or_create(username=username)
        client = Client()
        client.force_login(user)
        return f"sessionid={client.cookies['sessionid'].value}", str(user.pk)

    async def open_socket(username: str) -> tuple[WebsocketCommunicator, str]:
        cookie, user_id = await sync_to_async(sign_in)(username)
        headers = [(b"host", b"127.0.0.1"), (b"origin", b"http://127.0.0.1"), (b"cookie", cookie.encode())]
        comm = WebsocketCommunicator(application, "/ws/", headers=headers)
        opened.append(comm)
        connected, _ = await comm.connect(timeout=WAIT)
        assert connected
        return comm, user_id

    yield open_socket
    for comm in opened:
        await comm.disconnect(timeout=WAIT)
    layer = get_channel_layer()
    assert layer is not None
    await layer.flush()  # type: ignore[attr-defined]


async def recv(comm: WebsocketCommunicator) -> Frame:
    """The next frame, as the client reads it (a window's presence changes one by one)."""
    left: list[Frame] = comm.__dict__.setdefault("unread_frames", [])
    if not left:
        frame = await comm.receive_json_from(timeout=WAIT)
        assert isinstance(frame, dict)
        left.extend(as_read(frame))
    return left.pop(0)


async def recv_type(comm: WebsocketCommunicator, kind: str) -> Frame:
    """The next frame of this type; any other frame before it fails the test."""
    frame = await recv(comm)
    assert frame["type"] == kind, frame
    return frame


async def join(comm: WebsocketCommunicator, room_id: str) -> None:
    await comm.send_json_to({"action": "joinRoom", "roomId": room_id})
    await recv_type(comm, "joined")


async def show_presence(comm: WebsocketCommunicator) -> None:
    await comm.send_json_to({"action": "presence", "status": "online"})


async def post(comm: WebsocketCommunicator, room_id: str, text: str) -> None:
    await comm.send_json_to({"action": "sendMessage", "roomId": room_id, "message": text, "clientMessageId": text})


@pytest.fixture
async def room() -> str:
    await sync_to_async(services.room_create)(room_id="lounge", name="Lounge")
    return "lounge"


async def test_typing_reaches_the_others_once_per_interval_and_never_the_typist(sockets: Any, room: str) -> None:
    alice, alice_id = await sockets("alice")
    bob, _ = await sockets("bob")
    await show_presence(alice)
    await show_presence(bob)
    await join(alice, room)
    await join(bob, room)
    assert (await recv_type(alice, "presence"))["status"] == "online"  # bob entered the room
    assert (await recv_type(bob, "presence"))["userId"] == alice_id  # who was there already
    await alice.send_json_to({"action": "typing", "roomId": room})
    await alice.send_json_to({"action": "typing", "roomId": room})  # too soon: dropped, no error
    await post(alice, room, "hi")
    assert await recv_type(bob, "typing") == {"type": "typing", "roomId": room, "userId": alice_id, "username": "alice"}
    assert (await recv_type(bob, "message"))["message"] == "hi"  # and no second typing frame
    kinds = {(await recv(alice))["type"], (await recv(alice))["type"]}
    assert kinds == {"ack", "message"}  # the typist got no typing frame and no error


async def test_typing_is_never_stored_nor_replayed(sockets: Any, room: str) -> None:
    alice, _ = await sockets("alice")
    await join(alice, room)
    await alice.send_json_to({"action": "typing", "roomId": room})
    await post(alice, room, "one")
    await recv(alice)
    await recv(alice)
    bob, _ = await sockets("bob")
    await show_presence(bob)
    await bob.send_json_to({"action": "joinRoom", "roomId": room, "lastSeq": 0})
    joined = await recv_type(bob, "joined")
    assert [e["type"] for e in joined["events"]] == ["message"]


async def test_typing_into_a_room_not_joined_is_an_error_and_goes_nowhere(sockets: Any, room: str) -> None:
    alice, _ = await sockets("alice")
    await alice.send_json_to({"action": "typing", "roomId": room})
    error = await recv_type(alice, "error")
    assert (error["code"], error["action"], error["roomId"]) == ("not_joined", "typing", room)


async def test_a_muted_user_typing_reaches_nobody(sockets: Any, room: str) -> None:
    alice, alice_id = await sockets("alice")
    carol, carol_id = await sockets("carol")
    bob, _ = await sockets("bob")
    await join(alice, room)
    await join(carol, room)
    await join(bob, room)
    await show_presence(bob)
    assert {(await recv_type(bob, "presence"))["userId"] for _ in range(2)} == {alice_id, carol_id}
    now = services.utcnow()
    await sync_to_async(Mute.objects.create)(
        user_id=int(alice_id), room_id=room, reason="test", created_at=now, expires_at=now + timedelta(hours=1)
    )
    await alice.send_json_to({"action": "typing", "roomId": room})
    await alice.send_json_to({"action": "ping"})
    assert await recv(alice) == {"type": "pong"}  # handled (and dropped) without an error
    await carol.send_json_to({"action": "typing", "roomId": room})
    assert (await recv_type(bob, "typing"))["userId"] == carol_id  # alice's never came


async def test_presence_goes_to_co_members_online_away_offline(sockets: Any, room: str) -> None:
    alice, _ = await sockets("alice")
    await show_presence(alice)
    await join(alice, room)
    bob, bob_id = await sockets("bob")
    await show_presence(bob)
    await join(bob, room)
    snapshot = await recv_type(bob, "presence")  # alice, already there
    assert snapshot["status"] == "online"
    online = await recv_type(alice, "presence")
    assert (online["userId"], online["status"]) == (bob_id, "online")
    await bob.send_json_to({"action": "presence", "status": "away"})  # bob's tab is hidden
    away = await recv_type(alice, "presence")
    assert (away["userId"], away["status"]) == (bob_id, "away")
    assert (await presence.presence_of([bob_id]))[bob_id].status == "away"
    await bob.disconnect(timeout=WAIT)
    gone = await recv_type(alice, "presence")
    assert (gone["userId"], gone["status"]) == (bob_id, "offline") and gone["lastSeenAt"]
    found = await presence.presence_of([bob_id, "424242"])
    assert found[bob_id].status == "offline" and found[bob_id].last_seen_at is not None
    assert found["424242"] == presence.UserPresence("offline", None)
    assert presence.presence_payload(found["424242"]) == {"status": "offline", "lastSeenAt": None}


async def test_two_tabs_are_one_user_and_a_socket_that_did_not_ask_gets_no_presence(sockets: Any, room: str) -> None:
    alice, _ = await sockets("alice")
    await show_presence(alice)
    await join(alice, room)
    plain, carol_id = await sockets("carol")  # never sent `presence`
    await join(plain, room)
    assert (await recv_type(alice, "presence"))["userId"] == carol_id  # she is seen all the same
    tab1, bob_id = await sockets("bob")
    await join(tab1, room)
    assert (await recv_type(alice, "presence"))["userId"] == bob_id
    tab2, _ = await sockets("bob")
    await join(tab2, room)
    await tab1.disconnect(timeout=WAIT)
    await tab2.send_json_to({"action": "typing", "roomId": room})
    assert (await recv_type(alice, "typing"))["userId"] == bob_id  # no presence change came first
    await plain.send_json_to({"action": "ping"})
    assert await recv(plain) == {"type": "pong"}
    await post(tab2, room, "sent")
    assert (await recv_type(plain, "message"))["message"] == "sent"  # no presence nor typing before it


async def test_a_room_connecting_at_once_costs_a_watcher_one_frame(sockets: Any, room: str, settings: Any) -> None:
    """Three users enter the room alice watches within one window: she gets one frame that
    lists them, not three (issue 22: a connect storm's presence frames are bounded). The
    window is long here, and alice's join of another room writes it out at once (a join's
    picture of the room goes out at once, with what was waiting): no test clock to race."""
    settings.CHAT_PRESENCE_BATCH_SECONDS = 60
    await sync_to_async(services.room_create)(room_id="annex", name="Annex")
    alice, _ = await sockets("alice")
    await show_presence(alice)
    await join(alice, room)
    entered = {}
    for name in ("bob", "carol", "dave"):
        comm, user_id = await sockets(name)
        await join(comm, room)
        entered[user_id] = comm
    await join(alice, "annex")
    frame = await alice.receive_json_from(timeout=WAIT)
    assert frame["type"] == "presence" and set(frame) == {"type", "users"}, frame
    assert sorted(u["userId"] for u in frame["users"]) == sorted(entered)
    assert {(u["type"], u["status"]) for u in frame["users"]} == {("presence", "online")}
    await alice.send_json_to({"action": "ping"})
    assert await recv(alice) == {"type": "pong"}  # and no frame per user after it


async def test_a_lone_change_comes_as_a_frame_of_its_own_after_the_window(
    sockets: Any, room: str, settings: Any
) -> None:
    settings.CHAT_PRESENCE_BATCH_SECONDS = 0.05
    alice, _ = await sockets("alice")
    await show_presence(alice)
    await join(alice, room)
    bob, bob_id = await sockets("bob")
    await join(bob, room)
    frame = await alice.receive_json_from(timeout=WAIT)
    assert frame == {"type": "presence", "userId": bob_id, "status": "online", "lastSeenAt": frame["lastSeenAt"]}


async def test_bad_presence_status_is_a_clear_error(sockets: Any) -> None:
    alice, _ = await sockets("alice")
    await alice.send_json_to({"action": "presence", "status": "busy"})
    error = await recv_type(alice, "error")
    assert (error["code"], error["action"]) == ("invalid_field", "presence")


async def test_a_crowded_room_gets_typing_but_no_pushed_presence(sockets: Any, room: str, settings: Any) -> None:
    settings.CHAT_PRESENCE_ROOM_LIMIT = 1
    alice, _ = await sockets("alice")
    await show_presence(alice)
    await join(alice, room)
    bob, bob_id = await sockets("bob")
    await show_presence(bob)
    await join(bob, room)  # two present: past the limit, so no snapshot and no push
    await bob.send_json_to({"action": "typing", "roomId": room})
    assert (await recv_type(alice, "typing"))["userId"] == bob_id
    await bob.send_json_to({"action": "ping"})
    assert await recv(bob) == {"type": "pong"}
    assert (await presence.presence_of([bob_id]))[bob_id].status == "online"  # still known, on request


async def test_typing_in_one_window_reaches_each_socket_in_one_write_without_its_own(
    sockets: Any, room: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.CHAT_TYPING_BATCH_SECONDS = 1.5  # bob's frame lands in alice's window, even on a busy machine
    alice, alice_id = await sockets("alice")
    bob, bob_id = await sockets("bob")
    carol, carol_id = await sockets("carol")
    for comm in (alice, bob, carol):
        await join(comm, room)
    for comm in (alice, bob, carol):
        await show_presence(comm)
    for comm in (alice, bob, carol):  # the presence of the two others
        assert {(await recv_type(comm, "presence"))["status"] for _ in range(2)} == {"online"}
    layer = get_channel_layer()
    published: list[dict[str, Any]] = []
    real_send = layer.group_send

    async def spy(group: str, event: dict[str, Any]) -> None:
        if event["type"] == "chat.typing":
            published.append(event)
        await real_send(group, event)

    monkeypatch.setattr(layer, "group_send", spy)
    await alice.send_json_to({"action": "typing", "roomId": room})
    await bob.send_json_to({"action": "typing", "roomId": room})
    assert {(await recv_type(carol, "typing"))["userId"] for _ in range(2)} == {alice_id, bob_id}
    # Both typists in one publish: with Redis one PUBLISH for the window, not one per frame.
    assert [[typist[0] for typist in event["typists"]] for event in published] == [[alice_id, bob_id]]
    assert (await recv_type(alice, "typing"))["userId"] == bob_id  # never her own
    assert (await recv_type(bob, "typing"))["userId"] == alice_id
    for comm in (alice, bob):
        await comm.send_json_to({"action": "ping"})
        assert await recv(comm) == {"type": "pong"}
    assert carol_id


async def test_typing_frames_do_not_count_against_the_message_rate_limit(
    sockets: Any, room: str, settings: Any
) -> None:
    """With two messages allowed per minute, a burst of typing frames first leaves both sends
    accepted; the third send is the one refused."""
    settings.CHAT_RATE_LIMIT_SEND_PER_CONNECTION = "2/60"
    alice, _ = await sockets("alice")
    await join(alice, room)
    for _ in range(5):
        await alice.send_json_to({"action": "typing", "roomId": room})
    for text in ("one", "two"):
        await post(alice, room, text)
        assert {(await recv(alice))["type"], (await recv(alice))["type"]} == {"ack", "message"}
    await post(alice, room, "three")
    refused = await recv_type(alice, "error")
    assert (refused["code"], refused["clientMessageId"]) == ("rate_limited", "three")
