"""Moderation from the chat itself (a moderator's message menu): moderateMessage and banUser
go through the same services and audit log as admin; anyone else is refused with `forbidden`.

Through the real ASGI routing and the in-memory layer, on both storage backends; the browser
tests (tests/e2e/test_moderation_menu.py) drive the same actions from both UIs.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from chat import protocol
from chat.moderation_models import AuditLog, Ban
from chat.protocol import BanUser, Limits, ModerateMessage, ProtocolError
from chat.tests import test_moderation as admin_side
from chat.tests.test_moderation import Connect, Frame, Sock, join, messages, send, user

connect = admin_side.connect  # the admin-side tests' fixtures: sockets through the real routing
mod = admin_side.mod

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

MESSAGE_ID = "3ff43218-0000-4000-8000-000000000001"
ANSWERS = frozenset({"moderated", "userBanned", "error"})


async def ask(sock: Sock, frame: Frame) -> Frame:
    """Send a moderation frame and return its answer (moderated, userBanned or an error)."""
    mark = len(sock.frames)
    await sock.comm.send_json_to(frame)
    return await sock.take(lambda f: f["type"] in ANSWERS, after=mark)


def audit() -> list[dict[str, Any]]:
    return list(AuditLog.objects.order_by("id").values("actor_username", "action", "room_id", "target", "reason"))


# --- the protocol, pure ----------------------------------------------------------------------


def parse(frame: Frame) -> protocol.Command:
    return protocol.parse_client_frame(json.dumps(frame), Limits())


def test_moderate_message_and_ban_user_parse_and_name_their_actions() -> None:
    """moderateMessage carries the room, message, removal and a trimmed reason; banUser a user, reason and duration."""
    hide = parse(
        {
            "action": "moderateMessage",
            "roomId": "general",
            "messageId": MESSAGE_ID,
            "removal": "hidden",
            "reason": " x ",
        }
    )
    assert hide == ModerateMessage(room_id="general", message_id=MESSAGE_ID, removal="hidden", reason="x")
    assert protocol.action_of(hide) == "moderateMessage"
    ban = parse({"action": "banUser", "userId": "17", "reason": "spam", "durationSeconds": 86400, "roomId": "general"})
    assert ban == BanUser(user_id="17", reason="spam", duration_seconds=86400, room_id="general", message_id=None)
    assert protocol.action_of(ban) == "banUser"


@pytest.mark.parametrize(
    "frame",
    [
        {"action": "moderateMessage", "roomId": "general", "messageId": MESSAGE_ID, "removal": "purged", "reason": "x"},
        {"action": "moderateMessage", "roomId": "general", "messageId": MESSAGE_ID, "removal": "hidden"},
        {"action": "moderateMessage", "roomId": "general", "messageId": MESSAGE_ID, "removal": "hidden", "reason": " "},
        {"action": "moderateMessage", "roomId": "general", "messageId": "cmid:x", "removal": "hidden", "reason": "x"},
        {"action": "banUser", "userId": "17", "reason": ""},
        {"action": "banUser", "userId": "17", "reason": "x" * 1001},
        {"action": "banUser", "userId": "17", "reason": "x", "durationSeconds": 0},
        {"action": "banUser", "reason": "x"},
    ],
)
def test_a_bad_moderation_frame_is_invalid_field(frame: Frame) -> None:
    """Not hidden/deleted, no reason, a bad message id or duration: invalid_field, naming the action."""
    with pytest.raises(ProtocolError) as refused:
        parse(frame)
    assert (refused.value.code.value, refused.value.action) == ("invalid_field", frame["action"])


def test_the_banned_frame_says_why_and_until_when() -> None:
    """A banned user's socket is told the reason and the end (null: until lifted) before its 4403."""
    assert protocol.banned_frame(reason="spam links", until=None) == {
        "type": "banned",
        "reason": "spam links",
        "until": None,
    }
    assert protocol.authenticated_frame(user_id="1", username="m", expires_at=None, moderator=True)["moderator"]


# --- through the socket ------------------------------------------------------------------------


