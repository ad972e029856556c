# ruff: noqa: S608 - SQL is built from this module's constants; every user value is a parameter.
"""Full-text engines behind one seam: SQLite FTS5 (the embedded default) and PostgreSQL
full-text search (production), chosen by the database Django runs on.

Both read the same rows (search.models.SearchEntry, written through the ORM by
search.indexer); each adds its own full-text structure in this app's migration
(`create_full_text`):
- SQLite: an FTS5 table over the entries' text (external content, kept in step by
  triggers), tokenizer unicode61 with remove_diacritics 2 (case and accents folded);
- PostgreSQL: a generated tsvector column with a GIN index, in a text search configuration
  `chat_search` (the simple dictionary, after unaccent where the extension can be made).
  The text is reduced to letters and digits before it is parsed, so PostgreSQL's parser
  sees the words FTS5 and the query parser see ("example.com" is the words example and com,
  not one host token that the word "example" would never match).

A query (search.query.Query) is built from terms of letters and digits only, so no user
text reaches an engine as syntax. Results are ranked by relevance (FTS5's bm25, PostgreSQL's
ts_rank_cd), then recency, and paged by a keyset cursor (score, time, message id).

Elasticsearch / OpenSearch is a seam, not an adapter: an engine is anything with
`search()` below, fed by the indexer's writes; `ELASTICSEARCH_MAPPING` is the index mapping
it would need (docs/architecture.md).
"""

from __future__ import annotations

import json
import logging
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final, Protocol

from django.db import connection, transaction

from search.query import WORD, Query

log = logging.getLogger(__name__)

TABLE: Final = "search_searchentry"
FTS_TABLE: Final = "search_entry_fts"
PG_CONFIG: Final = "chat_search"

# The mapping an Elasticsearch/OpenSearch engine would index the same entries with.
ELASTICSEARCH_MAPPING: Final = {
    "settings": {
        "analysis": {
            "analyzer": {
                "chat_text": {"type": "custom", "tokenizer": "standard", "filter": ["lowercase", "asciifolding"]}
            }
        }
    },
    "mappings": {
        "properties": {
            "message_id": {"type": "keyword"},
            "room_id": {"type": "keyword"},
            "seq": {"type": "long"},
            "user_id": {"type": "keyword"},
            "author_key": {"type": "keyword"},
            "text": {"type": "text", "analyzer": "chat_text", "index_prefixes": {}},
            "at_us": {"type": "long"},
            "ttl": {"type": "long"},
            "has_link": {"type": "boolean"},
            "has_file": {"type": "boolean"},
        }
    },
}


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page ended: the last hit's score (as the engine rounded it), time and id."""

    score: str
    at_us: int
    message_id: str


@dataclass(frozen=True, slots=True)
class Hit:
    message_id: str
    room_id: str
    seq: int
    user_id: str
    username: str
    text: str
    at_us: int
    score: str  # the engine's rounded score, as text: a cursor compares it exactly

    def cursor(self) -> Cursor:
        return Cursor(score=self.score, at_us=self.at_us, message_id=self.message_id)


class SearchEngine(Protocol):
    name: str

    def search(self, query: Query, *, room_ids: Sequence[str], now: int, limit: int, after: Cursor | None) -> list[Hit]:
        """At most `limit` live entries of these rooms that match, best first, after the cursor."""
        ...


def _day_us(day: date) -> int:
    return int(datetime.combine(day, time(), tzinfo=UTC).timestamp() * 1_000_000)


# How many matches are ranked: the newest RANK_WINDOW matches of a query (its words, rooms
# and filters) are scored and the page is the best of them. A word in most messages would
# otherwise be scored in every message of the user's rooms (tens of thousands of rows for a
# query that shows 20). A query with fewer matches ranks them all, as before.
RANK_WINDOW: Final = 500
# Up to this many rooms, PostgreSQL reads each room's newest matches (one branch a room);
# past it (a moderator), one scan of the matches filtered by room.
UNION_ROOMS: Final = 100
# A prefix the planner expects in more than this share of the entries is common.
COMMON_SHARE: Final = 0.02
# A phrase is common when share * share * entries passes this, share being the part of the
# entries the planner expects to hold all its words (a GIN index keeps no positions: it finds
# a phrase as that AND). One scan reads the AND's matches in the whole index, about
# share * entries rows; per room, each room is read newest first until the window fills,
# about 1 / share rows, wherever the words are. The two plans cost the same near this value:
# share 0.15 at 200,000 entries, 0.065 to 0.1 at 1,000,000 (docs/performance.md).
PHRASE_CROSSOVER: Final = 4_500

