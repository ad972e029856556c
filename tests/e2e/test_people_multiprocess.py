"""People and rooms across two daphne processes sharing Redis: on the ORM backend (SQLite and
PostgreSQL) and on DynamoDB.

An invitation made on one process reaches the invitee's sockets on the other (and on the
same one) live; a removal takes the member's sockets there out of the room at once; a DM
opened by both of its people at the same moment, each on a different process, is one room.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chat.storage import schema
from chat.storage.dynamodb import ensure_tables, make_client
from tests.e2e.client import ChatClient, Frame
from tests.fixtures.aws import MotoServer
from tests.fixtures.servers import DaphneServer


def _dynamodb_env(moto: MotoServer) -> dict[str, str]:
    names = schema.TableNames.with_prefix(f"ppl-{uuid.uuid4().hex[:10]}-")
    with pytest.MonkeyPatch.context() as env:
        for key, value in moto.env.items():
            env.setenv(key, value)
        ensure_tables(make_client(region=moto.env["AWS_REGION"]), names, poll_seconds=0.05)
    return {
        **moto.env,
        "CHAT_STORAGE_BACKEND": "dynamodb",
        "DYNAMODB_CONNECTIONS_TABLE": names.connections,
        "DYNAMODB_MESSAGES_TABLE": names.messages,
        "DYNAMODB_ROOMS_TABLE": names.rooms,
    }


@pytest.fixture(params=["sqlite", "postgresql", "dynamodb"])
def cluster(
    request: pytest.FixtureRequest,
    daphne_factory: Callable[..., DaphneServer],
    redis_url: str,
    tmp_path: Path,
) -> Iterator[list[DaphneServer]]:
    """Two daphne processes on one Redis and one store (an SQLite file, PostgreSQL, or DynamoDB on moto)."""
    env = {}
    if request.param == "postgresql":
        env["DATABASE_URL"] = request.getfixturevalue("postgres_url")
    if request.param == "dynamodb":
        env.update(_dynamodb_env(request.getfixturevalue("moto_server")))
    yield two_processes(daphne_factory, redis_url=redis_url, tmp_path=tmp_path, name="people", **env)


def two_processes(
    daphne_factory: Callable[..., DaphneServer], *, redis_url: str, tmp_path: Path, name: str, **env: str
) -> list[DaphneServer]:
    """Two daphne processes on one Redis, one store (`env`) and one accounts database (an
    SQLite file both read, or `DATABASE_URL`): sign-ups and sessions work on either."""
    shared = tmp_path / "shared"
    shared.mkdir()
    return [
        daphne_factory(shared_dir=shared, CHAT_INSTANCE_ID=f"{name}-{i}", REDIS_URL=redis_url, **env) for i in range(2)
    ]


def _name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


async def _connect(server: DaphneServer, cookie: str) -> ChatClient:
    return await ChatClient.connect(server.ws_url, cookie=cookie, origin=server.origin)


def _room_frame(kind: str, room_id: str) -> Callable[[Frame], bool]:
    return lambda f: f["type"] == kind and (f.get("room") or {}).get("roomId", f.get("roomId")) == room_id


async def _ask(client: ChatClient, frame: dict[str, Any], *, answer: str = "done") -> Frame:
    """Send an action; its answer (or error), whatever per-user frames and room events come between."""
    mark = len(client.frames)
    await client.send_json(frame)
    return await client.wait_for(
        lambda f: f["type"] in (answer, "error") and f.get("action", frame["action"]) == frame["action"],
        after=mark,
    )


async def _join(client: ChatClient, room_id: str, *, last_seq: int | None = None) -> Frame:
    frame: dict[str, Any] = {"action": "joinRoom", "roomId": room_id}
    if last_seq is not None:
        frame["lastSeq"] = last_seq
    joined = await _ask(client, frame, answer="joined")
    assert joined["type"] == "joined", joined
    client.joined.add(room_id)
    return joined


async def test_an_invitation_reaches_every_socket_of_the_invitee_on_both_processes(cluster: list[DaphneServer]) -> None:
    """Invited on process one, bob's sockets on both processes see the room live; removed, they leave it at once."""
    one, two = cluster
    alice_name, bob_name = _name("alice"), _name("bob")
    alice_cookie, bob_cookie = one.signup(alice_name), two.signup(bob_name)
    alice = await _connect(one, alice_cookie)
    bob_there = await _connect(two, bob_cookie)
    bob_here = await _connect(one, bob_cookie)
    try:
        room_name = _name("Team ")
        created = await _ask(alice, {"action": "createRoom", "name": room_name, "private": True})
        assert created["type"] == "done", created
        room_id = created["roomId"]
        await _join(alice, room_id)
        invited = await _ask(alice, {"action": "addMember", "roomId": room_id, "username": bob_name})
        assert invited["type"] == "done", invited
        for socket in (bob_there, bob_here):
            added = await socket.wait_for(_room_frame("roomAdded", room_id))
            assert added["room"]["name"] == room_name and added["room"]["kind"] == "private"
        await _join(bob_there, room_id)
        sent = await alice.send_message(room_id, "welcome")
        assert sent["type"] == "ack"
        await bob_there.wait_for_seq(room_id, sent["seq"])

        removed = await _ask(alice, {"action": "removeMember", "roomId": room_id, "username": bob_name})
        assert removed["type"] == "done", removed
        left = await bob_there.wait_for(lambda f: f["type"] == "left" and f["roomId"] == room_id)
        assert left.get("reason") == "removed"
        await bob_here.wait_for(_room_frame("roomRemoved", room_id))
        refused = await _ask(bob_there, {"action": "joinRoom", "roomId": room_id}, answer="joined")
        assert refused["type"] == "error" and refused["code"] == "unknown_room", refused
    finally:
        for client in (alice, bob_there, bob_here):
            await client.close()


async def test_a_dm_opened_by_both_people_at_once_on_two_processes_is_one_room(cluster: list[DaphneServer]) -> None:
    """alice (process one) and bob (process two) open their DM at the same moment: one room, each a member once."""
    one, two = cluster
    alice_name, bob_name = _name("alice"), _name("bob")
    alice = await _connect(one, one.signup(alice_name))
    bob = await _connect(two, two.signup(bob_name))
    try:
        answers = await asyncio.gather(
            _ask(alice, {"action": "openDirect", "usernames": [bob_name]}),
            _ask(bob, {"action": "openDirect", "usernames": [alice_name]}),
        )
        assert [a["type"] for a in answers] == ["done", "done"], answers
        room_id = answers[0]["roomId"]
        assert answers[1]["roomId"] == room_id and room_id.startswith("dm-")
        joined = await _join(alice, room_id, last_seq=0)
        added = [e["userId"] for e in joined.get("events", []) if e["type"] == "memberAdded"]
        assert len(added) == len(set(added)) == 2
        members = await _ask(alice, {"action": "members", "roomId": room_id}, answer="members")
        assert sorted(m["username"] for m in members["members"]) == sorted([alice_name, bob_name])
        await _join(bob, room_id)
        sent = await alice.send_message(room_id, "hi")
        assert sent["type"] == "ack"
        message = await bob.wait_for(lambda f: f["type"] == "message" and f["roomId"] == room_id)
        assert message["message"] == "hi"
    finally:
        await alice.close()
        await bob.close()
