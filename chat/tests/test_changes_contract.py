# ruff: noqa: F811 - the fixtures imported below are parameters of the tests
"""The storage contract of the changes people make to messages (edits, reactions, replies),
on both backends: local (SQLite, PostgreSQL) and DynamoDB on moto. The fixtures are the
contract suite's (chat/tests/test_storage_contract.py)."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta

import pytest
from django.db import OperationalError, connections

from chat import events
from chat.records import ReplyRef
from chat.storage.base import ChatStore, EventRecord, MessageRecord
from chat.tests.test_storage_contract import (  # noqa: F401 - fixtures
    NOW,
    REMOVAL,
    in_threads,
    lobby,
    new_message,
    serial_dynamodb,
    serial_moto,
    store,
    threaded_store,
)

pytestmark = pytest.mark.django_db

LATER = NOW + timedelta(minutes=1)


def edit(store: ChatStore, message_id: str, text: str, cmid: str | None = None):  # type: ignore[no-untyped-def]
    return store.edit_message(
        room_id="lobby", message_id=message_id, text=text, client_message_id=cmid, now=LATER, ttl_seconds=86_400
    )


def react(store: ChatStore, message_id: str, user: str, emoji: str, *, add: bool = True, limit: int = 20):  # type: ignore[no-untyped-def]
    return store.change_reaction(
        room_id="lobby",
        message_id=message_id,
        user_id=user,
        emoji=emoji,
        add=add,
        max_distinct=limit,
        now=LATER,
        ttl_seconds=86_400,
    )


def test_an_edit_replaces_the_text_keeps_the_old_one_and_takes_the_next_seq(lobby: ChatStore) -> None:
    """An edit is a messageEdited event at the room's next seq; reads show the new text and when."""
    first = lobby.append_message(new_message("helo")).message
    result = edit(lobby, first.message_id, "hello", "e1")
    assert result is not None and result.event is not None
    assert result.event.seq == 2 and result.event.type == events.MESSAGE_EDITED
    assert result.event.data["message"] == "hello" and result.event.data["messageId"] == first.message_id
    stored = lobby.get_message(room_id="lobby", message_id=first.message_id, now=NOW)
    assert stored is not None and stored.text == "hello" and stored.seq == 1
    assert stored.edited_at == LATER
    assert [v.text for v in stored.edits] == ["helo"]
    log = lobby.events_after(room_id="lobby", after_seq=0, limit=10, now=NOW)
    assert [e.seq for e in log] == [1, 2]
    room = lobby.get_room("lobby")
    assert room is not None and room.last_seq == 2


def test_an_edit_retried_with_its_client_message_id_is_applied_once(lobby: ChatStore) -> None:
    """The same clientMessageId (or the same text) again stores no event and keeps the text."""
    first = lobby.append_message(new_message("one")).message
    assert edit(lobby, first.message_id, "two", "e1").event is not None  # type: ignore[union-attr]
    assert edit(lobby, first.message_id, "three", "e2").event is not None  # type: ignore[union-attr]
    again = edit(lobby, first.message_id, "two", "e1")
    assert again is not None and again.event is None and again.message.text == "three"
    same = edit(lobby, first.message_id, "three", "e3")
    assert same is not None and same.event is None
    room = lobby.get_room("lobby")
    assert room is not None and room.last_seq == 3


def test_a_removed_or_unknown_message_takes_no_edit_or_reaction(lobby: ChatStore) -> None:
    """Tombstones and unknown ids answer None and store nothing."""
    first = lobby.append_message(new_message("x")).message
    lobby.remove_message(room_id="lobby", message_id=first.message_id, removal="hidden", **REMOVAL)
    assert edit(lobby, first.message_id, "y") is None
    assert react(lobby, first.message_id, "u-bob", "👍") is None
    assert edit(lobby, "no-such-id", "y") is None
    room = lobby.get_room("lobby")
    assert room is not None and room.last_seq == 2