_COLUMNS: Final = ("message_id", "room_id", "seq", "user_id", "username", "text", "at_us")


def _columns(table: str) -> str:
    return ", ".join(f"{table}.{c}" for c in _COLUMNS)


def _hit(r: Sequence[Any], score: str) -> Hit:
    return Hit(message_id=r[0], room_id=r[1], seq=r[2], user_id=r[3], username=r[4], text=r[5], at_us=r[6], score=score)


K1: Final = 1.2
B: Final = 0.75


def _fold(text: str) -> str:
    """Accents off (as FTS5's remove_diacritics does); most texts are ASCII and pass as they are."""
    if text.isascii():
        return text
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def relevance(query: Query, texts: Sequence[str]) -> list[float]:
    """BM25's term-frequency part, over a window of matches (SQLite): how often each query
    term occurs in each text, saturated (K1) and normalised by the text's length against
    the window's mean (B), summed over the terms. BM25's IDF is left out: every text of the
    window matches every term, and FTS5's bm25() counts each term's matches over the whole
    index to compute it (33 ms for a prefix in one message in two of a million; docs/
    performance.md)."""
    docs = [WORD.findall(_fold(text).casefold()) for text in texts]
    mean = max(1.0, sum(map(len, docs)) / max(1, len(docs)))
    words = [_fold(w) for w in query.words]
    phrases = [[_fold(w) for w in phrase] for phrase in query.phrases]
    prefix = _fold(query.prefix) if query.prefix else None
    scores: list[float] = []
    for doc in docs:
        counts = [doc.count(w) for w in words]
        counts += [sum(doc[i : i + len(p)] == p for i in range(len(doc) - len(p) + 1)) for p in phrases]
        if prefix is not None:
            counts.append(sum(w.startswith(prefix) for w in doc))
        norm = K1 * (1 - B + B * len(doc) / mean)
        scores.append(round(sum(tf * (K1 + 1) / (tf + norm) for tf in counts), 6))
    return scores


@dataclass(frozen=True, slots=True)
class _Page:
    """What a page asks for: the rooms, the filters on the entries `e` (SQL and params)."""

    room_ids: Sequence[str]
    where: list[str]
    params: list[Any]
    limit: int
    after: Cursor | None


