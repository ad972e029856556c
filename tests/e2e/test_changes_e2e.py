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


@pytest.mark.parametrize("backend", ["local", "dynamodb"])
async def test_resume_on_the_other_process_replays_every_edit_deletion_and_reaction(
    request: pytest.FixtureRequest,
    daphne_factory: Callable[..., DaphneServer],
    migrated_db: Path,
    redis_url: str,
    tmp_path: Path,
    backend: str,
) -> None:
    """Bob sees alice's changes live on process two, goes away, and resumes on process one with all of them."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shutil.copy(migrated_db, shared / "db.sqlite3")
    env = {"REDIS_URL": redis_url, **(dynamodb_env(request, tmp_path) if backend == "dynamodb" else {})}
    one = daphne_factory(shared_dir=shared, CHAT_INSTANCE_ID="changes-0", **env)
    two = daphne_factory(shared_dir=shared, CHAT_INSTANCE_ID="changes-1", **env)
    alice_cookie, bob_cookie = one.signup("alice"), two.signup("bob")
    room = f"ch-{uuid.uuid4().hex[:8]}"
    room = create_room(one.base_url, alice_cookie, room)
    alice = await ChatClient.connect(one.ws_url, cookie=alice_cookie, origin=one.origin)
    bob = await ChatClient.connect(two.ws_url, cookie=bob_cookie, origin=two.origin)
    try:
        await alice.join(room)
        await bob.join(room)
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
