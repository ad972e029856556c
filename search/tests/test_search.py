"""User search end to end below the API: the index fed as chat.services feeds it, queried
through search.services, on SQLite (FTS5), PostgreSQL and with messages in DynamoDB.

Every access rule of issue 19 is one test here, run on the three: only rooms the user may
read, no removed, hidden or expired message, edits found by their current text.
"""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.identity import Identity
from chat import events
from chat.errors import ChatError, ErrorCode
from chat.storage import get_store
from chat.storage.base import DELETED, HIDDEN, MessageRecord, NewEvent, NewMessage
from search import engines, indexer, services
from search.engines import get_engine
from search.query import parse, words_of
from search.services import messages_search

DAY = 86_400
ALICE = Identity(user_id="u-alice", username="alice")
BOB = Identity(user_id="u-bob", username="Bob")
MOD = Identity(user_id="u-mod", username="mod", is_moderator=True)


def now() -> datetime:
    return datetime.now(UTC)


def room(room_id: str, *, private: bool = False, members: tuple[str, ...] = ()) -> None:
    store = get_store()
    store.ensure_room(room_id=room_id, name=room_id.title(), created_by=None, now=now())
    if private:
        store.update_room(room_id=room_id, private=True, now=now(), ttl_seconds=DAY)
    for user_id in members:
        store.add_member(room_id=room_id, user_id=user_id)


def post(
    room_id: str,
    text: str,
    *,
    who: Identity = ALICE,
    at: datetime | None = None,
    ttl: int = 365 * DAY,
    tell: bool = True,
) -> MessageRecord:
    """Store a message and tell the index, as chat.services' room_change does."""
    result = get_store().append_message(
        NewMessage(
            room_id=room_id,
            user_id=who.user_id,
            username=who.username,
            text=text,
            connection_id="c",
            client_message_id=None,
            timestamp=at or now(),
            ttl_seconds=ttl,
        )
    )
    if tell:
        indexer.notify([result.message])
    return result.message


def found(identity: Identity, q: str, **kwargs: Any) -> list[str]:
    return [r.message.text for r in messages_search(identity=identity, q=q, **kwargs).results]


def test_words_phrases_prefixes_case_and_accents(backend: str) -> None:
    """Words all match, phrases in order, the last word as a prefix, whatever the case and accents."""
    room("lobby")
    post("lobby", "Le café est ouvert")
    post("lobby", "the big red cat sat")
    post("lobby", "the red big cat")
    post("lobby", "Deployment notes for Friday")
    assert found(ALICE, "CAFE") == ["Le café est ouvert"]
    assert found(ALICE, "café ouv") == ["Le café est ouvert"]
    assert found(ALICE, '"big red"') == ["the big red cat sat"]
    assert sorted(found(ALICE, "red cat ")) == ["the big red cat sat", "the red big cat"]
    assert found(ALICE, "deploy") == ["Deployment notes for Friday"]
    assert found(ALICE, "nothing here") == []


def test_letters_that_case_folding_decomposes_are_found(backend: str) -> None:
    """Turkish İ and Greek ᾶ fold into a letter and a combining mark: typed as written, in
    capitals or without the mark, they still find their message."""
    room("lobby")
    post("lobby", "Meet me in İstanbul")
    post("lobby", "ᾶλφα and βῆτα")
    assert found(ALICE, "İstanbul") == ["Meet me in İstanbul"]
    assert found(ALICE, "ISTANBUL") == ["Meet me in İstanbul"]
    assert found(ALICE, "ᾶλφα") == ["ᾶλφα and βῆτα"]
    assert found(ALICE, "ᾶλ") == ["ᾶλφα and βῆτα"]


def test_relevance_first_then_recency(backend: str) -> None:
    """A message with the word more often ranks first; equal ones come newest first."""
    room("lobby")
    base = now() - timedelta(hours=1)
    post("lobby", "alpha one", at=base)
    post("lobby", "alpha alpha alpha, all alpha", at=base + timedelta(minutes=1))
    post("lobby", "alpha two", at=base + timedelta(minutes=2))
    assert found(ALICE, "alpha ") == ["alpha alpha alpha, all alpha", "alpha two", "alpha one"]