class _SqlEngine:
    """The SQL both engines share; each supplies its ranked selection of the matches."""

    name = "sql"

    def _in(self, column: str, values: Sequence[str], params: list[Any]) -> str:
        params.extend(values)
        return f"{column} IN ({', '.join(['%s'] * len(values))})"

    def search(self, query: Query, *, room_ids: Sequence[str], now: int, limit: int, after: Cursor | None) -> list[Hit]:
        if not room_ids:
            return []
        params: list[Any] = [now]
        where = ["e.ttl > %s"]  # and the rooms: each engine puts them where its index serves them
        if query.authors:
            where.append(self._in("e.author_key", query.authors, params))
        if "link" in query.has:
            where.append("e.has_link")
        if "file" in query.has:
            where.append("e.has_file")
        try:
            if query.before is not None:
                where.append("e.at_us < %s")
                params.append(_day_us(query.before))
            if query.after is not None:
                where.append("e.at_us >= %s")
                params.append(_day_us(query.after + timedelta(days=1)))
        except OverflowError:
            return []  # after:9999-12-31 — no message is later
        if query.has_text:
            return self._text_hits(query, _Page(room_ids, where, params, limit, after))
        where.append(self._in("e.room_id", room_ids, params))
        inner = f"SELECT {_columns('e')}, 0 AS score FROM {TABLE} e WHERE {' AND '.join(where)}"
        return self._page(inner, params, limit, after)

    def _text_hits(self, query: Query, page: _Page) -> list[Hit]:
        """The page of a query with words: the newest RANK_WINDOW matches, ranked."""
        raise NotImplementedError

    def _page(
        self, inner: str, params: list[Any], limit: int, after: Cursor | None, *, late: bool = False
    ) -> list[Hit]:
        """The page of `inner`'s rows (with a score column) after the cursor, best first.

        `late`: inner's rows are (message_id, at_us, score) only, and the page's rows are
        read from the table by message_id once the page is cut (its other columns are not
        in the index that inner's rows came from)."""
        outer_where = ""
        if after is not None:
            outer_where = " WHERE (score < %s OR (score = %s AND (at_us < %s OR (at_us = %s AND message_id > %s))))"
            value = self._cursor_score(after.score)
            params = [*params, value, value, after.at_us, after.at_us, after.message_id]
        sql = f"SELECT * FROM ({inner}) hits{outer_where} ORDER BY score DESC, at_us DESC, message_id LIMIT %s"
        if late:
            sql = (
                f"SELECT {_columns('e')}, p.score FROM ({sql}) p JOIN {TABLE} e ON e.message_id = p.message_id"
                " ORDER BY p.score DESC, p.at_us DESC, p.message_id"
            )
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, limit])
            rows = cursor.fetchall()
        return [_hit(r, self._score_text(r[7])) for r in rows]

    def _cursor_score(self, score: str) -> Any:
        return float(score)

    def _score_text(self, value: Any) -> str:
        return repr(float(value))


class SqliteEngine(_SqlEngine):
    """FTS5: the embedded default, in the database file, no extra service."""

    name = "sqlite-fts5"

    def _match(self, query: Query, room_ids: Sequence[str]) -> str:
        # Each term quoted: FTS5 reads a quoted string as a phrase of tokens, never as syntax,
        # and the terms hold no quote (search.query). Room tokens are [a-z0-9] only.
        parts = [f'"{word}"' for word in query.words]
        parts += [f'"{" ".join(phrase)}"' for phrase in query.phrases]
        if query.prefix:
            parts.append(f'"{query.prefix}"*')
        rooms = " OR ".join(room_token(r) for r in room_ids)
        return f"text:({' '.join(parts)}) AND room:({rooms})"

    def _text_hits(self, query: Query, page: _Page) -> list[Hit]:
        # The window newest first in the index's own order (rowid: the order entries were
        # indexed, which is the order messages were stored, except after a reindex_search,
        # which indexes room by room): FTS5 walks its doclists backwards, the join applies the
        # filters, and LIMIT stops the walk at the window. Then `relevance` in Python on the
        # window's texts: FTS5's bm25() would first count every term's matches over the
        # whole index (its IDF), 30-80 ms for a common word or a phrase at a million.
        fts = FTS_TABLE
        params = [self._match(query, page.room_ids), *page.params]
        where = [*page.where, self._in("e.room_id", page.room_ids, params)]
        sql = (
            f"SELECT {_columns('e')} FROM {fts} JOIN {TABLE} e ON e.id = {fts}.rowid "
            f"WHERE {fts} MATCH %s AND {' AND '.join(where)} ORDER BY {fts}.rowid DESC LIMIT %s"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, RANK_WINDOW])
            rows = cursor.fetchall()
        scores = relevance(query, [r[5] for r in rows])
        ranked = sorted(zip(scores, rows, strict=True), key=lambda sr: (-sr[0], -sr[1][6], sr[1][0]))
        if page.after is not None:
            mark = (-float(page.after.score), -page.after.at_us, page.after.message_id)
            ranked = [(sc, r) for sc, r in ranked if (-sc, -r[6], r[0]) > mark]
        return [_hit(r, repr(sc)) for sc, r in ranked[: page.limit]]