def test_removing_an_edited_message_blanks_its_edit_events_and_deleting_erases_its_versions(lobby: ChatStore) -> None:
    """A replay after a removal never carries the removed text, not even in an old edit."""
    first = lobby.append_message(new_message("secret")).message
    edit(lobby, first.message_id, "secret 2", "e1")
    lobby.remove_message(room_id="lobby", message_id=first.message_id, removal="deleted", **REMOVAL)
    log = lobby.events_after(room_id="lobby", after_seq=0, limit=10, now=NOW)
    edited = [e for e in log if isinstance(e, EventRecord) and e.type == events.MESSAGE_EDITED]
    assert len(edited) == 1 and edited[0].data["message"] == ""
    stored = lobby.get_message(room_id="lobby", message_id=first.message_id, now=NOW)
    assert stored is not None and stored.text == "" and stored.edits == ()
    assert stored.removed_by == events.BY_MODERATOR  # who removed it, for every later read


def test_reactions_add_once_remove_and_summarise(lobby: ChatStore) -> None:
    """Each change is a reactions event with the whole summary; adding twice changes nothing."""
    first = lobby.append_message(new_message("hi")).message
    one = react(lobby, first.message_id, "u-bob", "👍")
    assert one is not None and one.event is not None and one.event.type == events.REACTIONS
    assert one.event.data["reactions"] == [{"emoji": "👍", "count": 1, "userIds": ["u-bob"]}]
    assert one.event.data["change"] == {"userId": "u-bob", "emoji": "👍", "added": True}
    twice = react(lobby, first.message_id, "u-bob", "👍")
    assert twice is not None and twice.event is None
    react(lobby, first.message_id, "u-carol", "👍")
    react(lobby, first.message_id, "u-carol", "🎉")
    gone = react(lobby, first.message_id, "u-bob", "👍", add=False)
    assert gone is not None and gone.event is not None
    assert gone.event.data["reactions"] == [  # by emoji: 🎉 (U+1F389) before 👍 (U+1F44D)
        {"emoji": "🎉", "count": 1, "userIds": ["u-carol"]},
        {"emoji": "👍", "count": 1, "userIds": ["u-carol"]},
    ]
    absent = react(lobby, first.message_id, "u-bob", "👍", add=False)
    assert absent is not None and absent.event is None
    stored = lobby.get_message(room_id="lobby", message_id=first.message_id, now=NOW)
    assert stored is not None and dict(stored.reactions) == {"👍": ("u-carol",), "🎉": ("u-carol",)}


def test_a_new_emoji_past_the_limit_is_refused_without_an_event(lobby: ChatStore) -> None:
    """At most max_distinct different emoji; more people on an existing one is fine."""
    first = lobby.append_message(new_message("hi")).message
    react(lobby, first.message_id, "u-a", "👍", limit=2)
    react(lobby, first.message_id, "u-a", "🎉", limit=2)
    refused = react(lobby, first.message_id, "u-a", "😀", limit=2)
    assert refused is not None and refused.event is None and "😀" not in dict(refused.message.reactions)
    more = react(lobby, first.message_id, "u-b", "🎉", limit=2)
    assert more is not None and more.event is not None


def test_concurrent_reactions_from_fifty_users_lose_none(threaded_store: ChatStore) -> None:
    """50 users react to one message at once: 50 events, contiguous seqs, count 50."""
    threaded_store.ensure_room(room_id="lobby", name="Lobby", created_by=None, now=NOW)
    first = threaded_store.append_message(new_message("react to me")).message
    users = 50

    def one(index: int) -> int | None:
        # As a client does with storage_unavailable: SQLite serialises 50 writers, and on a
        # busy machine one may wait past the busy timeout (DATABASE_LOCK_TIMEOUT) and retry.
        for attempt in range(10):
            try:
                result = react(threaded_store, first.message_id, f"u-{index}", "👍")
            except OperationalError:
                connections.close_all()
                time.sleep(0.05 * (attempt + 1))
                continue
            return None if result is None or result.event is None else result.event.seq
        raise AssertionError(f"user {index}: no reaction stored after 10 attempts")

    seqs = in_threads(users, one)
    assert sorted(s for s in seqs if s is not None) == list(range(2, users + 2))
    stored = threaded_store.get_message(room_id="lobby", message_id=first.message_id, now=NOW)
    assert stored is not None and len(dict(stored.reactions)["👍"]) == users
    log = threaded_store.events_after(room_id="lobby", after_seq=1, limit=users + 5, now=NOW)
    last = log[-1]
    assert isinstance(last, EventRecord) and last.data["reactions"][0]["count"] == users


