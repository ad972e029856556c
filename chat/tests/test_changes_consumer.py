# ruff: noqa: F811 - the fixtures imported below are parameters of the tests
"""Edits, deletions, reactions, replies and threads through the real routing (two users),
and the error code each kind of bad input gets. Fixtures and helpers: chat/tests/test_consumer.py."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from pytest_django.fixtures import Settings

from chat import message_changes, reactions
from chat.tests.test_consumer import (  # noqa: F401 - fixtures
    WAIT,
    Frame,
    alice,
    bob,
    connect,
    cookie_for,
    join,
    recv,
    room,
    send,
    stored,
    user_id,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


async def until(comm: WebsocketCommunicator, kind: str, **match: Any) -> Frame:
    """The next frame of this type (and these fields), skipping others; bounded by WAIT each."""
    async with asyncio.timeout(WAIT * 3):
        while True:
            frame = await recv(comm)
            if frame["type"] == kind and all(frame.get(k) == v for k, v in match.items()):
                return frame


async def act(comm: WebsocketCommunicator, action: str, **fields: Any) -> Frame:
    """Send a change and return its answer: `changed` or an error frame."""
    await comm.send_json_to({"action": action, **fields})
    async with asyncio.timeout(WAIT * 3):
        while True:
            frame = await recv(comm)
            if frame["type"] in {"changed", "error", "thread"} or (
                frame["type"] == "history" and ("aroundSeq" in frame or "afterSeq" in frame)
            ):
                return frame


async def test_an_edit_reaches_everyone_and_history_shows_it_edited(
    alice: WebsocketCommunicator, bob: WebsocketCommunicator
) -> None:
    """editMessage by the author: messageEdited to the room, the new text and editedAt in history."""
    await join(alice, "general")
    await join(bob, "general")
    ack = await send(alice, "general", "helo", "m1")
    await until(bob, "message", messageId=ack["messageId"])
    done = await act(
        alice, "editMessage", roomId="general", messageId=ack["messageId"], message="hello", clientMessageId="e1"
    )
    assert done["type"] == "changed" and done["seq"] == ack["seq"] + 1 and done["clientMessageId"] == "e1"
    edited = await until(bob, "messageEdited")
    assert (edited["messageId"], edited["message"], edited["seq"]) == (ack["messageId"], "hello", ack["seq"] + 1)
    assert edited["editedAt"].endswith("Z")
    await bob.send_json_to({"action": "history", "roomId": "general"})
    page = await until(bob, "history")
    assert page["messages"][-1]["message"] == "hello" and "editedAt" in page["messages"][-1]


async def test_a_retried_edit_is_applied_once(alice: WebsocketCommunicator) -> None:
    """The same clientMessageId again answers changed with no seq: nothing new happened."""
    await join(alice, "general")
    ack = await send(alice, "general", "one", "m1")
    first = await act(
        alice, "editMessage", roomId="general", messageId=ack["messageId"], message="two", clientMessageId="e1"
    )
    again = await act(
        alice, "editMessage", roomId="general", messageId=ack["messageId"], message="two", clientMessageId="e1"
    )
    assert first["seq"] is not None and again["seq"] is None


async def test_the_author_deletes_and_everyone_sees_a_tombstone_by_the_author(
    alice: WebsocketCommunicator, bob: WebsocketCommunicator
) -> None:
    """deleteMessage: messageRemoved with removedBy author; the text is gone from the store."""
    await join(alice, "general")
    await join(bob, "general")
    ack = await send(alice, "general", "oops", "m1")
    done = await act(alice, "deleteMessage", roomId="general", messageId=ack["messageId"], clientMessageId="d1")
    assert done["type"] == "changed"
    removed = await until(bob, "messageRemoved")
    assert (removed["messageId"], removed["removedBy"]) == (ack["messageId"], "author")
    rows = await stored("general")
    assert rows[-1].removed == "deleted" and rows[-1].text == ""
    await bob.send_json_to({"action": "history", "roomId": "general"})
    page = await until(bob, "history")
    assert page["messages"][-1]["removedBy"] == "author"  # a reload says who removed it
    again = await act(alice, "deleteMessage", roomId="general", messageId=ack["messageId"], clientMessageId="d1")
    assert again["type"] == "changed" and again["seq"] is None


async def test_reactions_reach_everyone_once(alice: WebsocketCommunicator, bob: WebsocketCommunicator) -> None:
    """addReaction twice is one reaction; removeReaction takes it away; each change is a reactions frame."""
    await join(alice, "general")
    await join(bob, "general")
    ack = await send(alice, "general", "vote", "m1")
    bob_id = await user_id("bob")
    done = await act(bob, "addReaction", roomId="general", messageId=ack["messageId"], emoji="👍🏽")
    assert done["type"] == "changed" and done["seq"] is not None
    frame = await until(alice, "reactions")
    assert frame["reactions"] == [{"emoji": "👍🏽", "count": 1, "userIds": [bob_id]}]
    twice = await act(bob, "addReaction", roomId="general", messageId=ack["messageId"], emoji="👍🏽")
    assert twice["seq"] is None
    gone = await act(bob, "removeReaction", roomId="general", messageId=ack["messageId"], emoji="👍🏽")
    assert gone["seq"] is not None
    frame = await until(alice, "reactions", seq=gone["seq"])
    assert frame["reactions"] == []


async def test_a_reply_quotes_its_original_and_the_thread_lists_replies(
    alice: WebsocketCommunicator, bob: WebsocketCommunicator
) -> None:
    """sendMessage with replyTo carries replyTo {messageId, username, excerpt}; thread lists it."""
    await join(alice, "general")
    await join(bob, "general")
    root = await send(alice, "general", "lunch at **noon**?", "m1")
    await bob.send_json_to(
        {
            "action": "sendMessage",
            "roomId": "general",
            "message": "yes",
            "clientMessageId": "r1",
            "replyTo": root["messageId"],
        }
    )
    reply = await until(alice, "message", clientMessageId="r1")
    assert reply["replyTo"] == {
        "messageId": root["messageId"],
        "seq": root["seq"],
        "username": "alice",
        "excerpt": "lunch at **noon**?",
        "replyCount": 1,
    }
    thread = await act(alice, "thread", roomId="general", messageId=root["messageId"])
    assert thread["type"] == "thread" and [m["message"] for m in thread["messages"]] == ["yes"]
    assert thread["root"]["replyCount"] == 1


async def test_a_reply_to_a_removed_original_shows_the_tombstone(
    alice: WebsocketCommunicator, bob: WebsocketCommunicator
) -> None:
    """After the original is deleted, history's quote is blank and says removed."""
    await join(alice, "general")
    root = await send(alice, "general", "secret", "m1")
    await send(alice, "general", "a reply", "m2", replyTo=root["messageId"])
    await act(alice, "deleteMessage", roomId="general", messageId=root["messageId"])
    await bob.send_json_to({"action": "history", "roomId": "general"})
    page = await until(bob, "history")
    quoted = page["messages"][-1]["replyTo"]
    assert quoted["excerpt"] == "" and quoted["removed"] is True
    assert "secret" not in str(page)