class PostgresEngine(_SqlEngine):
    """PostgreSQL full-text search: tsvector + GIN, websearch_to_tsquery, ts_rank_cd."""

    name = "postgresql"

    def __init__(self) -> None:
        self._estimates: dict[str, tuple[float, float]] = {}

    def _tsquery(self, query: Query, params: list[Any]) -> str:
        # websearch_to_tsquery never fails on its input; every term is quoted, so "or" and a
        # leading "-" stay words. The prefix is a tsquery of one lexeme of letters and digits.
        web = " ".join([f'"{w}"' for w in query.words] + [f'"{" ".join(p)}"' for p in query.phrases])
        terms: list[str] = []
        if web:
            terms.append(f"websearch_to_tsquery('{PG_CONFIG}', %s)")
            params.append(web)
        if query.prefix:
            terms.append(f"to_tsquery('{PG_CONFIG}', %s)")
            params.append(f"{query.prefix}:*")
        return " && ".join(terms)

    def _text_hits(self, query: Query, page: _Page) -> list[Hit]:
        # Two plans for the window (the newest RANK_WINDOW matches), the same rows either way;
        # then ts_rank_cd on those rows only. Which one is ours to decide (`_per_room`), and
        # each is written so that the planner has one way to run it: a fresh ANALYZE moved
        # the planner's choice between plans that cost 10 ms and 250 ms (docs/performance.md).
        tsq: list[Any] = []
        tsquery = self._tsquery(query, tsq)
        per_room = self._per_room(query, page)
        # The match. One scan: words and phrases through the GIN index on document (one read
        # of their posting lists), ANDed with the rooms' rows of the (room_id, at_us) btree
        # before the heap is read. Per room: a filter on the rows, each room's rows read newest
        # first until the window fills. A common prefix is a filter in both: it stands for
        # hundreds of words, each of whose lists the index would read (5 s for `ka lo`, 1 s
        # for `ruk`). A filter is written as the function behind `@@`, ts_match_vq (the same
        # test): no index condition, and the planner does not estimate it from the column's
        # word statistics, which it did once for each of the 50 branches (`(… @@ …) IS TRUE`:
        # about half of the per-room plan's planning, 5-10 ms on the busy machine).
        match: list[str] = []
        match_params: list[Any] = []
        if query.words or query.phrases:
            words = self._tsquery(replace(query, prefix=None), match_params)
            match.append(f"ts_match_vq(e.document, {words})" if per_room else f"e.document @@ ({words})")
        if query.prefix:
            prefix = self._tsquery(Query(prefix=query.prefix), match_params)
            filtered = per_room or self._common(query.prefix)
            match.append(f"ts_match_vq(e.document, {prefix})" if filtered else f"e.document @@ ({prefix})")
        # Per room, the branch reads only columns of the (room_id, at_us) index that carries
        # the document (search_entry_room_at_doc): an index-only scan, a room's entries side by
        # side in its pages, where the heap has them one a page among the other rooms' (a
        # phrase of common words rarely adjacent read every row of the 50 rooms: 30,000
        # buffers against 1,500); the page's other columns are read once it is cut (`late`).
        # That index holds the entries whose document fits a btree row (DOCUMENT_IN_INDEX_BYTES);
        # the others, long messages of varied words, are one more branch, all the rooms' at
        # once from their own small index (search_entry_room_at_big), merged by time alike.
        columns = "e.message_id, e.at_us" if per_room else _columns("e")
        select = f"SELECT {columns}, e.document, ({tsquery}) AS q FROM {TABLE} e WHERE {' AND '.join(match)}"
        tsq += match_params
        params: list[Any] = []
        if not per_room:
            params += [*tsq, *page.params]
            where = [*page.where, self._in("e.room_id", page.room_ids, params)]
            window = f"{select} AND {' AND '.join(where)} ORDER BY e.at_us DESC LIMIT %s"
        else:
            branches = []
            fits = f"{_document_size('e')} <= {DOCUMENT_IN_INDEX_BYTES}"
            for room_id in page.room_ids:
                branches.append(
                    f"({select} AND {fits} AND e.room_id = %s AND {' AND '.join(page.where)}"
                    " ORDER BY e.at_us DESC LIMIT %s)"
                )
                params += [*tsq, room_id, *page.params, RANK_WINDOW]
            params += tsq
            rooms = self._in("e.room_id", page.room_ids, params)
            branches.append(
                f"({select} AND {_document_size('e')} > {DOCUMENT_IN_INDEX_BYTES} AND {rooms}"
                f" AND {' AND '.join(page.where)} ORDER BY e.at_us DESC LIMIT %s)"
            )
            params += [*page.params, RANK_WINDOW]
            window = f"SELECT * FROM ({' UNION ALL '.join(branches)}) rooms ORDER BY at_us DESC LIMIT %s"
        rank = f"round(ts_rank_cd(w.document, w.q)::numeric, 6) AS score FROM ({window}) w"
        if not per_room:
            inner = f"SELECT {_columns('w')}, {rank}"
            return self._page(inner, [*params, RANK_WINDOW], page.limit, page.after)
        inner = f"SELECT w.message_id, w.at_us, {rank}"
        # Per room, for this statement only (SET LOCAL, in a transaction or savepoint of its
        # own, rolled back: the statement only reads, and the rollback undoes the settings):
        # - bitmap scans off: each room's branch must read its (room_id, at_us) btree
        #   backwards, lazily, so that the merge stops every room at the window's horizon; the
        #   planner's other way, the room's rows in a bitmap then sorted, reads every row of
        #   every room (all 56,000 of the bench user's rooms);
        # - jit off: past jit_above_cost (100,000, which 50 branches reach) PostgreSQL compiled
        #   the plan's expressions first, 350-420 ms for a query that ran in 35 ms (`beran`);
        #   a query cut at RANK_WINDOW rows never earns that back. (One scan stays far below.)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_bitmapscan = off; SET LOCAL jit = off")
            hits = self._page(inner, [*params, RANK_WINDOW], page.limit, page.after, late=True)
            transaction.set_rollback(True)
        return hits

    def _per_room(self, query: Query, page: _Page) -> bool:
        """Whether the window is read room by room (words common in every room, few rooms)
        rather than by one scan of the matches filtered by room.

        One scan: a moderator's every room (past UNION_ROOMS), from: (a few rows of each
        room: per room the planner read every room backwards, 7.5 s), a rare prefix (the
        index reads its words once), words (a phrase's or not) not common together
        (PHRASE_CROSSOVER).
        """
        if len(page.room_ids) > UNION_ROOMS or query.authors:
            return False
        if query.words or query.phrases:
            return self._common_words(query) and not (query.prefix and not self._common(query.prefix))
        # A prefix alone: one scan when rare; per room past COMMON_SHARE. A short prefix stands
        # for hundreds of words, whose lists one scan would decode (the crossover rule of
        # words, tried for prefixes, made `nez` and `ruk` 4-6 times slower).
        return bool(query.prefix) and self._common(str(query.prefix))

    def _common(self, prefix: str) -> bool:
        """Whether the planner expects the prefix in more than COMMON_SHARE of the entries."""
        rows, total = self._estimate(Query(prefix=prefix))
        return rows / total > COMMON_SHARE

    def _common_words(self, query: Query) -> bool:
        """Whether the query's words, its phrases' words included, are common enough for the
        per-room plan (PHRASE_CROSSOVER)."""
        words = [*query.words, *(word for phrase in query.phrases for word in phrase)]
        rows, total = self._estimate(Query(words=tuple(dict.fromkeys(words))))
        return rows * rows / total > PHRASE_CROSSOVER

    def _estimate(self, query: Query) -> tuple[float, float]:
        """How many entries the planner expects to match the query's words and prefix, and
        of how many (its statistics of the tsvector column's elements; planning only, no scan)."""
        key = repr((query.words, query.prefix))
        cached = self._estimates.get(key)
        if cached is None:
            params: list[Any] = []
            tsquery = self._tsquery(query, params)
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT reltuples FROM pg_class WHERE oid = '{TABLE}'::regclass")
                row = cursor.fetchone()
                total = max(1.0, float(row[0]) if row else 1.0)
                cursor.execute(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {TABLE} WHERE document @@ ({tsquery})", params)
                plan = cursor.fetchone()[0]
            plan = json.loads(plan) if isinstance(plan, str) else plan
            cached = self._estimates[key] = (float(plan[0]["Plan"]["Plan Rows"]), total)
        return cached

    def _cursor_score(self, score: str) -> Any:
        from decimal import Decimal

        return Decimal(score)

    def _score_text(self, value: Any) -> str:
        return str(value)


def get_engine() -> SearchEngine:
    """The engine of the database Django runs on."""
    if connection.vendor == "postgresql":
        return PostgresEngine()
    if connection.vendor == "sqlite":
        return SqliteEngine()
    raise RuntimeError(f"no search engine for the {connection.vendor} database")


# The full-text structures, made by the migration (search/migrations/0001_initial.py) ------------

# FTS5 indexes each entry's room as a token too: a query ANDs its words with the readable
# rooms' tokens, so FTS5 ranks only the matches in those rooms (not every match in every
# room, which made common words slow at a million messages). Room ids are [A-Za-z0-9_-]:
# the token escapes x, - and _ with x; ids that differ only in case share a token, which
# costs a few rows the exact room_id filter then drops, never a room the user cannot read.
_ROOM_KEY_SQL: Final = "'rm' || lower(replace(replace(replace({}, 'x', 'xx'), '-', 'x0'), '_', 'x1'))"


def room_token(room_id: str) -> str:
    return "rm" + room_id.replace("x", "xx").replace("-", "x0").replace("_", "x1").lower()


def _fts_row(row: str) -> str:
    return f"{row}.text, {_ROOM_KEY_SQL.format(row + '.room_id')}"


_SQLITE_CREATE: Final = [
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5(text, room, content='{TABLE}', "
    "content_rowid='id', prefix='2 3', tokenize='unicode61 remove_diacritics 2')",
    f"CREATE TRIGGER IF NOT EXISTS search_entry_ai AFTER INSERT ON {TABLE} BEGIN "
    f"INSERT INTO {FTS_TABLE}(rowid, text, room) VALUES (new.id, {_fts_row('new')}); END",
    f"CREATE TRIGGER IF NOT EXISTS search_entry_ad AFTER DELETE ON {TABLE} BEGIN "
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, text, room) VALUES ('delete', old.id, {_fts_row('old')}); END",
    f"CREATE TRIGGER IF NOT EXISTS search_entry_au AFTER UPDATE OF text, room_id ON {TABLE} BEGIN "
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, text, room) VALUES ('delete', old.id, {_fts_row('old')}); "
    f"INSERT INTO {FTS_TABLE}(rowid, text, room) VALUES (new.id, {_fts_row('new')}); END",
]
_SQLITE_DROP: Final = [
    "DROP TRIGGER IF EXISTS search_entry_ai",
    "DROP TRIGGER IF EXISTS search_entry_ad",
    "DROP TRIGGER IF EXISTS search_entry_au",
    f"DROP TABLE IF EXISTS {FTS_TABLE}",
]


