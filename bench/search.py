"""User search over a big history: query latency on both engines, and the indexing cost per message.

Not part of `make bench`: run it on its own.

    python -m bench.search                         # 1,000,000 messages, 1,000 rooms, both engines
    python -m bench.search --engine sqlite --messages 200000
    python -m bench.search --keep var/bench/search # reuse the generated data on the next run

It makes a scratch database per engine (SQLite in a data directory under var/, or a
PostgreSQL database `chatsite_bench_search` on POSTGRES_BENCH_URL, default the local
server), migrates it, and writes a generated history straight into the store's tables and
the search index: words drawn from a Zipf distribution over a 20,000-word vocabulary
(s = 1.07, close to English), 3 to 30 words a message, some links; 1,000 rooms, 30 public
and 970 private; the user reads 50 of them (the 30 public and 20 private rooms they are a
member of). Then 200 mixed queries (one word, two words, a phrase, a prefix, filters)
through the whole service (search.services.messages_search: the readable rooms read from
the store, the engine's query, the store check of the page), and prints p50 and p95.

Indexing: 2,000 new messages in the readable rooms, each applied to the index as the feed
does at a low rate (a batch of one), in batches of 10 (one room, then 10 rooms), and in the
batches the feed gathers in GATHER_SECONDS at 100 msg/s over 20 rooms; printed as CPU per
message (this process's CPU: all of it on SQLite; on PostgreSQL the server's share is not
in it, so the wall time is printed too), beside the store's append of a message alone.
docs/performance.md compares it with the CPU per message the load bench measures for 20
rooms of 10. DEBUG is off, as deployed. Exits 1 when a p95 is 50 ms or more.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any

GOAL_P95_MS = 50.0
VOCABULARY = 20_000
ZIPF_S = 1.07
PUBLIC_ROOMS = 30
MEMBER_ROOMS = 20
USER_ID = "bench-user"
PG_DB = "chatsite_bench_search"
ROOT = Path(__file__).resolve().parent.parent


def _words(rng: random.Random) -> list[str]:
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "qu", "el", "an", "or", "is", "ber", "con"]
    seen: set[str] = set()
    words: list[str] = []
    while len(words) < VOCABULARY:
        word = "".join(rng.choice(syllables) for _ in range(rng.choice((1, 2, 2, 3, 3, 4))))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def _setup(engine: str, data_dir: Path) -> None:
    os.environ["CHATSITE_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # DEBUG off, as deployed (and as bench.run serves): with it on, Django also records every
    # query it runs, which the indexing figures paid for.
    os.environ.setdefault("DJANGO_DEBUG", "0")
    os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
    if engine == "postgresql":
        admin = os.environ.get("POSTGRES_BENCH_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
        os.environ["DATABASE_URL"] = admin.rsplit("/", 1)[0] + f"/{PG_DB}"
    else:
        os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()


def _pg_create(fresh: bool) -> bool:
    """Make the bench database; True when it is new (data to generate)."""
    import psycopg

    admin = os.environ.get("POSTGRES_BENCH_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [PG_DB]).fetchone()
        if exists and fresh:
            conn.execute(f'DROP DATABASE "{PG_DB}" WITH (FORCE)')
            exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{PG_DB}"')
            return True
    return False


def _defaults(model: Any) -> dict[str, Any]:
    """Each column's value when a row does not give one (the model's defaults, as the DB takes them)."""
    out: dict[str, Any] = {}
    for field in model._meta.concrete_fields:
        if field.has_default():
            value = field.get_default()
            out[field.column] = json.dumps(value) if isinstance(value, list | dict) else value
        elif field.null:
            out[field.column] = None
    return out


class _Loader:
    """Bulk writes for the generation: PostgreSQL's COPY, SQLite's executemany on the raw
    connection, in big transactions; the secondary indexes (and the FTS5 insert trigger)
    dropped during the load and built once at the end, which is what makes 1,000,000
    messages take minutes, not half an hour."""

    TABLES = ("chat_message", "search_searchentry")

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.vendor = connection.vendor
        self.raw = connection.connection
        self.rebuild: list[str] = []

    def begin(self) -> None:
        with self.connection.cursor() as cursor:
            if self.vendor == "postgresql":
                cursor.execute(
                    "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i"
                    " WHERE i.indrelid::regclass::text = ANY(%s) AND NOT i.indisprimary"
                    " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
                    [list(self.TABLES)],
                )
                for name, definition in cursor.fetchall():
                    cursor.execute(f'DROP INDEX "{name}"')
                    self.rebuild.append(definition)
                cursor.execute("SET session_replication_role = replica")  # no FK triggers per row: scratch data
                cursor.execute("SET statement_timeout = 0")  # the settings bound a request's statements, not this
            else:
                cursor.execute(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
                    f" AND tbl_name IN ({', '.join(repr(t) for t in self.TABLES)})"
                )
                for name, definition in cursor.fetchall():
                    cursor.execute(f'DROP INDEX "{name}"')
                    self.rebuild.append(definition)
                cursor.execute("DROP TRIGGER search_entry_ai")
                cursor.execute("PRAGMA journal_mode = DELETE")  # WAL would write the data twice
                cursor.execute("PRAGMA synchronous = OFF")
                cursor.execute("PRAGMA cache_size = -200000")

    def write(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        names = ", ".join(columns)
        if self.vendor == "postgresql":
            with self.raw.cursor() as cursor, cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" * len(columns))
            self.raw.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)

    def finish(self) -> None:
        from search import engines

        with self.connection.cursor() as cursor:
            if self.vendor == "postgresql":
                cursor.execute("SET session_replication_role = DEFAULT")
                cursor.execute("SET maintenance_work_mem = '256MB'")
            else:
                ai = next(s for s in engines._SQLITE_CREATE if "search_entry_ai" in s)
                cursor.execute(
                    f"INSERT INTO {engines.FTS_TABLE}(rowid, text, room) SELECT e.id, {engines._fts_row('e')}"
                    f" FROM {engines.TABLE} e ORDER BY e.id"
                )
                cursor.execute(ai)
            for definition in self.rebuild:
                cursor.execute(definition)
            if self.vendor == "sqlite":
                cursor.execute("PRAGMA journal_mode = WAL")


def _generate(args: argparse.Namespace, rng: random.Random, words: list[str]) -> None:
    from django.db import connection, transaction

    from chat.models import Message, Room, RoomMember
    from search.models import SearchEntry, SearchRoomCursor

    cum = list(accumulate(1 / (rank**ZIPF_S) for rank in range(1, len(words) + 1)))
    now = datetime.now(UTC)
    ttl = int((now + timedelta(days=365)).timestamp())
    per_room = args.messages // args.rooms
    started = time.perf_counter()
    loader = _Loader(connection)

    def table(model: Any, rows: list[dict[str, Any]]) -> None:
        defaults = _defaults(model)
        columns = [f.column for f in model._meta.concrete_fields if not (f.primary_key and f.auto_created)]
        loader.write(model._meta.db_table, columns, [tuple(r.get(c, defaults.get(c)) for c in columns) for r in rows])

    loader.begin()
    with transaction.atomic():
        rooms = [f"room-{r:04d}" for r in range(args.rooms)]
        table(
            Room,
            [
                {"room_id": room, "name": f"Room {r}", "created_at": now - timedelta(days=60), "last_seq": per_room}
                | {"private": r >= PUBLIC_ROOMS, "created_by": None}
                for r, room in enumerate(rooms)
            ],
        )
        members = [(rooms[r], USER_ID) for r in range(PUBLIC_ROOMS, PUBLIC_ROOMS + MEMBER_ROOMS)]
        members += [(rooms[r], f"user-{r % 500}") for r in range(PUBLIC_ROOMS, args.rooms)]
        table(RoomMember, [{"room_id": room, "user_id": user} for room, user in members])
        table(SearchRoomCursor, [{"room_id": room, "indexed_seq": per_room} for room in rooms])
    chunk = 50_000
    total = per_room * args.rooms
    span = 30 * 86_400
    message_defaults = {"connection_id": "c", "client_message_id": None, "ttl": ttl, "removed": None}
    for start in range(0, total, chunk):
        messages: list[dict[str, Any]] = []
        entries: list[dict[str, Any]] = []
        for i in range(start, min(start + chunk, total)):
            # Rooms interleave in time, as they do in a live site (not one room's history after another).
            room = rooms[i % args.rooms]
            seq = i // args.rooms + 1
            text = " ".join(rng.choices(words, cum_weights=cum, k=rng.randint(3, 30)))
            link = rng.random() < 0.03
            if link:
                text += f" https://example.com/{rng.choice(words)}"
            user = f"user-{rng.randrange(500)}"
            at = now - timedelta(seconds=span * (1 - seq / (per_room + 1)))
            message_id = uuid.UUID(int=rng.getrandbits(128)).hex
            common = {"message_id": message_id, "room_id": room, "seq": seq, "user_id": user, "username": user}
            messages.append(common | message_defaults | {"text": text, "timestamp": at})
            entries.append(
                common
                | {"author_key": user, "text": text, "at_us": int(at.timestamp() * 1e6), "ttl": ttl}
                | {"has_link": link, "has_file": False}
            )
        with transaction.atomic():
            table(Message, messages)
            table(SearchEntry, entries)
        done = min(start + chunk, total)
        rate = done / (time.perf_counter() - started)
        print(f"\r  generated {done:,}/{total:,} messages ({rate:,.0f}/s)", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    print(f"  rows written in {time.perf_counter() - started:.0f} s; building the indexes", file=sys.stderr)
    loader.finish()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("VACUUM ANALYZE search_searchentry")
            cursor.execute("VACUUM ANALYZE chat_message")
        else:
            cursor.execute("INSERT INTO search_entry_fts(search_entry_fts) VALUES ('optimize')")
            cursor.execute("ANALYZE")
    print(f"  data ready in {time.perf_counter() - started:.0f} s", file=sys.stderr)


def _queries(rng: random.Random, words: list[str], count: int) -> list[str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT text FROM search_searchentry WHERE room_id IN ('room-0001', 'room-0031', 'room-0040') LIMIT 2000"
        )
        texts = [row[0] for row in cursor.fetchall()]
    head = words[:2000]  # the frequent words users type (the very top ones too)
    out: list[str] = []
    for i in range(count):
        kind = i % 10
        sample = rng.choice(texts).split()
        if kind in (0, 1, 2):
            out.append(rng.choice(head))
        elif kind in (3, 4):
            out.append(f"{rng.choice(head)} {rng.choice(words[:8000])}")
        elif kind == 5:
            at = rng.randrange(max(1, len(sample) - 1))
            out.append('"' + " ".join(sample[at : at + 2]) + '"')
        elif kind == 6:
            out.append(f"{rng.choice(head)} {rng.choice(words[:8000])[:3]}")
        elif kind == 7:
            out.append(rng.choice(words[:5000])[:3])
        elif kind == 8:
            out.append(f"{rng.choice(head)} from:user-{rng.randrange(500)}")
        else:
            extra = rng.choice(["has:link", "room:room-0003", "after:2026-01-01", "before:2030-01-01 room:room-0035"])
            out.append(f"{rng.choice(head)} {extra}")
    return out


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run(engine: str, args: argparse.Namespace) -> int:
    data_dir = Path(args.keep) / engine
    data_dir.mkdir(parents=True, exist_ok=True)
    fresh = not args.reuse
    if engine == "postgresql":
        new = _pg_create(fresh)
    else:
        db = data_dir / "db.sqlite3"
        if fresh and db.exists():
            for path in data_dir.glob("db.sqlite3*"):
                path.unlink()
        new = not db.exists()
    _setup(engine, data_dir)
    rng = random.Random(19)
    words = _words(rng)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)  # on reused data too: a newer migration's indexes
    if new:
        _generate(args, rng, words)
    from accounts.identity import Identity
    from chat.storage import get_store
    from chat.storage.base import NewMessage
    from search import indexer
    from search.engines import get_engine
    from search.query import parse
    from search.services import messages_search, rooms_readable

    identity = Identity(user_id=USER_ID, username="bench")
    readable = rooms_readable(identity=identity).room_ids
    assert len(readable) == PUBLIC_ROOMS + MEMBER_ROOMS, len(readable)
    queries = _queries(random.Random(7), words, args.queries)
    for q in queries[:10]:  # warm the caches
        messages_search(identity=identity, q=q)
    timings: list[float] = []
    cpu_times: list[float] = []
    engine_only: list[float] = []
    hits = 0
    room_ids = readable
    now = int(time.time())
    for q in queries:
        started, cpu_started = time.perf_counter(), time.process_time()
        page = messages_search(identity=identity, q=q)
        timings.append((time.perf_counter() - started) * 1000)
        cpu_times.append((time.process_time() - cpu_started) * 1000)
        hits += len(page.results)
        started = time.perf_counter()
        get_engine().search(parse(q), room_ids=room_ids, now=now, limit=21, after=None)
        engine_only.append((time.perf_counter() - started) * 1000)
    worst = sorted(zip(timings, queries, strict=True))[-3:]

    # Indexing: new messages in readable rooms, applied as the feed applies them.
    store = get_store()
    made = []
    store_started = time.process_time()
    for i in range(args.index_messages):
        made.append(
            store.append_message(
                NewMessage(
                    room_id=room_ids[i % len(room_ids)],
                    user_id="user-1",
                    username="user-1",
                    text=" ".join(rng.choices(words[:3000], k=rng.randint(3, 30))),
                    connection_id="c",
                    client_message_id=None,
                    timestamp=datetime.now(UTC),
                    ttl_seconds=86_400,
                )
            ).message
        )
    # Storing a message (the store's append alone): what indexing adds to, for the ratio.
    store_cpu = (time.process_time() - store_started) / len(made) * 1e6
    half = len(made) * 3 // 8
    cpu, wall = time.process_time(), time.perf_counter()
    for message in made[:half]:
        indexer.apply([message])
    single_cpu = (time.process_time() - cpu) / half * 1e6
    single_wall = (time.perf_counter() - wall) / half * 1e6
    batch = made[half : len(made) * 3 // 4]
    by_room: dict[str, list[Any]] = {}
    for message in batch:
        by_room.setdefault(message.room_id, []).append(message)
    cpu, wall = time.process_time(), time.perf_counter()
    ordered = [m for ms in by_room.values() for m in ms]
    for start in range(0, len(ordered), 10):
        indexer.apply(ordered[start : start + 10])
    batch_cpu = (time.process_time() - cpu) / len(batch) * 1e6
    batch_wall = (time.perf_counter() - wall) / len(batch) * 1e6
    # As the feed's queue holds them at a busy time: consecutive messages of several rooms.
    mixed = made[-len(made) // 4 : -len(made) // 8]
    cpu, wall = time.process_time(), time.perf_counter()
    for start in range(0, len(mixed), 10):
        indexer.apply(mixed[start : start + 10])
    mixed_cpu = (time.process_time() - cpu) / len(mixed) * 1e6
    mixed_wall = (time.perf_counter() - wall) / len(mixed) * 1e6
    # What the feed gathers in GATHER_SECONDS at 100 msg/s over 20 rooms (bench.run's 20
    # rooms of 10): about 5 messages, in about 5 rooms.
    gathered = made[-len(made) // 8 :]
    size = max(1, round(100 * indexer.GATHER_SECONDS))
    cpu, wall = time.process_time(), time.perf_counter()
    for start in range(0, len(gathered), size):
        indexer.apply(gathered[start : start + size])
    gathered_cpu = (time.process_time() - cpu) / len(gathered) * 1e6
    gathered_wall = (time.perf_counter() - wall) / len(gathered) * 1e6
    assert indexer.lag().events_behind == 0

    p50, p95 = _percentile(timings, 0.5), _percentile(timings, 0.95)
    e50, e95 = _percentile(engine_only, 0.5), _percentile(engine_only, 0.95)
    load = os.getloadavg()[0]
    print(f"engine {engine}: {args.messages:,} messages, {args.rooms} rooms, user reads {len(readable)}")
    print(
        f"  {len(queries)} queries through the service: p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {max(timings):.1f} ms"
    )
    c50, c95 = _percentile(cpu_times, 0.5), _percentile(cpu_times, 0.95)
    print(f"  the same, this process's CPU: p50 {c50:.1f} ms, p95 {c95:.1f} ms")
    print(f"  engine query alone: p50 {e50:.1f} ms, p95 {e95:.1f} ms; {hits / len(queries):.1f} results a query")
    print(f"  slowest: {', '.join(f'{q!r} {t:.0f} ms' for t, q in worst)}")
    print(f"  indexing a message, batches of 1: {single_cpu:.0f} µs CPU ({single_wall:.0f} µs wall)")
    print(f"  indexing a message, batches of 10: {batch_cpu:.0f} µs CPU ({batch_wall:.0f} µs wall)")
    print(f"  indexing a message, batches of 10 over 10 rooms: {mixed_cpu:.0f} µs CPU ({mixed_wall:.0f} µs wall)")
    print(
        f"  indexing a message, batches of {size} over {size} rooms (the feed's gathering at 100 msg/s):"
        f" {gathered_cpu:.0f} µs CPU ({gathered_wall:.0f} µs wall)"
    )
    print(f"  storing a message (the store's append, no indexing): {store_cpu:.0f} µs CPU")
    print(f"  load average {load:.2f} on {os.cpu_count()} CPUs")
    return 0 if p95 < GOAL_P95_MS else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--rooms", type=int, default=1_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--index-messages", type=int, default=2_000)
    parser.add_argument("--keep", default=str(ROOT / "var" / "bench" / "search"), help="data directory (kept)")
    parser.add_argument("--reuse", action="store_true", help="reuse data a previous run generated")
    args = parser.parse_args()
    if args.engine != "both":
        return run(args.engine, args)
    status = 0
    for engine in ("sqlite", "postgresql"):
        # One process per engine: Django's settings (the database) are read once.
        rest = sys.argv[1:]
        rest = [a for i, a in enumerate(rest) if a != "--engine" and (i == 0 or rest[i - 1] != "--engine")]
        status |= subprocess.call([sys.executable, "-m", "bench.search", *rest, "--engine", engine], cwd=ROOT)
    return status


if __name__ == "__main__":
    sys.exit(main())
