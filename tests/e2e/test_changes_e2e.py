"""Edits, deletions and reactions across two daphne processes on Redis, on both storage
backends (the embedded SQLite one, DynamoDB on a moto server): a user who was away resumes
with lastSeq on the other process and gets every change, in seq order."""

from __future__ import annotations

import asyncio
import shutil
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from chat.storage import schema
from chat.tests.test_storage_contract import serial_moto  # noqa: F401 - a fixture
from tests.e2e.client import ChatClient, Frame, create_room, timeout
from tests.fixtures import warm
from tests.fixtures.servers import ROOT, DaphneServer, base_env, manage_shell

pytestmark = pytest.mark.timeout(180)


def dynamodb_env(request: pytest.FixtureRequest, tmp_path: Path, moto_fixture: str = "moto_server") -> dict[str, str]:
    moto = request.getfixturevalue(moto_fixture)
    names = schema.TableNames.with_prefix(f"changes-{uuid.uuid4().hex[:10]}-")
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
def serial_processes(
    request: pytest.FixtureRequest,
    daphne_factory: Callable[..., DaphneServer],
    migrated_db: Path,
    redis_url: str,
    tmp_path: Path,
) -> tuple[DaphneServer, DaphneServer]:
    """As `processes`, with DynamoDB on a moto server whose requests are atomic, as DynamoDB's
    are (moto's own TransactWriteItems are not under concurrent requests: FINDINGS.md)."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shutil.copy(migrated_db, shared / "db.sqlite3")
    env = {"REDIS_URL": redis_url}
    if request.param == "dynamodb":
        env |= dynamodb_env(request, tmp_path, "serial_moto")
    one = daphne_factory(shared_dir=shared, CHAT_INSTANCE_ID="react-0", **env)
    two = daphne_factory(shared_dir=shared, CHAT_INSTANCE_ID="react-1", **env)
    return one, two


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


REACTORS = 50  # 25 sockets on each process
SECOND_EMOJI_EVERY = 3  # users 0, 3, ..., 48 add a second emoji too


SESSIONS = """
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from accounts.views import SESSION_BACKEND
for name in {names!r}:
    user = get_user_model().objects.create_user(name)
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = SESSION_BACKEND
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    print("session", session.session_key)
"""


def signed_in_users(server: DaphneServer, count: int) -> list[str]:
    """`count` new users, each signed in (a session cookie), made in one manage.py shell:
    50 sign-ups through the form would hash 50 passwords, minutes on a busy machine."""
    names = [f"r{i}-{uuid.uuid4().hex[:6]}" for i in range(count)]
    done = manage_shell(server.env, SESSIONS.format(names=names))
    keys = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("session ")]
    assert len(keys) == count, done.stderr
    return [f"sessionid={key}" for key in keys]


async def react(client: ChatClient, room: str, message_id: str, emoji: str) -> Frame:
    """addReaction as a client does it: a retryable error (SQLite busy under 50 writers on two
    processes, a storage timeout) is sent again after its retryAfter, a bounded number of times."""
    frame = {"action": "addReaction", "roomId": room, "messageId": message_id, "emoji": emoji}
    for _ in range(10):
        mark = len(client.frames)
        await client.send_json(frame)
        # 75 writes at once queue at a moto server (one process): minutes, not the usual seconds.
        reply = await client.wait_for(lambda f: f["type"] in ("changed", "error"), after=mark, wait=timeout(120))
        if reply["type"] == "changed":
            return reply
        assert reply.get("retryable"), reply
        await asyncio.sleep(max(float(reply.get("retryAfter") or 0), 0.2))
    raise AssertionError(f"{emoji} not stored after 10 attempts")


@pytest.mark.timeout(480)
async def test_fifty_users_on_two_processes_reacting_to_one_message_at_once_lose_none(
    serial_processes: tuple[DaphneServer, DaphneServer],
) -> None:
    """50 users, half on each process, add 👍 to one message at the same moment (and every
    third a 🎉 after it): every socket gets every reactions event, in contiguous seqs, and
    ends with the counts history shows, 50 and 17, with user ids of those who reacted."""
    processes = serial_processes
    cookies = signed_in_users(processes[0], REACTORS)
    clients: list[ChatClient] = []
    try:
        for i, cookie in enumerate(cookies):
            server = processes[i % 2]
            clients.append(await ChatClient.connect(server.ws_url, cookie=cookie, origin=server.origin))
        mark = len(clients[0].frames)
        await clients[0].send_json({"action": "createRoom", "name": f"re-{uuid.uuid4().hex[:8]}"})
        made = await clients[0].wait_for(lambda f: f["type"] in ("done", "error"), after=mark)
        assert made["type"] == "done", made
        room = made["roomId"]
        await asyncio.gather(*(c.join(room) for c in clients))
        sent = await clients[0].send_message(room, "react to me")
        assert sent["type"] == "ack", sent
        await asyncio.gather(*(c.wait_for_seq(room, sent["seq"]) for c in clients))

        async def one_user(index: int) -> list[int]:
            seqs = [(await react(clients[index], room, sent["messageId"], "👍"))["seq"]]
            if index % SECOND_EMOJI_EVERY == 0:
                seqs.append((await react(clients[index], room, sent["messageId"], "🎉"))["seq"])
            return seqs

        own = await asyncio.gather(*(one_user(i) for i in range(REACTORS)))
        second = len(range(0, REACTORS, SECOND_EMOJI_EVERY))
        expected = list(range(sent["seq"] + 1, sent["seq"] + 1 + REACTORS + second))
        # seq null: a retry of a reaction an earlier attempt stored (its answer timed out) changed nothing.
        told = sorted(s for seqs in own for s in seqs if s is not None)
        assert len(set(told)) == len(told) and set(told) <= set(expected)

        await asyncio.gather(*(c.wait_for_seq(room, expected[-1], wait=timeout(120)) for c in clients))
        ids: set[str] = set()
        for index, client in enumerate(clients):
            events = {f["seq"]: f for f in client.frames if f["type"] == "reactions" and f["roomId"] == room}
            assert sorted(events) == expected, f"socket {index} missed reactions events"
            changes = {(e["change"]["userId"], e["change"]["emoji"], e["change"]["added"]) for e in events.values()}
            assert len(changes) == len(expected) and all(added for _, _, added in changes)  # one event per reaction
            mine = {events[s]["change"]["userId"] for s in own[index] if s is not None}
            assert len(mine) <= 1  # each of this user's events names them: the client's `me` is exact
            added = {user for user, emoji, _ in changes if emoji == "👍"}
            assert len(added) == REACTORS and mine <= added  # every adder is told, past the userIds cap
            ids = ids or added
            assert added == ids  # the same 50 on every socket
            final = {r["emoji"]: r for r in events[expected[-1]]["reactions"]}
            assert (final["👍"]["count"], final["🎉"]["count"]) == (REACTORS, second)
            for summary in final.values():
                assert len(set(summary["userIds"])) == len(summary["userIds"]) == min(summary["count"], 25)
        for client in clients:
            page = await client.history(room)
            (shown,) = [m for m in page["messages"] if m["messageId"] == sent["messageId"]]
            counts = {r["emoji"]: (r["count"], set(r["userIds"])) for r in shown["reactions"]}
            assert counts["👍"][0] == REACTORS and counts["🎉"][0] == second
            assert counts["👍"][1] <= ids and counts["🎉"][1] <= ids and len(counts["👍"][1]) == 25
    finally:
        await asyncio.gather(*(c.close() for c in clients))