def _pg_create(schema_editor: Any) -> None:
    cursor = schema_editor.connection.cursor()
    unaccent = True
    try:
        with transaction.atomic(using=schema_editor.connection.alias):
            cursor.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
    except Exception:
        # A managed database may not let this role make it: case folding still holds.
        log.warning("search: no unaccent extension; accents are not folded on PostgreSQL")
        unaccent = False
    cursor.execute("SELECT 1 FROM pg_ts_config WHERE cfgname = %s", [PG_CONFIG])
    if cursor.fetchone() is None:
        cursor.execute(f"CREATE TEXT SEARCH CONFIGURATION {PG_CONFIG} (COPY = simple)")
        if unaccent:
            cursor.execute(
                f"ALTER TEXT SEARCH CONFIGURATION {PG_CONFIG} "
                "ALTER MAPPING FOR word, numword, asciiword, hword, hword_part, hword_asciipart, "
                "hword_numpart, asciihword, numhword WITH unaccent, simple"
            )
    cursor.execute(
        f"ALTER TABLE {TABLE} ADD COLUMN document tsvector GENERATED ALWAYS AS "
        f"(to_tsvector('{PG_CONFIG}'::regconfig, regexp_replace(text, '[^[:alnum:]]+', ' ', 'g'))) STORED"
    )
    cursor.execute(f"CREATE INDEX search_entry_document ON {TABLE} USING GIN (document)")