async def test_history_around_a_seq_centres_the_page(alice: WebsocketCommunicator) -> None:
    """history with aroundSeq returns messages on both sides of it, and says what lies beyond."""
    await join(alice, "general")
    acks = [await send(alice, "general", f"m{i}", f"c{i}") for i in range(10)]
    page = await act(alice, "history", roomId="general", aroundSeq=acks[4]["seq"], limit=4)
    assert [m["seq"] for m in page["messages"]] == [acks[i]["seq"] for i in (3, 4, 5, 6)]
    assert page["hasMore"] is True and page["hasNewer"] is True and page["aroundSeq"] == acks[4]["seq"]


async def test_history_after_a_seq_pages_upwards_to_the_live_end(
    storage_backend: str, alice: WebsocketCommunicator
) -> None:
    """history with afterSeq: the messages after it, oldest first, up to limit, and whether
    more follow; page after page, a client reaches the newest message with no hole (both backends)."""
    await join(alice, "general")
    acks = [await send(alice, "general", f"m{i}", f"c{i}") for i in range(7)]
    page = await act(alice, "history", roomId="general", afterSeq=acks[1]["seq"], limit=3)
    assert [m["message"] for m in page["messages"]] == ["m2", "m3", "m4"]
    assert (page["afterSeq"], page["hasMore"], page["hasNewer"]) == (acks[1]["seq"], True, True)
    last = await act(alice, "history", roomId="general", afterSeq=page["messages"][-1]["seq"], limit=3)
    assert [m["message"] for m in last["messages"]] == ["m5", "m6"] and last["hasNewer"] is False
    empty = await act(alice, "history", roomId="general", afterSeq=acks[-1]["seq"])
    assert (empty["messages"], empty["hasNewer"]) == ([], False)
    both = await act(alice, "history", roomId="general", afterSeq=1, beforeSeq=5)
    assert (both["type"], both["code"]) == ("error", "invalid_field")


