"""The query language: what a user types becomes words, phrases, a prefix and filters, or
a reason it cannot be read. Pure: no database."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from search.query import MAX_QUERY_CHARS, Query, QueryError, parse, words_of
from search.snippets import snippet


def test_words_are_case_folded_and_the_last_is_a_prefix() -> None:
    """Every word must match; the last bare word matches as a prefix (search as you type)."""
    assert parse("Hello Wor") == Query(words=("hello",), prefix="wor")


def test_a_letter_that_folds_into_a_mark_stays_one_word() -> None:
    """Folding decomposes ᾶ (alpha and a combining mark) and İ (i and a combining dot): the term
    is composed again, or loses the mark, and is never split at it."""
    assert parse("ᾶλλο İSTANBUL x") == Query(words=("ᾶλλο", "istanbul", "x"))


def test_a_query_ending_in_a_space_or_a_short_word_has_no_prefix() -> None:
    """A one-letter last word is a whole word, not a prefix of most of the index."""
    assert parse("hello x") == Query(words=("hello", "x"))
    assert parse('hello "big cat"') == Query(words=("hello",), phrases=(("big", "cat"),))


def test_phrases_and_filters() -> None:
    """Quoted phrases, room:, from:, has:, before: and after: are read, in any order."""
    query = parse('from:@Alice "the big cat" room:lobby has:link before:2026-11-30 after:2026-11-01 sat')
    assert query == Query(
        words=(),
        phrases=(("the", "big", "cat"),),
        prefix="sat",
        rooms=("lobby",),
        authors=("alice",),
        has=frozenset({"link"}),
        before=date(2026, 11, 30),
        after=date(2026, 11, 1),
    )


def test_filters_alone_are_a_query() -> None:
    """`from:bob has:link` finds bob's links, newest first: no word needed."""
    assert parse("from:bob has:link") == Query(authors=("bob",), has=frozenset({"link"}))


def test_a_link_is_words_not_a_filter() -> None:
    """https://example.com/x is searched as its words, not refused as an unknown filter."""
    assert parse("https://example.com/path later") == Query(words=("https", "example", "com", "path"), prefix="later")


def test_engine_syntax_is_only_words() -> None:
    """FTS5 and tsquery operators in a query are separators or plain words, never syntax."""
    assert parse("NEAR(cat dog) -mouse* (a|b) & !c <-> d") == Query(
        words=("near", "cat", "dog", "mouse", "a", "b", "c", "d")
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "type something"),
        ("   ", "type something"),
        ("x" * (MAX_QUERY_CHARS + 1), "at most"),
        ('"unbalanced', "quote"),
        ('cat "dog', "quote"),
        ("colour:red", "unknown filter"),
        ("has:pdf", "has: takes"),
        ("before:yesterday", "YYYY-MM-DD"),
        ("after:2026-02-30", "not a date"),
        ("after:0000-01-01", "not a date"),
        ("room:../etc", "room id"),
        ("from:", "username"),
        ("*** --- ((", "nothing to search"),
        (" ".join(f"w{i}" for i in range(20)), "at most"),
    ],
)
def test_what_cannot_be_read_is_refused_with_a_reason(text: str, reason: str) -> None:
    """Each bad query gets a QueryError whose message says what is wrong."""
    with pytest.raises(QueryError, match=reason):
        parse(text)


def test_snippet_marks_the_words_found_accents_and_case_folded() -> None:
    """The snippet marks matches as the engines match them: café matches cafe, Cat matches cat."""
    query = parse("cafe ca")
    parts = snippet("Le Café du Cat noir", query)
    assert [text for text, hit in parts if hit] == ["Café", "Cat"]
    assert "".join(text for text, _ in parts) == "Le Café du Cat noir"


def test_snippet_of_a_long_text_is_a_window_around_the_first_match() -> None:
    """A long message shows the words around the match, with ellipses where it is cut."""
    text = " ".join(f"word{i}" for i in range(100)) + " needle " + " ".join(f"tail{i}" for i in range(100))
    parts = snippet(text, parse("needle"))
    assert parts[0] == ("…", False) and parts[-1] == ("…", False)
    assert ("needle", True) in parts


_ALPHABET = st.sampled_from(list('abcé XY:"*-()NEAR<>|&!~^@/.\\_0123456789\t\n\u00a0\u0301日本'))


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=_ALPHABET, max_size=80) | st.text(max_size=80))
@example("ᾶλλο")  # case folding decomposes it into alpha and a combining mark (found by this test)
@example("İstanbul")  # folds into i, a combining dot that nothing composes with, and stanbul
@example("གྷ")  # NFC decomposes it (a composition exclusion): only composed when folding split it
def test_fuzz_any_text_parses_or_is_refused_with_a_query_error(text: str) -> None:
    """Any text is a Query whose terms are letters and digits only, or a QueryError: nothing else."""
    try:
        query = parse(text)
    except QueryError as error:
        assert str(error)
        return
    for term in query.terms():
        assert term and words_of(term) == [term], term
    for value in query.rooms:
        assert value.replace("-", "").replace("_", "").isalnum()
