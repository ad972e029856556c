"""Edits, deletions and reactions across two daphne processes on Redis, on both storage
backends (the embedded SQLite one, DynamoDB on a moto server): a user who was away resumes
with lastSeq on the other process and gets every change, in seq order."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from chat.storage import schema
from tests.e2e.client import ChatClient, Frame, create_room
from tests.fixtures.servers import ROOT, DaphneServer, base_env

pytestmark = pytest.mark.timeout(180)


def dynamodb_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    moto = request.getfixturevalue("moto_server")
    names = schema.TableNames.with_prefix(f"changes-{uuid.uuid4().hex[:10]}-")
    tables = {
        "DYNAMODB_CONNECTIONS_TABLE": names.connections,
        "DYNAMODB_MESSAGES_TABLE": names.messages,
        "DYNAMODB_ROOMS_TABLE": names.rooms,
    }
    subprocess.run(
        [sys.executable, "manage.py", "create_dynamodb_tables"],
        cwd=ROOT,
        env=base_env(tmp_path, **moto.env, **tables),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return {**moto.env, "CHAT_STORAGE_BACKEND": "dynamodb", **tables}


async def change(client: ChatClient, frame: Frame) -> Frame:
    """Send a change; its answer (room events of anyone may arrive around it)."""
    mark = len(client.frames)
    await client.send_json(frame)
    reply = await client.wait_for(lambda f: f["type"] in ("changed", "error"), after=mark)
    assert reply["type"] == "changed", reply
    return reply


@pytest.fixture(params=["local", "dynamodb"])
def processes(
    request: pytest.FixtureRequest,
    daphne_factory: Callable[..., DaphneServer],
    migrated_db: Path,
    redis_url: str,
    tmp_path: Path,
) -> tuple[DaphneServer, DaphneServer]:
    """Two daphne processes on one Redis and one store (the SQLite file, or DynamoDB on moto)."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shutil.copy(migrated_db, shared / "db.sqlite3")
    env = {"REDIS_URL": redis_url, **(dynamodb_env(request, tmp_path) if request.param == "dynamodb" else {})}
    one = daphne_factory(shared_dir=shared, CHAT_INSTANCE_ID="changes-0", **env)
    two = daphne_factory(shared_dir=shared, CHAT_INSTANCE_ID="changes-1", **env)
    return one, two


async def alice_and_bob(processes: tuple[DaphneServer, DaphneServer]) -> tuple[str, ChatClient, ChatClient, str]:
    """A new room; alice in it on process one, bob on process two (and bob's cookie, to come back)."""
    one, two = processes
    alice_cookie, bob_cookie = one.signup("alice"), two.signup("bob")
    room = f"ch-{uuid.uuid4().hex[:8]}"
    room = create_room(one.base_url, alice_cookie, room)
    alice = await ChatClient.connect(one.ws_url, cookie=alice_cookie, origin=one.origin)
    bob = await ChatClient.connect(two.ws_url, cookie=bob_cookie, origin=two.origin)
    await alice.join(room)
    await bob.join(room)
    return room, alice, bob, bob_cookie


async def test_resume_on_the_other_process_replays_every_edit_deletion_and_reaction(
    processes: tuple[DaphneServer, DaphneServer],
) -> None:
    """Bob sees alice's changes live on process two, goes away, and resumes on process one with all of them."""
    one, _ = processes
    room, alice, bob, bob_cookie = await alice_and_bob(processes)
    try:
        first = await alice.send_message(room, "helo")
        second = await alice.send_message(room, "to delete")
        edited = await change(
            alice, {"action": "editMessage", "roomId": room, "messageId": first["messageId"], "message": "hello"}
        )
        live = await bob.wait_for(lambda f: f["type"] == "messageEdited")
        assert (live["seq"], live["message"]) == (edited["seq"], "hello")
        seen = edited["seq"]
        await bob.close()

        await change(alice, {"action": "deleteMessage", "roomId": room, "messageId": second["messageId"]})
        await change(alice, {"action": "addReaction", "roomId": room, "messageId": first["messageId"], "emoji": "🎉"})
        await change(
            alice, {"action": "editMessage", "roomId": room, "messageId": first["messageId"], "message": "hello!"}
        )

        bob = await ChatClient.connect(one.ws_url, cookie=bob_cookie, origin=one.origin)
        resumed = await bob.join(room, last_seq=seen)
        assert resumed["recovered"] is True
        replay = resumed["events"]
        assert [e["type"] for e in replay] == ["messageRemoved", "reactions", "messageEdited"]
        assert [e["seq"] for e in replay] == [seen + 1, seen + 2, seen + 3]
        assert replay[0]["removedBy"] == "author" and replay[1]["reactions"][0]["emoji"] == "🎉"
        assert replay[2]["message"] == "hello!"
        page = await bob.history(room)
        texts = {m["messageId"]: m for m in page["messages"]}
        assert texts[first["messageId"]]["message"] == "hello!" and "editedAt" in texts[first["messageId"]]
        assert texts[second["messageId"]]["removed"] is True
    finally:
        await alice.close()
        await bob.close()


async def reply(client: ChatClient, room: str, text: str, reply_to: str) -> Frame:
    mark, cmid = len(client.frames), uuid.uuid4().hex
    frame = {"action": "sendMessage", "roomId": room, "message": text, "replyTo": reply_to}
    await client.send_json({**frame, "clientMessageId": cmid})
    ack = await client.wait_for(
        lambda f: f["type"] in ("ack", "error") and f.get("clientMessageId") == cmid, after=mark
    )
    assert ack["type"] == "ack", ack
    return ack


async def test_a_resume_brings_the_reply_counts_that_history_shows(
    processes: tuple[DaphneServer, DaphneServer],
) -> None:
    """Bob has the root with one reply, is away while two more come, and resumes on the
    other process: the replayed replies carry the root's count, the one history shows."""
    one, _ = processes
    room, alice, bob, bob_cookie = await alice_and_bob(processes)
    try:
        root = await alice.send_message(room, "lunch?")
        first = await reply(alice, room, "yes", root["messageId"])
        live = await bob.wait_for(lambda f: f["type"] == "message" and f["seq"] == first["seq"])
        assert live["replyTo"]["replyCount"] == 1
        await bob.close()

        await reply(alice, room, "me too", root["messageId"])
        await alice.send_message(room, "something else")
        await reply(alice, room, "and me", root["messageId"])

        bob = await ChatClient.connect(one.ws_url, cookie=bob_cookie, origin=one.origin)
        resumed = await bob.join(room, last_seq=first["seq"])
        assert resumed["recovered"] is True
        told = [e["replyTo"]["replyCount"] for e in resumed["events"] if e["type"] == "message" and "replyTo" in e]
        assert told == [2, 3]
        page = await bob.history(room)
        shown = {m["messageId"]: m for m in page["messages"]}
        assert shown[root["messageId"]]["replyCount"] == max(told)
        thread = await bob.request(
            {"action": "thread", "roomId": room, "messageId": root["messageId"]}, expect="thread"
        )
        assert [m["replyTo"]["replyCount"] for m in thread["messages"]] == [1, 2, 3]
    finally:
        await alice.close()
        await bob.close()