async def test_resume_with_last_seq_replays_edits_deletions_and_reactions(
    alice: WebsocketCommunicator, bob: WebsocketCommunicator
) -> None:
    """A client that was away gets every change, in seq order, in the joined frame's events."""
    joined = await join(bob, "general")
    await join(alice, "general")
    first = await send(alice, "general", "one", "m1")
    second = await send(alice, "general", "two", "m2")
    seen = second["seq"]
    await act(alice, "editMessage", roomId="general", messageId=first["messageId"], message="one!")
    await act(alice, "deleteMessage", roomId="general", messageId=second["messageId"])
    await act(alice, "addReaction", roomId="general", messageId=first["messageId"], emoji="🎉")
    await bob.send_json_to({"action": "leaveRoom", "roomId": "general"})
    await until(bob, "left")
    resumed = await join(bob, "general", last_seq=seen)
    kinds = [e["type"] for e in resumed["events"]]
    assert kinds == ["messageEdited", "messageRemoved", "reactions"], resumed
    assert [e["seq"] for e in resumed["events"]] == [seen + 1, seen + 2, seen + 3]
    assert joined["lastSeq"] == 0


@pytest.mark.parametrize(
    ("name", "frame", "code"),
    [
        ("someone else's", {"action": "editMessage", "message": "x"}, "not_author"),
        ("someone else's delete", {"action": "deleteMessage"}, "not_author"),
        ("empty edit", {"action": "editMessage", "message": "  ", "mine": True}, "empty_message"),
        ("too long", {"action": "editMessage", "message": "x" * 5000, "mine": True}, "message_too_long"),
        ("multi emoji", {"action": "addReaction", "emoji": "👍👍"}, "invalid_emoji"),
        ("not an emoji", {"action": "addReaction", "emoji": "ok"}, "invalid_emoji"),
        (
            "unknown message",
            {"action": "editMessage", "message": "x", "messageId": "no-such-id", "mine": True},
            "unknown_message",
        ),
        ("other room", {"action": "addReaction", "emoji": "👍", "roomId": "lounge"}, "message_in_other_room"),
        (
            "reply other room",
            {"action": "sendMessage", "message": "x", "roomId": "lounge", "reply": True},
            "message_in_other_room",
        ),
    ],
)
async def test_bad_changes_get_their_own_code_and_change_nothing(
    alice: WebsocketCommunicator, bob: WebsocketCommunicator, room: str, name: str, frame: Frame, code: str
) -> None:
    """Each kind of bad change is refused with its code; the room's log does not move."""
    await join(alice, "general")
    target = await send(alice, "general", "original", "m1")
    before = len(await stored("general"))
    body = {k: v for k, v in frame.items() if k not in {"mine", "reply"}}
    body.setdefault("roomId", "general")
    if frame.get("reply"):
        body["replyTo"] = target["messageId"]
    else:
        body.setdefault("messageId", target["messageId"])
    answer = await act(alice if frame.get("mine") or frame.get("reply") else bob, body.pop("action"), **body)  # type: ignore[arg-type]
    assert answer["type"] == "error" and answer["code"] == code, answer
    assert len(await stored("general")) == before


async def test_removed_messages_and_closed_windows_refuse_edits(
    alice: WebsocketCommunicator, bob: WebsocketCommunicator, settings: Settings
) -> None:
    """A removed message takes no edit or reaction; past the window, no edit."""
    await join(alice, "general")
    ack = await send(alice, "general", "x", "m1")
    await act(alice, "deleteMessage", roomId="general", messageId=ack["messageId"])
    refused = await act(alice, "editMessage", roomId="general", messageId=ack["messageId"], message="y")
    assert refused["code"] == "message_removed"
    refused = await act(bob, "addReaction", roomId="general", messageId=ack["messageId"], emoji="👍")
    assert refused["code"] == "message_removed"
    settings.CHAT_EDIT_WINDOW_SECONDS = 1
    old = await send(alice, "general", "old", "m2")
    message = (await stored("general"))[-1]
    late = message_changes.edit_refusal(
        message=message,
        message_id=old["messageId"],
        room_id="general",
        user_id=message.user_id,
        now=message.timestamp + timedelta(seconds=2),
        window_seconds=1,
    )
    assert late is not None and late.code == "edit_window_closed"


def test_emoji_rule_takes_one_emoji_only() -> None:
    """One emoji with modifiers or joiners is one; text, two emoji, empty are not."""
    for good in ["👍", "👍🏽", "👨‍👩‍👧", "🇫🇷", "❤️"]:
        assert reactions.valid_emoji(good), good
    for bad in ["", "a", "👍👍", ":+1:", "👍 ", "<b>"]:
        assert not reactions.valid_emoji(bad), bad


def test_excerpt_is_one_line_and_bounded() -> None:
    """A quote is the original's start on one line, cut with an ellipsis."""
    assert message_changes.excerpt("a\nb  c") == "a b c"
    cut = message_changes.excerpt("x" * 300)
    assert len(cut) == message_changes.EXCERPT_CHARS and cut.endswith("…")