def test_filters_room_from_has_link_and_dates(backend: str) -> None:
    """room:, from:, has:link, before: and after: narrow the results."""
    room("lobby")
    room("dev")
    post("lobby", "release today https://example.com/notes", at=datetime(2026, 11, 10, 12, tzinfo=UTC))
    post("dev", "release candidate", who=BOB, at=datetime(2026, 11, 20, 12, tzinfo=UTC))
    assert found(ALICE, "release room:dev") == ["release candidate"]
    assert found(ALICE, "release from:bob") == ["release candidate"]
    assert found(ALICE, "has:link") == ["release today https://example.com/notes"]
    assert found(ALICE, "example.com") == ["release today https://example.com/notes"]
    assert found(ALICE, "release before:2026-11-15") == ["release today https://example.com/notes"]
    assert found(ALICE, "release after:2026-11-15") == ["release candidate"]
    assert found(ALICE, "release after:9999-12-31") == []
    assert found(ALICE, "release before:0001-01-01") == []


def test_pages_follow_the_cursor_without_repeats(backend: str) -> None:
    """Paging by cursor returns every match once, in order, then no cursor."""
    room("lobby")
    base = now() - timedelta(hours=1)
    for i in range(7):
        post("lobby", f"page item {i}" + " item" * (i % 3), at=base + timedelta(seconds=i))
    everything = found(ALICE, "item", limit=50)
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = messages_search(identity=ALICE, q="item", cursor=cursor, limit=3)
        seen += [r.message.text for r in page.results]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == everything and len(seen) == 7


