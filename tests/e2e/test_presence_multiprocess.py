"""Presence and typing across two daphne processes sharing one Redis (issue 15).

alice's socket is on one process and bob's on the other: bob's presence changes and his
typing reach alice through Redis, within the issue's 2 s (checked against a bounded wait
that allows for a busy machine); a process killed without closing its sockets stops showing
its users online once CHAT_PRESENCE_TTL_SECONDS pass, reported by the process that lives.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.client import ChatClient, create_room, timeout
from tests.fixtures.servers import DaphneServer

pytestmark = pytest.mark.timeout(180)


def new_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def open_client(server: DaphneServer, username: str) -> ChatClient:
    client = await ChatClient.connect(server.ws_url, cookie=server.signup(username), origin=server.origin)
    await client.send_json({"action": "presence", "status": "online"})  # it shows presence and typing
    return client


def presence_of(frame: dict, status: str) -> bool:
    return frame["type"] == "presence" and frame["status"] == status


def start_pair(daphne_factory: Callable[..., DaphneServer], tmp_path: Path, redis_url: str, **env: str):
    shared = tmp_path / "shared"
    shared.mkdir()
    common = {"REDIS_URL": redis_url, "CHAT_PRESENCE_TTL_SECONDS": "1.5", **env}
    return [daphne_factory(shared_dir=shared, CHAT_INSTANCE_ID=f"presence-{i}", **common) for i in range(2)]


async def test_presence_and_typing_cross_processes(
    daphne_factory: Callable[..., DaphneServer], tmp_path: Path, redis_url: str
) -> None:
    one, two = start_pair(daphne_factory, tmp_path, redis_url, CHAT_AWAY_AFTER_SECONDS="2")
    room = new_name("presence")
    alice_name, bob_name = new_name("alice"), new_name("bob")
    room = create_room(one.base_url, one.signup(new_name("keeper")), room)
    alice = await open_client(one, alice_name)
    await alice.join(room)
    bob = await open_client(two, bob_name)
    await bob.join(room)

    online = await alice.wait_for(lambda f: presence_of(f, "online"), wait=timeout(10))
    bob_id = online["userId"]
    # alice, already there: online, or away if her 2 s of quiet passed on a busy machine
    assert (await bob.wait_for(lambda f: f["type"] == "presence", wait=timeout(10)))["status"] in {"online", "away"}

    mark = len(alice.frames)
    await bob.send_json({"action": "typing", "roomId": room})
    await bob.send_json({"action": "typing", "roomId": room})  # within 2 s: dropped
    typing = await alice.wait_for(lambda f: f["type"] == "typing", after=mark, wait=timeout(10))
    assert typing == {"type": "typing", "roomId": room, "userId": bob_id, "username": bob_name}
    ack = await bob.send_message(room, "after typing")
    assert ack["type"] == "ack"
    await alice.wait_for_seq(room, ack["seq"], wait=timeout(10))
    assert [f["type"] for f in alice.frames[mark:]].count("typing") == 1
    assert not [f for f in bob.frames if f["type"] == "typing"]  # never to the typist

    # Idle (only heartbeats) past CHAT_AWAY_AFTER_SECONDS: away; any other frame: online again.
    mark = len(alice.frames)
    away = await alice.wait_for(
        lambda f: presence_of(f, "away") and f["userId"] == bob_id, after=mark, wait=timeout(30)
    )
    assert away["lastSeenAt"]
    await bob.send_json({"action": "presence", "status": "online"})
    await alice.wait_for(lambda f: presence_of(f, "online") and f["userId"] == bob_id, after=mark, wait=timeout(10))

    mark = len(alice.frames)
    await bob.close()
    gone = await alice.wait_for(lambda f: presence_of(f, "offline"), after=mark, wait=timeout(10))
    assert gone["userId"] == bob_id and gone["lastSeenAt"]
    await alice.close()


async def test_a_socket_that_asks_for_presence_gets_each_member_already_there_in_a_frame_of_its_own(
    daphne_factory: Callable[..., DaphneServer], tmp_path: Path, redis_url: str
) -> None:
    """The snapshot a socket gets when it asks for presence goes out in one write on
    daphne (docs/performance.md): the client still reads one presence frame per member."""
    one, two = start_pair(daphne_factory, tmp_path, redis_url)
    room = create_room(one.base_url, one.signup(new_name("keeper")), new_name("snapshot"))
    present = []
    for _ in range(3):
        client = await open_client(one, new_name("member"))
        await client.join(room)
        present.append(client)
    erin = await ChatClient.connect(two.ws_url, cookie=two.signup(new_name("erin")), origin=two.origin)
    await erin.join(room)
    mark = len(erin.frames)
    await erin.send_json({"action": "presence", "status": "online"})

    async def snapshot_of(client: ChatClient, count: int) -> list[dict]:
        def enough(_: dict) -> bool:
            return sum(1 for f in client.frames[mark:] if f["type"] == "presence") >= count

        await client.wait_for(enough, after=mark, wait=timeout(10))
        return [f for f in client.frames[mark:] if f["type"] == "presence"]

    frames = await snapshot_of(erin, 3)
    assert len({f["userId"] for f in frames}) == 3
    assert all(
        f["status"] in {"online", "away"} and set(f) == {"type", "userId", "status", "lastSeenAt"} for f in frames
    )
    ack = await erin.send_message(room, "after the snapshot")  # the socket reads on after it
    await present[0].wait_for_seq(room, ack["seq"], wait=timeout(10))
    for client in [*present, erin]:
        await client.close()


async def test_a_killed_process_stops_showing_its_users_online_within_the_ttl(
    daphne_factory: Callable[..., DaphneServer], tmp_path: Path, redis_url: str
) -> None:
    one, two = start_pair(daphne_factory, tmp_path, redis_url)
    room = new_name("presence")
    room = create_room(one.base_url, one.signup(new_name("keeper")), room)
    alice = await open_client(one, new_name("alice"))
    await alice.join(room)
    bob = await open_client(two, new_name("bob"))
    await bob.join(room)
    bob_id = (await alice.wait_for(lambda f: presence_of(f, "online"), wait=timeout(10)))["userId"]
    mark = len(alice.frames)
    two.stop(signal.SIGKILL)  # no close, no cleanup: only the expiry tells
    gone = await alice.wait_for(lambda f: presence_of(f, "offline"), after=mark, wait=timeout(30))
    assert gone["userId"] == bob_id
    await alice.close()


@pytest.mark.parametrize("store", ["sqlite", "dynamodb"])
async def test_presence_reaches_fellow_members_on_the_other_process_without_the_room_open(
    store: str,
    request: pytest.FixtureRequest,
    daphne_factory: Callable[..., DaphneServer],
    tmp_path: Path,
    redis_url: str,
) -> None:
    """alice (process one) and bob (process two) share a private room, neither with it open:
    bob's change reaches alice once, within 2 s; carol, who shares no room with bob, hears
    nothing of him."""
    from tests.e2e.test_people_multiprocess import _dynamodb_env

    env = _dynamodb_env(request.getfixturevalue("moto_server")) if store == "dynamodb" else {}
    one, two = start_pair(daphne_factory, tmp_path, redis_url, **env)
    alice_name, bob_name = new_name("alice"), new_name("bob")
    alice = await open_client(one, alice_name)
    bob = await open_client(two, bob_name)
    carol = await open_client(two, new_name("carol"))
    room = ""
    for frame in (
        {"action": "createRoom", "name": new_name("plans"), "private": True},
        {"action": "addMember", "username": bob_name},
    ):
        mark = len(alice.frames)
        await alice.send_json({**frame, "roomId": room} if room else frame)
        done = await alice.wait_for(lambda f: f["type"] in ("done", "error"), after=mark, wait=timeout(10))
        assert done["type"] == "done", done
        room = room or done["roomId"]  # the id the server drew for the new room
    await bob.wait_for(lambda f: f["type"] == "roomAdded", wait=timeout(10))

    marks = len(alice.frames), len(carol.frames)
    started = time.monotonic()
    await bob.send_json({"action": "presence", "status": "away"})
    away = await alice.wait_for(lambda f: presence_of(f, "away"), after=marks[0], wait=timeout(10))
    took = time.monotonic() - started
    bob_id = away["userId"]
    # The bound, 2 s across processes: measured at 0.05 s (SQLite) and 0.26 s (DynamoDB
    # on moto) with the machine's load average at 25.
    assert took < timeout(2.0), took
    for client in (alice, carol):
        mark = len(client.frames)
        await client.send_json({"action": "ping"})
        await client.wait_for(lambda f: f["type"] == "pong", after=mark, wait=timeout(10))
    assert [f["status"] for f in alice.frames[marks[0] :] if f["type"] == "presence" and f["userId"] == bob_id] == [
        "away"
    ]
    assert [f for f in carol.frames[marks[1] :] if f["type"] == "presence" and f["userId"] == bob_id] == []
    for client in (alice, bob, carol):
        await client.close()