def create_room_document_index(apps: Any, schema_editor: Any) -> None:
    """Migration 0002: GIN (room_id, document) in place of GIN (document), where btree_gin can be made."""
    if schema_editor.connection.vendor != "postgresql":
        return
    cursor = schema_editor.connection.cursor()
    try:
        with transaction.atomic(using=schema_editor.connection.alias):
            cursor.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    except Exception:
        log.warning("search: no btree_gin extension; the room filter runs after the full-text index scan")
        return
    # The settings bound a request's statements; building this index on a big table takes
    # longer (a minute for a million entries here). LOCAL: this migration's transaction only.
    cursor.execute("SET LOCAL statement_timeout = 0")
    cursor.execute(f"CREATE INDEX IF NOT EXISTS search_entry_room_document ON {TABLE} USING GIN (room_id, document)")
    cursor.execute("DROP INDEX IF EXISTS search_entry_document")


def create_document_index(apps: Any, schema_editor: Any) -> None:
    """Migration 0003: GIN (document) in place of GIN (room_id, document).

    With the room in the GIN index, the planner answered `room_id IN (50 rooms)` as 50 GIN
    scans, each reading the words' posting lists again (9,000 buffers, 130-390 ms for a
    phrase at a million), and took the same per-room GIN scan in the per-room plan after an
    ANALYZE. With the words alone in it, the one scan reads the lists once and ANDs them
    with the rooms' rows of the (room_id, at_us) btree; the per-room plan never used the
    GIN index well (docs/performance.md)."""
    if schema_editor.connection.vendor != "postgresql":
        return
    cursor = schema_editor.connection.cursor()
    cursor.execute("SET LOCAL statement_timeout = 0")  # a minute and a half at a million entries
    cursor.execute(f"CREATE INDEX IF NOT EXISTS search_entry_document ON {TABLE} USING GIN (document)")
    cursor.execute("DROP INDEX IF EXISTS search_entry_room_document")


