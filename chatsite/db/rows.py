"""Statements written out for the hot paths, with the ORM's own value rules.

Every message a user sends reads its room, inserts a row, and counts itself for the
dashboard, each in one statement; every socket opened checks bans, writes its row and reads
its user's rooms. Through the ORM each such statement spent longer being built (the query's
compiler, a model's save) than the database spent running it: a message's trip took 1.44 ms
of CPU on this machine, 0.79 ms written out (docs/performance.md, "A message's statements
written out"). The statements here are built once per model and database, and values go in
and out through the field's own methods (`get_db_prep_save`, the converters the compiler
would apply: SQLite's text datetimes and integer booleans), so a row reads and writes exactly
as through the ORM. One text serves SQLite (3.35+) and PostgreSQL: `ON CONFLICT`, `excluded`.
The converters kept are the backend's own functions; of the connection they were built on
they use only its time zone, which every connection to that database shares.

Names come from the model's _meta, quoted by the backend; values are always parameters.

Each statement looks the default connection up once (`default`) and hands that object to the
fields and converters: `django.db.connection` is a proxy that finds the thread's connection
again on every attribute, and a field's value preparation asks it several times, so through
the proxy a message's 24 values took about twice the CPU (docs/performance.md).

On SQLite a statement runs on the sqlite3 connection itself (`fetch`), its text converted to
sqlite3's placeholders once: Django's cursor wrapper converted it with a regular expression
and wrapped a new cursor on every statement, a tenth of a small room's server samples. The
checks that wrapper makes are made (the thread, a broken transaction, errors translated to
Django's); with query logging on (DEBUG, a test capturing queries) or an execute wrapper
installed, statements go through Django's cursor as before, so they are logged and wrapped.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.sqlite3.base import FORMAT_QMARK_REGEX
from django.db.models import Field, Model
from django.utils.asyncio import async_unsafe

Converter = tuple[Any, list[Any]]


def default() -> BaseDatabaseWrapper:
    """This thread's default connection itself, for a caller that hands it to `fetch`."""
    return connections[DEFAULT_DB_ALIAS]


@functools.lru_cache(maxsize=256)
def _qmark(sql: str) -> str:
    """A statement's text with sqlite3's placeholders (`SQLiteCursorWrapper.convert_query`)."""
    return FORMAT_QMARK_REGEX.sub("?", sql).replace("%%", "%")


def _direct(db: BaseDatabaseWrapper) -> bool:
    """Whether a statement runs on the sqlite3 connection itself, after the checks Django's
    cursor makes (made here): on SQLite, with no query logging and no execute wrapper."""
    if db.vendor != "sqlite" or db.queries_logged or db.execute_wrappers:
        return False
    db.close_if_health_check_failed()
    db.ensure_connection()
    db.validate_thread_sharing()
    db.validate_no_broken_transaction()
    return True