def test_a_reply_quotes_its_original_counts_in_its_thread_and_loses_the_quote_on_removal(lobby: ChatStore) -> None:
    """replies() lists a thread in order; the original's replyCount follows; a removal blanks quotes."""
    root = lobby.append_message(new_message("question")).message
    quote = ReplyRef(message_id=root.message_id, seq=root.seq, username="alice", excerpt="question")
    lobby.append_message(new_message("other"))
    first = lobby.append_message(replace(new_message("answer 1", user_id="u-bob"), reply_to=quote)).message
    second = lobby.append_message(replace(new_message("answer 2", user_id="u-carol"), reply_to=quote)).message
    assert first.reply_to == replace(quote, number=1)
    thread = lobby.replies(room_id="lobby", message_id=root.message_id, limit=10, now=NOW)
    assert [m.message_id for m in thread] == [first.message_id, second.message_id]
    stored = lobby.get_message(room_id="lobby", message_id=root.message_id, now=NOW)
    assert stored is not None and stored.reply_count == 2
    lobby.remove_message(room_id="lobby", message_id=root.message_id, removal="hidden", **REMOVAL)
    after = lobby.messages_after(room_id="lobby", after_seq=0, limit=10, now=NOW)
    replies = [m for m in after if m.reply_to is not None]
    assert replies and all(m.reply_to.excerpt == "" and m.reply_to.removed for m in replies)  # type: ignore[union-attr]


def test_each_reply_carries_its_originals_count_with_it(lobby: ChatStore) -> None:
    """The nth reply says n (the original's replyCount with it), stored and replayed; a retried
    reply (same clientMessageId) is neither counted nor numbered twice."""
    root = lobby.append_message(new_message("question")).message
    quote = ReplyRef(message_id=root.message_id, seq=root.seq, username="alice", excerpt="question")
    numbers = []
    for n in range(3):
        reply = replace(new_message(f"answer {n}", user_id="u-bob", client_message_id=f"r{n}"), reply_to=quote)
        numbers.append(lobby.append_message(reply).message.reply_to.number)  # type: ignore[union-attr]
        lobby.append_message(new_message(f"chatter {n}"))
    again = lobby.append_message(
        replace(new_message("answer 2", user_id="u-bob", client_message_id="r2"), reply_to=quote)
    )
    assert numbers == [1, 2, 3] and not again.created and again.message.reply_to.number == 3  # type: ignore[union-attr]
    log = lobby.events_after(room_id="lobby", after_seq=root.seq, limit=20, now=NOW)
    assert [e.reply_to.number for e in log if isinstance(e, MessageRecord) and e.reply_to] == [1, 2, 3]
    stored = lobby.get_message(room_id="lobby", message_id=root.message_id, now=NOW)
    assert stored is not None and stored.reply_count == 3


def test_concurrent_replies_are_numbered_one_to_n(threaded_store: ChatStore) -> None:
    """Ten users answer one message at once: numbers 1..10, each once, and replyCount 10."""
    threaded_store.ensure_room(room_id="lobby", name="Lobby", created_by=None, now=NOW)
    root = threaded_store.append_message(new_message("question")).message
    quote = ReplyRef(message_id=root.message_id, seq=root.seq, username="alice", excerpt="question")
    users = 10

    def one(index: int) -> int:
        for attempt in range(10):  # a busy SQLite file may time a writer out: retry as a client does
            try:
                reply = replace(new_message(f"answer {index}", user_id=f"u-{index}"), reply_to=quote)
                return threaded_store.append_message(reply).message.reply_to.number  # type: ignore[union-attr]
            except OperationalError:
                connections.close_all()
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError(f"user {index}: no reply stored after 10 attempts")

    assert sorted(in_threads(users, one)) == list(range(1, users + 1))
    stored = threaded_store.get_message(room_id="lobby", message_id=root.message_id, now=NOW)
    assert stored is not None and stored.reply_count == users


def test_find_message_reads_any_room_by_id(lobby: ChatStore) -> None:
    """find_message tells a message of another room from one that does not exist."""
    lobby.ensure_room(room_id="other", name="Other", created_by=None, now=NOW)
    there = lobby.append_message(new_message("x", room_id="other")).message
    found = lobby.find_message(message_id=there.message_id, now=NOW)
    assert isinstance(found, MessageRecord) and found.room_id == "other"
    assert lobby.find_message(message_id="missing", now=NOW) is None