# A btree row holds at most 2,704 bytes (a third of a page): a document past that failed the
# entry's insert ("index row size 2736 exceeds btree version 4 maximum 2704"), and with it
# the room's indexing, from about 1,300 characters of distinct words on (a 4,000-character
# message makes an 8.3 kB document). Documents up to this size go into the per-room walk's
# index, leaving room for the key and the other columns; the rest (long messages of varied
# words: none of the bench's million, whose largest is 518 bytes) into an index of their own.
DOCUMENT_IN_INDEX_BYTES: Final = 2000


def _document_size(alias: str = "") -> str:
    """An upper bound of the document's size in bytes, as an expression PostgreSQL accepts in
    an index's WHERE (immutable: pg_column_size is only stable, and tsvectorsend writes the
    lexemes in the session's client encoding). Its text form has each lexeme in quotes, a
    colon, a digit and a comma or space a position; the stored form a 4-byte entry, at most
    a byte of alignment and 2 bytes a position, with an 8-byte header: at most 4 bytes a
    lexeme and 9 more. The queries repeat it word for word, so the planner matches the index."""
    column = f"{alias}.document" if alias else "document"
    return f"(octet_length({column}::text) + 4 * length({column}) + 9)"


# Migration 0004 (PostgreSQL): the per-room plan's indexes, and from:'s.
_PG_WALK_INDEXES: Final = [
    # The (room_id, at_us) key again, carrying what a per-room branch reads: the filters'
    # columns, the id the page is read back by, and the document, so that a room is read
    # newest first from pages that hold its entries only (the heap has one of a room's
    # entries a page; reading all of 50 rooms took 30,000 buffers, here 1,500). Only the
    # entries whose document fits a btree row; the others in search_entry_room_at_big.
    f"CREATE INDEX IF NOT EXISTS search_entry_room_at_doc ON {TABLE} (room_id, at_us) "
    f"INCLUDE (ttl, has_link, has_file, message_id, document) "
    f"WHERE {_document_size()} <= {DOCUMENT_IN_INDEX_BYTES}",
    f"CREATE INDEX IF NOT EXISTS search_entry_room_at_big ON {TABLE} (room_id, at_us) "
    f"WHERE {_document_size()} > {DOCUMENT_IN_INDEX_BYTES}",
    # from: — an author's entries newest first: `mineor from:user-397` read 180,000 matches
    # of the word in the GIN index to keep 15 (4,000 buffers), here the author's entries.
    f"CREATE INDEX IF NOT EXISTS search_entry_author_at ON {TABLE} (author_key, at_us)",
    # Index-only scans read the heap for entries on pages not yet marked all-visible by a
    # vacuum: the newest, which the per-room walk reads first. Autovacuum's default waits for
    # 20 % of the table in new rows (200,000 at a million); 1 % keeps that tail short, and
    # each such vacuum also empties the GIN index's pending list, which every GIN scan reads.
    f"ALTER TABLE {TABLE} SET (autovacuum_vacuum_insert_scale_factor = 0.01)",
]