async def test_a_moderator_hides_and_deletes_from_the_chat_live_and_audited(
    storage_backend: str, connect: Connect, mod: Any
) -> None:
    """moderateMessage removes the message for every joined socket (messageRemoved) and audits it as admin does."""
    moderator, bob = await connect(mod), await connect(await user("bob"))
    await join(moderator, "general")
    await join(bob, "general")
    first = await send(bob, "general", "buy pills", "b1")
    second = await send(bob, "general", "more pills", "b2")
    hide = {"action": "moderateMessage", "roomId": "general", "messageId": first["messageId"], "removal": "hidden"}

    answer = await ask(moderator, {**hide, "reason": "spam"})

    assert answer == {"type": "moderated", "roomId": "general", "messageId": first["messageId"], "removal": "hidden"}
    removed = await messages(bob, 1, "messageRemoved")
    assert (removed[0]["messageId"], removed[0]["removedBy"]) == (first["messageId"], "moderator")
    delete = {**hide, "messageId": second["messageId"], "removal": "deleted", "reason": "spam again"}
    assert (await ask(moderator, delete))["removal"] == "deleted"
    assert (await messages(bob, 1, "messageRemoved"))[0]["messageId"] == second["messageId"]
    history = await bob.request({"action": "history", "roomId": "general"})
    assert [(m["message"], m.get("removed")) for m in history["messages"]] == [("", True), ("", True)]
    assert await sync_to_async(audit)() == [
        {
            "actor_username": "mod",
            "action": "message_hide",
            "room_id": "general",
            "target": f"message:{first['messageId']}",
            "reason": "spam",
        },
        {
            "actor_username": "mod",
            "action": "message_delete",
            "room_id": "general",
            "target": f"message:{second['messageId']}",
            "reason": "spam again",
        },
    ]
    unknown = await ask(moderator, {**hide, "messageId": MESSAGE_ID, "reason": "x"})
    assert (unknown["code"], unknown["action"], unknown["roomId"]) == ("unknown_message", "moderateMessage", "general")


async def test_a_moderator_bans_from_the_chat_and_the_user_is_told_why(
    storage_backend: str, connect: Connect, mod: Any
) -> None:
    """banUser: the moderator gets userBanned; each of the user's sockets gets `banned` with the reason, then 4403."""
    bob_user = await user("bob")
    moderator, bob, bob_again = await connect(mod), await connect(bob_user), await connect(bob_user)
    ack = await send(bob, "general", "threats", "b1")
    ban = {
        "action": "banUser",
        "userId": str(bob_user.pk),
        "reason": "threatening other users",
        "roomId": "general",
        "messageId": ack["messageId"],
    }

    answer = await ask(moderator, ban)

    assert answer == {"type": "userBanned", "userId": str(bob_user.pk), "username": "bob", "until": None}
    for sock in (bob, bob_again):
        notice = await sock.take(lambda f: f["type"] == "banned")
        assert notice == {"type": "banned", "reason": "threatening other users", "until": None}
        assert await sock.closed() == 4403
    later = await connect(bob_user)  # a reload: told again, then refused
    assert await later.take(lambda f: f["type"] == "banned") == notice
    assert await later.closed() == 4403
    entries = await sync_to_async(
        lambda: list(
            AuditLog.objects.filter(action="user_ban").values("actor_username", "room_id", "reason", "details")
        )
    )()
    assert entries == [
        {
            "actor_username": "mod",
            "room_id": "general",
            "reason": "threatening other users",
            "details": {"until": None, "via": "chat", "message": f"message:{ack['messageId']}"},
        }
    ]
    timed = await ask(moderator, {**ban, "userId": str((await user("carol")).pk), "durationSeconds": 3600})
    assert timed["type"] == "userBanned" and timed["until"] is not None
    self_ban = await ask(moderator, {**ban, "userId": str(mod.pk)})
    assert (self_ban["code"], self_ban["action"]) == ("invalid_field", "banUser")
    nobody = await ask(moderator, {**ban, "userId": "999999"})
    assert nobody["code"] == "unknown_user"


@pytest.mark.parametrize("who", ["user", "staff without moderator rights"])
async def test_anyone_but_a_moderator_is_refused_with_forbidden(connect: Connect, who: str) -> None:
    """moderateMessage and banUser from a non-moderator are `forbidden`: nothing removed, banned or audited."""
    alice = await connect(await user("alice", staff=who != "user"))
    bob_user = await user("bob")
    bob = await connect(bob_user)
    await join(bob, "general")
    ack = await send(bob, "general", "hello", "b1")
    hide = {
        "action": "moderateMessage",
        "roomId": "general",
        "messageId": ack["messageId"],
        "removal": "deleted",
        "reason": "x",
    }

    refused = [
        await ask(alice, hide),
        await ask(alice, {"action": "banUser", "userId": str(bob_user.pk), "reason": "x"}),
    ]

    assert [(f["type"], f["code"], f["action"]) for f in refused] == [
        ("error", "forbidden", "moderateMessage"),
        ("error", "forbidden", "banUser"),
    ]
    assert all(
        not f.get("removed") for f in (await bob.request({"action": "history", "roomId": "general"}))["messages"]
    )
    assert [f for f in await bob.quiet() if f["type"] == "messageRemoved"] == []
    assert await sync_to_async(lambda: (Ban.objects.count(), AuditLog.objects.count()))() == (0, 0)