def test_a_common_word_ranks_only_its_newest_matches(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past RANK_WINDOW matches, the page is the best of the newest RANK_WINDOW (counted after
    the rooms and filters): an older, more relevant message is left out; paging stays in it."""
    monkeypatch.setattr(engines, "RANK_WINDOW", 3)
    room("lobby")
    base = now() - timedelta(hours=1)
    for i in range(12):  # words other than beta: bm25 weighs a word found in most messages at nothing
        post("lobby", f"filler {i}", at=base - timedelta(minutes=i + 1))
    post("lobby", "beta beta beta", who=BOB, at=base)
    post("lobby", "beta one one", at=base + timedelta(minutes=1))
    post("lobby", "beta beta two", who=BOB, at=base + timedelta(minutes=2))
    post("lobby", "beta three three", at=base + timedelta(minutes=3))
    post("lobby", "beta four four", at=base + timedelta(minutes=4))
    assert found(ALICE, "beta") == ["beta beta two", "beta four four", "beta three three"]
    first = messages_search(identity=ALICE, q="beta", limit=2)
    assert first.next_cursor is not None
    rest = messages_search(identity=ALICE, q="beta", limit=2, cursor=first.next_cursor)
    assert [r.message.text for r in rest.results] == ["beta three three"] and rest.next_cursor is None
    # The window holds the newest matches of the whole query: from: narrows it first.
    assert found(ALICE, "beta from:bob") == ["beta beta beta", "beta beta two"]


def _long_text(seed: int, length: int = 4000) -> str:
    """A message of `length` characters (the longest a user may send) of distinct random
    words: the largest document its length makes."""
    rng = random.Random(seed)
    words: list[str] = []
    seen: set[str] = set()
    while sum(len(w) + 1 for w in words) < length:
        word = "".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 9)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return " ".join(words)[:length].rsplit(" ", 1)[0]


@pytest.mark.parametrize("plan", ["one-scan", "per-room"])
def test_the_longest_message_of_distinct_words_is_found(
    backend: str, monkeypatch: pytest.MonkeyPatch, plan: str
) -> None:
    """A message as long as a user may send, of distinct words, is found by a word, a prefix
    and a phrase, whichever plan PostgreSQL takes; the room's later messages are found too."""
    if backend == "dynamodb" and plan == "per-room":
        pytest.skip("the plan is PostgreSQL's: with DynamoDB the index is SQLite, run once")
    monkeypatch.setattr(engines, "PHRASE_CROSSOVER", 10**12 if plan == "one-scan" else 0)
    room("lobby")
    base = now() - timedelta(hours=1)
    text = _long_text(19)
    assert len(text) > 3990
    words = text.split()
    post("lobby", "a short one first", at=base)
    post("lobby", text, at=base + timedelta(minutes=1))
    post("lobby", "a short one after", at=base + timedelta(minutes=2))
    assert found(ALICE, words[400]) == [text]
    assert found(ALICE, f"{words[300]} {words[301][:3]}") == [text]
    with CaptureQueriesContext(connection) as queries:
        assert found(ALICE, f'"{words[200]} {words[201]} {words[202]}"') == [text]
    if backend == "postgresql":
        searched = [c["sql"] for c in queries.captured_queries if "ts_rank_cd" in c["sql"]]
        assert len(searched) == 1 and ("UNION ALL" in searched[0]) == (plan == "per-room")
    assert found(ALICE, f'"{words[201]} {words[200]}"') == []
    assert found(ALICE, "short") == ["a short one after", "a short one first"]


_PHRASE_TEXTS = [  # (room, text), oldest first: rows with both words but not the phrase are the newest
    ("lobby", "the red fox ran to its den"),
    # Long messages of varied words: documents too large for the per-room walk's index.
    ("lobby", f"{_long_text(23, 1800)} the red fox den {_long_text(24, 1800)}"),
    ("dev", "the red fox denied it"),
    ("dev", "red fox in dev"),
    ("secret", "the red fox secret den"),
    ("lobby", "red fox den"),
    ("dev", "the red fox"),
    ("lobby", "RED FOX! the red fox den again"),
    ("dev", f"{_long_text(25, 3000)} red fox, the den"),
    ("secret", "red fox secret"),
    ("lobby", "the red, fox den"),
    ("dev", "fox red den"),
    ("lobby", "a fox, red and blue"),
    ("lobby", "red then fox, the den"),
]


def _planner_settings() -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('jit'), current_setting('enable_bitmapscan')")
        jit, bitmapscan = cursor.fetchone()
    return jit, bitmapscan


def _phrase_in(phrase: list[str], text: str) -> bool:
    words = words_of(text)
    return any(words[i : i + len(phrase)] == phrase for i in range(len(words) - len(phrase) + 1))


@pytest.mark.parametrize(
    ("q", "tsquery"),
    [
        ('"red fox"', "red <-> fox"),
        ('"red fox" den', "red <-> fox & den:*"),
        ('"the red fox"', "the <-> red <-> fox"),
        ("fox de", "fox & de:*"),  # words and a prefix: the words choose the plan too
        ("fox red", "fox & red"),  # words alone
    ],
)
@pytest.mark.parametrize("plan", ["one-scan", "per-room"])
def test_a_phrase_finds_the_newest_phrase_matches_of_the_readable_rooms(
    backend: str, monkeypatch: pytest.MonkeyPatch, q: str, tsquery: str, plan: str
) -> None:
    """A phrase's window is the newest RANK_WINDOW entries with the phrase in the rooms
    asked, whichever plan PostgreSQL takes: on PostgreSQL the same hits and scores as the
    plain phrase query; on every engine the same entries as the phrase found word by word."""
    if backend == "dynamodb" and plan == "per-room":
        pytest.skip("the plan is PostgreSQL's: with DynamoDB the index is SQLite, run once")
    monkeypatch.setattr(engines, "RANK_WINDOW", 4)
    monkeypatch.setattr(engines, "PHRASE_CROSSOVER", 10**12 if plan == "one-scan" else 0)
    room("lobby")
    room("dev")
    room("secret", private=True, members=("u-bob",))
    base = now() - timedelta(hours=1)
    post("lobby", "red fox long gone", at=base - timedelta(days=2), ttl=DAY)  # expired
    ids = {}
    for i, (room_id, text) in enumerate(_PHRASE_TEXTS):
        ids[text] = post(room_id, text, who=BOB, at=base + timedelta(minutes=i)).message_id
    query = parse(q)
    rooms = ["lobby", "dev"]
    seen: list[tuple[str, str]] = []
    page = engines.PostgresEngine._page

    def recorded(self: engines.PostgresEngine, *args: Any, **kwargs: Any) -> list[engines.Hit]:
        seen.append(_planner_settings())
        return page(self, *args, **kwargs)

    monkeypatch.setattr(engines.PostgresEngine, "_page", recorded)
    with CaptureQueriesContext(connection) as queries:
        hits = get_engine().search(query, room_ids=rooms, now=int(now().timestamp()), limit=50, after=None)
    terms = [*query.words, query.prefix] if query.prefix else list(query.words)
    expected = [
        ids[text]
        for room_id, text in reversed(_PHRASE_TEXTS)
        if room_id in rooms
        and all(_phrase_in(list(p), text) for p in query.phrases)
        and all(t in words_of(text) or any(w.startswith(t) for w in words_of(text)) for t in terms)
    ][:4]
    assert len(expected) == 4  # the window cuts: older phrase matches are left out
    assert sorted(h.message_id for h in hits) == sorted(expected)
    # The next page, after the second hit's cursor, is the rest of the first one.
    first_settings = list(seen)
    rest = get_engine().search(query, room_ids=rooms, now=int(now().timestamp()), limit=50, after=hits[1].cursor())
    assert [h.message_id for h in rest] == [h.message_id for h in hits[2:]]
    if backend != "postgresql":
        return
    searched = [c["sql"] for c in queries.captured_queries if "ts_rank_cd" in c["sql"]]
    assert len(searched) == 1 and ("UNION ALL" in searched[0]) == (plan == "per-room")
    # Per room, the statement runs with bitmap scans off (each room read by its btree,
    # newest first) and without JIT; the settings are back for what follows.
    assert first_settings == [("off", "off") if plan == "per-room" else ("on", "on")]
    assert _planner_settings() == ("on", "on")
    with connection.cursor() as cursor:
        # The plain phrase query: its matches in the rooms, newest RANK_WINDOW, ranked.
        cursor.execute(
            "SELECT message_id, round(ts_rank_cd(document, q)::numeric, 6) AS score FROM ("
            " SELECT message_id, document, at_us, to_tsquery('chat_search', %s) AS q"
            " FROM search_searchentry WHERE document @@ to_tsquery('chat_search', %s)"
            " AND room_id IN ('lobby', 'dev') AND ttl > %s ORDER BY at_us DESC LIMIT 4"
            ") w ORDER BY score DESC, at_us DESC, message_id",
            [tsquery, tsquery, int(now().timestamp())],
        )
        plain = [(message_id, str(score)) for message_id, score in cursor.fetchall()]
    assert [(h.message_id, h.score) for h in hits] == plain


def test_a_room_made_private_after_the_room_list_was_read_shows_nothing(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page is checked against the store's room records: a room the engine was asked
    about but that is now private (a stale room list) contributes no result."""
    room("lobby")
    room("attic")
    post("attic", "gamma in the attic")
    post("lobby", "gamma in the lobby")
    stale = services.rooms_readable(identity=ALICE)
    get_store().update_room(room_id="attic", private=True, now=now(), ttl_seconds=DAY)
    monkeypatch.setattr(services, "rooms_readable", lambda identity: stale)
    assert found(ALICE, "gamma") == ["gamma in the lobby"]


def test_private_rooms_only_for_their_members(backend: str) -> None:
    """A private room's messages reach its members and moderators; to anyone else, room:
    answers as a room with no results."""
    room("lobby")
    room("secret", private=True, members=("u-bob",))
    post("secret", "the launch code is swordfish", who=BOB)
    post("lobby", "swordfish for dinner")
    assert found(ALICE, "swordfish") == ["swordfish for dinner"]
    assert found(ALICE, "swordfish room:secret") == []
    assert found(ALICE, "swordfish room:nowhere") == []
    assert sorted(found(BOB, "swordfish")) == ["swordfish for dinner", "the launch code is swordfish"]
    assert sorted(found(MOD, "swordfish")) == ["swordfish for dinner", "the launch code is swordfish"]


def test_a_member_who_left_finds_nothing_of_the_room(backend: str) -> None:
    """Removed from a private room, a user finds none of its messages, old ones included."""
    room("secret", private=True, members=("u-alice", "u-bob"))
    post("secret", "quarterly numbers attached", who=BOB)
    assert found(ALICE, "quarterly") == ["quarterly numbers attached"]
    get_store().remove_member(room_id="secret", user_id="u-alice")
    assert found(ALICE, "quarterly") == []


def test_removed_and_hidden_messages_never_appear(backend: str) -> None:
    """A hidden or deleted message leaves the results, even before the index hears of it."""
    room("lobby")
    hidden = post("lobby", "rude words here")
    deleted = post("lobby", "rude words again")
    store = get_store()
    result = store.remove_message(
        room_id="lobby",
        message_id=hidden.message_id,
        removal=HIDDEN,
        removed_by=events.BY_MODERATOR,
        now=now(),
        ttl_seconds=DAY,
    )
    assert result is not None and result.event is not None
    indexer.notify([result.event])
    assert found(ALICE, "rude") == ["rude words again"]
    # The store knows, the index does not yet: the store's truth decides.
    store.remove_message(
        room_id="lobby",
        message_id=deleted.message_id,
        removal=DELETED,
        removed_by=events.BY_MODERATOR,
        now=now(),
        ttl_seconds=DAY,
    )
    assert found(ALICE, "rude") == []
    assert found(MOD, "rude") == []


def test_expired_messages_never_appear(backend: str) -> None:
    """A message past its ttl is not found, purged or not."""
    room("lobby")
    post("lobby", "ephemeral thought", at=now() - timedelta(days=2), ttl=DAY)
    post("lobby", "lasting thought")
    assert found(ALICE, "thought") == ["lasting thought"]
    assert indexer.purge_expired() == 1


def test_an_edit_is_found_by_its_current_text_only(backend: str) -> None:
    """After a messageEdited event, the index holds the new text: the old words find nothing."""
    room("lobby")
    message = post("lobby", "meet at noon")
    event = get_store().append_event(
        NewEvent(
            room_id="lobby",
            type=events.MESSAGE_EDITED,
            data={"messageId": message.message_id, "message": "meet at three"},
            timestamp=now(),
            ttl_seconds=DAY,
        )
    )
    indexer.notify([event])
    engine = get_engine()
    texts = lambda q: [h.text for h in engine.search(parse(q), room_ids=["lobby"], now=0, limit=5, after=None)]  # noqa: E731
    assert texts("noon") == []
    assert texts("three") == ["meet at three"]


def test_a_message_the_index_missed_is_caught_up_by_the_next_write(backend: str) -> None:
    """An entry never told to the index (a crash, another process) is read from the store
    when the room's next write arrives: the index loses nothing."""
    room("lobby")
    post("lobby", "first lost message", tell=False)
    assert found(ALICE, "lost") == []
    assert indexer.lag().events_behind == 1
    post("lobby", "second message")
    assert found(ALICE, "lost") == ["first lost message"]
    assert indexer.lag().events_behind == 0


def test_reindex_rebuilds_from_the_store(backend: str) -> None:
    """`reindex_search --rebuild` makes the index again from the store; a plain run resumes."""
    room("lobby")
    room("dev")
    for i in range(5):
        post("lobby" if i % 2 else "dev", f"rebuild me {i}", tell=False)
    assert found(ALICE, "rebuild") == []
    call_command("reindex_search", "--page", "2", "--no-progress")
    assert len(found(ALICE, "rebuild")) == 5
    call_command("reindex_search", "--rebuild", "--no-progress")
    assert len(found(ALICE, "rebuild")) == 5
    assert indexer.lag().events_behind == 0


@pytest.mark.parametrize(
    "q", ["NEAR(a b)", "a*", "cat:", '"', "-", "(", "a OR b", "x AND NOT y", "&|!<->:*", "'; DROP TABLE x;--"]
)
def test_engine_syntax_never_reaches_an_engine(backend: str, q: str) -> None:
    """Engine operators in a query give results or invalid_query, never an engine error."""
    room("lobby")
    post("lobby", "a b near cat")
    try:
        messages_search(identity=ALICE, q=q)
    except ChatError as error:
        assert error.code == ErrorCode.INVALID_QUERY


_FUZZ = st.text(alphabet=st.sampled_from(list("ab cé\"*-():NEAR OR AND NOT^~|&!<>{}[]'+.,;_0日\u0301")), max_size=60)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=_FUZZ)
def test_fuzz_any_query_reaches_the_engines_without_an_engine_error(backend: str, q: str) -> None:
    """Whatever is typed, the search answers results or invalid_query: never an engine's syntax error."""
    if backend == "dynamodb":
        pytest.skip("the engines are SQL: the sqlite and postgresql runs cover them (moto adds only time)")
    room("lobby")
    if not get_store().messages_before(room_id="lobby", before_seq=None, limit=1, now=now()):
        post("lobby", "a b near cat café (x) not and or")
    try:
        messages_search(identity=ALICE, q=q)
    except ChatError as error:
        assert error.code == ErrorCode.INVALID_QUERY