def create_walk_indexes(apps: Any, schema_editor: Any) -> None:
    """Migration 0004: search_entry_room_at_doc, _big and search_entry_author_at (PostgreSQL)."""
    if schema_editor.connection.vendor != "postgresql":
        return
    cursor = schema_editor.connection.cursor()
    cursor.execute("SET LOCAL statement_timeout = 0")  # 10-60 s at a million entries
    for statement in _PG_WALK_INDEXES:
        cursor.execute(statement)


def drop_walk_indexes(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP INDEX IF EXISTS search_entry_room_at_doc")
    schema_editor.execute("DROP INDEX IF EXISTS search_entry_room_at_big")
    schema_editor.execute("DROP INDEX IF EXISTS search_entry_author_at")
    schema_editor.execute(f"ALTER TABLE {TABLE} RESET (autovacuum_vacuum_insert_scale_factor)")


# Migration 0005 (PostgreSQL): how many new entries wait outside the GIN index's tree. New
# entries go to the index's pending list, which every GIN scan reads through (each entry's
# words checked) until a vacuum or an insert past gin_pending_list_limit (4 MB by default,
# over 10,000 messages) moves them into the tree. 6,000 pending entries cost the bench's
# queries 17 % of their CPU (p50 10.4 -> 13.0 ms); at 256 kB the list is moved every 250 or
# so entries, at the same CPU per insert (the move is in bulk either way); fastupdate off,
# no list at all, cost about 150 µs more per insert (docs/performance.md).
GIN_PENDING_LIST_KB: Final = 256


def limit_pending_list(apps: Any, schema_editor: Any) -> None:
    """Migration 0005: gin_pending_list_limit on the document index (PostgreSQL)."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER INDEX search_entry_document SET (gin_pending_list_limit = {GIN_PENDING_LIST_KB})")


def unlimit_pending_list(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER INDEX search_entry_document RESET (gin_pending_list_limit)")


def drop_room_document_index(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"CREATE INDEX IF NOT EXISTS search_entry_document ON {TABLE} USING GIN (document)")
    schema_editor.execute("DROP INDEX IF EXISTS search_entry_room_document")


def create_full_text(apps: Any, schema_editor: Any) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        for statement in _SQLITE_CREATE:
            schema_editor.execute(statement)
    elif vendor == "postgresql":
        _pg_create(schema_editor)


def drop_full_text(apps: Any, schema_editor: Any) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        for statement in _SQLITE_DROP:
            schema_editor.execute(statement)
    elif vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS search_entry_document")
        schema_editor.execute(f"ALTER TABLE {TABLE} DROP COLUMN IF EXISTS document")
