"""Read state across processes: two tabs of one user on two daphne processes (one Redis),
on SQLite, PostgreSQL and DynamoDB. A markRead on one process reaches the other tab as a
readState; mentions count for the mentioned user wherever their socket is."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from chat.storage import schema
from tests.e2e.client import ChatClient, create_room
from tests.fixtures import warm
from tests.fixtures.servers import ROOT, DaphneServer, base_env

pytestmark = pytest.mark.timeout(240)


def backend_env(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> dict[str, str]:
    if backend == "postgresql":
        return {"DATABASE_URL": request.getfixturevalue("postgres_url")}
    if backend == "sqlite":
        return {}
    moto = request.getfixturevalue("moto_server")
    names = schema.TableNames.with_prefix(f"e2e-{uuid.uuid4().hex[:10]}-")
    tables = {
        "DYNAMODB_CONNECTIONS_TABLE": names.connections,
        "DYNAMODB_MESSAGES_TABLE": names.messages,
        "DYNAMODB_ROOMS_TABLE": names.rooms,
    }
    warm.run(
        [sys.executable, "manage.py", "create_dynamodb_tables"],
        cwd=ROOT,
        env=base_env(tmp_path, **moto.env, **tables),
        capture_output=True,
        timeout=120,
        check=True,
    )
    return {**moto.env, "CHAT_STORAGE_BACKEND": "dynamodb", **tables}


TwoProcesses = Callable[[str, str], tuple[DaphneServer, DaphneServer]]


@pytest.fixture
def two_processes(
    request: pytest.FixtureRequest, daphne_factory: Callable[..., DaphneServer], redis_url: str, tmp_path: Path
) -> TwoProcesses:
    """`two_processes(backend, name)`: two daphne processes on one Redis and one store."""

    def start(backend: str, name: str) -> tuple[DaphneServer, DaphneServer]:
        shared = tmp_path / "shared"
        shared.mkdir()
        env = {"REDIS_URL": redis_url, **backend_env(request, backend, tmp_path)}
        one = daphne_factory(shared_dir=shared, CHAT_INSTANCE_ID=f"{name}-0", **env)
        return one, daphne_factory(shared_dir=shared, CHAT_INSTANCE_ID=f"{name}-1", **env)

    return start


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "dynamodb"])
async def test_read_state_follows_the_user_across_processes(two_processes: TwoProcesses, backend: str) -> None:
    """Tab 1 on process one marks read; tab 2 on process two gets the readState; a mention
    from process two counts at once for the user's tab on process one."""
    one, two = two_processes(backend, "unread")
    alice_name, bob_name = f"alice{uuid.uuid4().hex[:6]}", f"bob{uuid.uuid4().hex[:6]}"
    alice, bob = one.signup(alice_name), two.signup(bob_name)
    room = f"un-{uuid.uuid4().hex[:8]}"
    room = create_room(one.base_url, bob, room)
    tab1 = await ChatClient.connect(one.ws_url, cookie=alice, origin=one.origin)
    tab2 = await ChatClient.connect(two.ws_url, cookie=alice, origin=two.origin)
    writer = await ChatClient.connect(two.ws_url, cookie=bob, origin=two.origin)
    try:
        await writer.join(room)
        for n in range(3):
            await writer.send_message(room, f"note {n}")
        mention = await writer.send_message(room, f"@{alice_name} please look")
        seq = mention["seq"]
        # The mention counts at once on tab 1 (another process, a room it has not joined).
        live = await tab1.wait_for(lambda f: f["type"] == "readState" and f["roomId"] == room)
        assert (live["unread"], live["mentions"]) == (4, 1)
        mark = len(tab2.frames)
        answer = await tab1.request({"action": "markRead", "roomId": room, "seq": seq - 1}, expect="readState")
        assert (answer["lastReadSeq"], answer["unread"], answer["mentions"]) == (seq - 1, 1, 1)
        other = await tab2.wait_for(lambda f: f["type"] == "readState" and f.get("lastReadSeq") == seq - 1, after=mark)
        assert other == answer
        states = await tab2.request({"action": "readStates", "roomIds": [room]}, expect="readStates")
        assert states["rooms"] == [answer]
    finally:
        for client in (tab1, tab2, writer):
            await client.close()


@pytest.mark.parametrize("backend", ["sqlite", "dynamodb"])
async def test_here_and_room_in_a_public_room_across_processes(two_processes: TwoProcesses, backend: str) -> None:
    """The owner writes on process two: @here mentions Alice, reading the room on process one
    (no member); @room also Carol, a member who is away; Dan, online in no room of it, neither."""
    one, two = two_processes(backend, "here")
    tag = uuid.uuid4().hex[:6]
    bob, alice, carol, dan = (two.signup(f"{name}{tag}") for name in ("bob", "alice", "carol", "dan"))
    room = create_room(two.base_url, bob, f"here-{tag}")
    joiner = await ChatClient.connect(one.ws_url, cookie=carol, origin=one.origin)
    await joiner.send_json({"action": "addMember", "roomId": room})
    await joiner.wait_for(lambda f: f["type"] == "done" and f.get("action") == "addMember")
    await joiner.close()  # Carol is a member, and away
    reader = await ChatClient.connect(one.ws_url, cookie=alice, origin=one.origin)
    elsewhere = await ChatClient.connect(one.ws_url, cookie=dan, origin=one.origin)
    owner = await ChatClient.connect(two.ws_url, cookie=bob, origin=two.origin)
    try:
        await reader.join(room)
        await elsewhere.ping()
        await owner.join(room)
        hello = await reader.send_message(room, "hello")  # Alice's user id, from her message
        said = await owner.wait_for(lambda f: f["type"] == "message" and f.get("seq") == hello["seq"])
        alice_id = str(said["userId"])
        members = await owner.request({"action": "members", "roomId": room}, expect="members")
        carol_id = next(str(m["userId"]) for m in members["members"] if m["username"].startswith("carol"))
        mentioned = []
        for text in ("@here standup", "@room release at five"):
            seq = (await owner.send_message(room, text))["seq"]
            frame = await reader.wait_for(lambda f: f["type"] == "message" and f.get("seq") == seq)  # noqa: B023
            mentioned.append(frame.get("mentions"))
        assert mentioned == [[alice_id], sorted([alice_id, carol_id])]  # Dan in neither
    finally:
        for client in (reader, elsewhere, owner):
            await client.close()