@async_unsafe
def fetch(db: BaseDatabaseWrapper, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Run one statement (SQL with %s parameters) on `db` and return its rows ([] for a
    statement that returns none). On SQLite without query logging or execute wrappers, on the
    sqlite3 connection itself, after the checks Django's cursor makes; else through it."""
    if not _direct(db):
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description is not None else []
    with db.wrap_database_errors:
        return db.connection.execute(_qmark(sql), params).fetchall()  # type: ignore[no-any-return]


@async_unsafe
def run_many(db: BaseDatabaseWrapper, sql: str, param_list: Sequence[Sequence[Any]]) -> None:
    """Run one statement (SQL with %s parameters, returning no rows) once for each parameter
    list: `executemany`, on the sqlite3 connection itself as `fetch` runs one statement."""
    if not param_list:
        return
    if not _direct(db):
        with db.cursor() as cursor:
            cursor.executemany(sql, param_list)
        return
    with db.wrap_database_errors:
        db.connection.executemany(_qmark(sql), param_list)


def _fields(model: type[Model], names: Sequence[str]) -> list[Field[Any, Any]]:
    found: list[Field[Any, Any]] = []
    for name in names:
        field = model._meta.get_field(name)
        assert isinstance(field, Field), f"{model.__name__}.{name} is not a concrete field"
        found.append(field)
    return found


def column(model: type[Model], name: str) -> str:
    """The quoted column of `model`'s field `name`."""
    return _column(connection.vendor, model, name)


@functools.cache
def _column(vendor: str, model: type[Model], name: str) -> str:
    return connection.ops.quote_name(str(_fields(model, [name])[0].column))


def table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _converters(fields: Sequence[Field[Any, Any]], table_name: str) -> list[Converter]:
    """Each field's column expression and the converters this database's values go through
    (what the ORM's compiler applies)."""
    found: list[Converter] = []
    for field in fields:
        col = field.get_col(table_name)
        found.append((col, connection.ops.get_db_converters(col) + field.get_db_converters(connection)))
    return found


def _converted(row: Sequence[Any], found: list[Converter], db: BaseDatabaseWrapper) -> list[Any]:
    """A row's values as the ORM would give them."""
    values = list(row)
    for index, (col, functions) in enumerate(found):
        for convert in functions:
            values[index] = convert(values[index], col, db)
    return values


@functools.cache
def _select(vendor: str, model: type[Model], names: tuple[str, ...]) -> tuple[str, list[Converter]]:
    fields = _fields(model, names)
    columns = ", ".join(connection.ops.quote_name(str(field.column)) for field in fields)
    return f"SELECT {columns} FROM {table(model)}", _converters(fields, model._meta.db_table)  # noqa: S608


def select(
    model: type[Model],
    names: Sequence[str],
    *,
    where: str,
    params: Sequence[Any],
    order: str = "",
    limit: int | None = None,
    lock: bool = False,
) -> list[dict[str, Any]]:
    """The rows of `model` matching `where` (SQL with %s parameters, its columns quoted by
    the caller with `column`), as {field name: value}, in `order` (an ORDER BY's SQL, made
    the same way), at most `limit`. `lock`: FOR UPDATE where the database has it (SQLite's
    write lock is the transaction's already)."""
    key = tuple(names)
    db = default()
    sql, found = _select(db.vendor, model, key)
    sql = f"{sql} WHERE {where}"
    params = list(params)
    if order:
        sql += f" ORDER BY {order}"
    if limit is not None:
        sql += " LIMIT %s"
        params.append(limit)
    if lock and db.features.has_select_for_update:
        sql += " FOR UPDATE"
    return [dict(zip(key, _converted(row, found, db), strict=True)) for row in fetch(db, sql, params)]


# How many rows one INSERT carries (a handful of parameters each: far under SQLite's 32,766
# and PostgreSQL's 65,535).
ROWS_PER_STATEMENT = 500


@functools.cache
def _insert(
    vendor: str,
    model: type[Model],
    names: tuple[str, ...],
    conflict: tuple[str, ...],
    update: tuple[str, ...],
    add: bool,
) -> tuple[str, str, str, list[Field[Any, Any]]]:
    """The statement's head, one row's placeholders and its tail (ON CONFLICT ...), and the fields."""
    fields = _fields(model, names)
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(field.column)) for field in fields)
    head = f"INSERT INTO {table(model)} ({columns}) VALUES "  # noqa: S608
    group = "(" + ", ".join(["%s"] * len(fields)) + ")"
    tail = ""
    if conflict:
        keys = ", ".join(column(model, name) for name in conflict)
        if add:
            sets = ", ".join(
                f"{column(model, name)} = {table(model)}.{column(model, name)} + excluded.{column(model, name)}"
                for name in update
            )
        else:
            sets = ", ".join(f"{column(model, name)} = excluded.{column(model, name)}" for name in update)
        tail = f" ON CONFLICT ({keys}) DO UPDATE SET {sets}"
    return head, group, tail, fields


def _write(
    db: BaseDatabaseWrapper, statement: tuple[str, str, str, list[Field[Any, Any]]], rows: Sequence[Mapping[str, Any]]
) -> None:
    head, group, tail, fields = statement
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start : start + ROWS_PER_STATEMENT]
        params = [field.get_db_prep_save(values[field.name], db) for values in chunk for field in fields]
        fetch(db, head + ", ".join([group] * len(chunk)) + tail, params)


def upsert(
    model: type[Model], rows: Sequence[Mapping[str, Any]], *, conflict: Iterable[str] = (), update: Iterable[str] = ()
) -> None:
    """INSERT rows of `model` (each naming the same fields, by field name); with `conflict`,
    a row that exists with those keys gets the `update` fields of the new row instead (ON
    CONFLICT DO UPDATE). Without `conflict` a duplicate raises IntegrityError, as a save
    would. Rows with the same conflict keys must not come twice in one call."""
    if not rows:
        return
    names = tuple(rows[0])
    db = default()
    _write(db, _insert(db.vendor, model, names, tuple(conflict), tuple(update), False), rows)


def add(model: type[Model], keys: Mapping[str, Any], increments: Mapping[str, int]) -> None:
    """INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n: a counter bumped in one
    statement, race-free on SQLite and PostgreSQL alike (two processes counting the same row
    never lose a count)."""
    values = {**keys, **increments}
    db = default()
    _write(db, _insert(db.vendor, model, tuple(values), tuple(keys), tuple(increments), True), [values])


def insert(instance: Model) -> None:
    """INSERT a model instance made in Python (its defaults filled in by its __init__), every
    concrete field as given: `Model.objects.create` without building the query each time.
    No signals are sent and no primary key is generated: for models whose key the caller sets."""
    model = type(instance)
    names = tuple(field.name for field in model._meta.concrete_fields)
    db = default()
    head, group, _, fields = _insert(db.vendor, model, names, (), (), False)
    params = [field.get_db_prep_save(field.pre_save(instance, True), db) for field in fields]
    fetch(db, head + group, params)
