"""The search query language, parsed into a plain `Query`: pure, no Django, no engine.

What a user types: words (all must match), "quoted phrases", and filters —
`room:<id>`, `from:<username>`, `has:file`, `has:link`, `before:YYYY-MM-DD`,
`after:YYYY-MM-DD`. The last bare word matches as a prefix (search as you type).

Every term that reaches an engine is made of letters and digits only (`[^\\W_]+`,
case-folded), so no engine syntax (FTS5's NEAR, `*`, `"`, `-`, `(`, `:`; tsquery's `&`,
`|`, `!`, `<->`) can pass through a user's text: such characters separate words, as they do
in the engines' own tokenizers. What cannot be read is refused with a reason (QueryError,
the API's `invalid_query`), never handed to an engine to fail on.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from typing import Final

MAX_QUERY_CHARS: Final = 500
# More terms than this make a slow query and no better answer.
MAX_TERMS: Final = 16
# A prefix this short matches most of the index: shorter ones match as whole words.
MIN_PREFIX: Final = 2
FILTERS: Final = ("room", "from", "has", "before", "after")
HAS_VALUES: Final = ("file", "link")

WORD = re.compile(r"[^\W_]+")
_ROOM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_USERNAME = re.compile(r"[\w.@+-]{1,150}")
# A token: a quoted phrase, key:"quoted value", or a run of non-space characters.
_TOKEN = re.compile(r'"(?P<phrase>[^"]*)"|(?P<key>[A-Za-z]+):"(?P<qvalue>[^"]*)"|(?P<bare>[^\s"]+)')
_FILTER = re.compile(r"(?P<key>[A-Za-z]+):(?P<value>.*)", re.DOTALL)
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


class QueryError(ValueError):
    """A query that cannot be read; the message says why, for the user."""


@dataclass(frozen=True, slots=True)
class Query:
    words: tuple[str, ...] = ()
    phrases: tuple[tuple[str, ...], ...] = ()
    prefix: str | None = None
    rooms: tuple[str, ...] = ()  # any of these (room:)
    authors: tuple[str, ...] = ()  # any of these usernames, case-folded (from:)
    has: frozenset[str] = field(default_factory=frozenset)
    before: date | None = None  # messages of days before this one
    after: date | None = None  # messages of days after this one

    @property
    def has_text(self) -> bool:
        """Whether the query matches text (else it filters only, newest first)."""
        return bool(self.words or self.phrases or self.prefix)

    def terms(self) -> list[str]:
        """Every word the user looks for (for highlighting), phrases' words included."""
        out = list(self.words)
        for phrase in self.phrases:
            out.extend(phrase)
        if self.prefix:
            out.append(self.prefix)
        return out


def words_of(text: str) -> list[str]:
    """The searchable words of a text, case-folded: what the engines' tokenizers see."""
    return [_folded(word) for word in WORD.findall(text)]


def _folded(word: str) -> str:
    """A word case-folded, still letters and digits only. Folding decomposes some letters
    (Greek ᾶ into alpha and a combining perispomeni, Turkish İ into i and a combining dot):
    they are composed again, and a mark left over is dropped, as the engines drop accents
    (FTS5's remove_diacritics), so a term never holds a mark that would split it."""
    folded = word.casefold()
    if WORD.fullmatch(folded):
        return folded
    composed = unicodedata.normalize("NFC", folded)
    return composed if WORD.fullmatch(composed) else "".join(WORD.findall(composed))


def _date(key: str, value: str) -> date:
    match = _DATE.fullmatch(value)
    if not match:
        raise QueryError(f"{key}: takes a date as YYYY-MM-DD")
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise QueryError(f"{key}: {value} is not a date") from None


def parse(text: str) -> Query:
    """Parse a user's query; QueryError says what is wrong with one that cannot be read."""
    if not isinstance(text, str) or not text.strip():
        raise QueryError("type something to search for")
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"a search is at most {MAX_QUERY_CHARS} characters")
    if text.count('"') % 2:
        raise QueryError("a quote is not closed")
    words: list[str] = []
    phrases: list[tuple[str, ...]] = []
    rooms: list[str] = []
    authors: list[str] = []
    has: set[str] = set()
    before: date | None = None
    after: date | None = None
    last_bare: str | None = None  # the last word of the query, if it ends with a bare word
    for match in _TOKEN.finditer(text):
        last_bare = None
        if match["phrase"] is not None:
            phrase = tuple(words_of(match["phrase"]))
            if len(phrase) == 1:
                words.append(phrase[0])
            elif phrase:
                phrases.append(phrase)
            continue
        if match["key"] is not None:
            key, value = match["key"], match["qvalue"]
        else:
            bare = match["bare"]
            found = _FILTER.fullmatch(bare)
            if found is None or found["value"].startswith("//"):  # a word, or a link (https://...)
                bare_words = words_of(bare)
                words.extend(bare_words)
                if bare_words and match.end() == len(text):
                    last_bare = bare_words[-1]
                continue
            key, value = found["key"], found["value"]
        key = key.lower()
        if key not in FILTERS:
            raise QueryError(f"unknown filter {key}: (use {', '.join(f + ':' for f in FILTERS)})")
        if key == "room":
            if not _ROOM_ID.fullmatch(value):
                raise QueryError("room: takes a room id")
            rooms.append(value)
        elif key == "from":
            value = value.removeprefix("@")
            if not _USERNAME.fullmatch(value):
                raise QueryError("from: takes a username")
            authors.append(value.casefold())
        elif key == "has":
            if value.lower() not in HAS_VALUES:
                raise QueryError(f"has: takes {' or '.join(HAS_VALUES)}")
            has.add(value.lower())
        elif key == "before":
            before = _date(key, value)
        else:
            after = _date(key, value)
    prefix: str | None = None
    if last_bare is not None and len(last_bare) >= MIN_PREFIX:
        words.pop()
        prefix = last_bare
    words = list(dict.fromkeys(words))
    if len(words) + sum(len(p) for p in phrases) + (prefix is not None) > MAX_TERMS:
        raise QueryError(f"a search takes at most {MAX_TERMS} words")
    query = Query(
        words=tuple(words),
        phrases=tuple(phrases),
        prefix=prefix,
        rooms=tuple(dict.fromkeys(rooms)),
        authors=tuple(dict.fromkeys(authors)),
        has=frozenset(has),
        before=before,
        after=after,
    )
    if not query.has_text and not (query.rooms or query.authors or query.has or before or after):
        raise QueryError("nothing to search for: type a word")
    return query
