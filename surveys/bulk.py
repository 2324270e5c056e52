"""Writing many rows at once, with each value turned once into what its column stores.

SQLAlchemy's per-value work (type processors, the ORM's unit of work) costs more than the
database's for tens of thousands of rows; here values are converted by their column's type and,
on SQLite, the compiled statement goes straight to the driver's ``executemany``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import JSON, Connection, Index, Table, bindparam, func, insert, select, update
from sqlalchemy import column as sa_column
from sqlalchemy import table as sa_table
from sqlalchemy.sql.dml import UpdateBase
from sqlmodel import Session

from surveys.models import UTCDateTime


@contextmanager
def indexes_built_after(session: Session, indexes: Sequence[Index]) -> Iterator[None]:
    """Rows written in the block into a table that is empty at its start have those of
    ``indexes`` on it built once the block ends, rather than kept in order row by row.

    SQLite only, where the indexes are dropped and made again in the caller's transaction: they
    commit or roll back with the rows, and other connections keep reading the snapshot they
    have. Should the block raise, they are left to the caller's rollback, which restores them
    (as it undoes the rows). On PostgreSQL dropping an index would lock the table against
    readers: nothing is done. Queries in the block get no help from the indexes given.
    """
    if session.get_bind().dialect.name != "sqlite":
        yield
        return
    connection = session.connection()
    # Locked first: a table seen empty stays so but for the caller's rows (another writer's
    # rows would be looked up without the indexes), and the indexes are dropped in the
    # caller's transaction, not for good at once.
    write_lock(connection)
    empty = {
        table.name
        for table in {index.table for index in indexes if index.table is not None}
        if connection.execute(select(table.c.id).limit(1)).first() is None
    }
    later = [index for index in indexes if index.table is not None and index.table.name in empty]
    for index in later:
        index.drop(connection)
    yield
    for index in later:
        index.create(connection)


def write_lock(connection: Connection) -> None:
    """On SQLite, begin the transaction now, holding the database's write lock.

    Python's sqlite3 begins a transaction only as a row is written: a statement before that
    (a schema change, a read a write depends on) would run on its own, outside it.
    """
    driver = connection.connection.dbapi_connection
    if connection.dialect.name == "sqlite" and driver is not None and not driver.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def insert_new(
    session: Session,
    table: Table,
    key: str,
    names: Sequence[str],
    rows: Sequence[Sequence[Any]],
    same: Mapping[str, Any] | None = None,
) -> dict[Any, int]:
    """``insert_many``, and each new row's id by its value of ``key`` (a unique column among
    ``names``).

    Every new id is above the largest before the insert. On SQLite the ids are given here,
    the largest read while holding the write lock, so that no other connection can add a row
    between; nothing is read back. PostgreSQL takes its ids from a sequence, which only rises,
    and they are read back in one query.
    """
    if not rows:
        return {}
    column = table.c.id
    write_lock(session.connection())
    before = session.execute(select(func.max(column))).scalar() or 0
    at = list(names).index(key)
    if session.get_bind().dialect.name == "sqlite":
        ids = range(before + 1, before + 1 + len(rows))
        insert_many(
            session,
            table,
            ("id", *names),
            [(i, *row) for i, row in zip(ids, rows, strict=True)],
            same,
        )
        return {row[at]: i for i, row in zip(ids, rows, strict=True)}
    insert_many(session, table, names, rows, same)
    wanted = {row[at] for row in rows}
    query = select(column, table.c[key]).where(column > before)
    return {value: id_ for id_, value in session.execute(query) if value in wanted}


def insert_many(
    session: Session,
    table: Table,
    names: Sequence[str],
    rows: Iterable[Sequence[Any]],
    same: Mapping[str, Any] | None = None,
) -> None:
    """``INSERT`` a row for each of ``rows``: values for ``names``, in order, as Python values
    (converted here), with ``same`` in every row (its columns not in ``names``).

    On SQLite, ``same`` is written into the statement once, and only ``rows`` are bound.
    """
    dialect = session.get_bind().dialect
    converters = [
        (at, convert)
        for at, name in enumerate(names)
        if (convert := converter(table.c[name].type, dialect.name)) is not None
    ]
    if converters:
        rows = [_converted(row, converters) for row in rows]
    fixed = {
        name: value if value is None or convert is None else convert(value)
        for name, value in (same or {}).items()
        if name not in names
        for convert in [converter(table.c[name].type, dialect.name)]
    }
    if dialect.name != "sqlite":
        statement = insert(sa_table(table.name, *(sa_column(n) for n in [*names, *fixed])))
        params = [{**dict(zip(names, row, strict=True)), **fixed} for row in rows]
        if params:
            session.execute(statement, params)
        return
    listed = ", ".join(_quoted(name) for name in [*names, *fixed])
    values = ", ".join(["?"] * len(names) + [_sqlite_literal(value) for value in fixed.values()])
    sql = f"INSERT INTO {_quoted(table.name)} ({listed}) VALUES ({values})"
    bound = rows if isinstance(rows, list) else list(rows)
    if bound:
        session.connection().exec_driver_sql(sql, bound)


def _converted(
    row: Sequence[Any], converters: list[tuple[int, Callable[[Any], Any]]]
) -> tuple[Any, ...]:
    values = list(row)
    for at, convert in converters:
        if values[at] is not None:
            values[at] = convert(values[at])
    return tuple(values)  # as the driver is given them


def _quoted(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a plain table or column name: {name!r}")
    return f'"{name}"'


def _sqlite_literal(value: Any) -> str:
    """A value written into SQLite's SQL (numbers, text, NULL)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool | int):
        return str(int(value))
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"cannot write {type(value).__name__} into SQLite's SQL")


def update_rows(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """``UPDATE ... WHERE id = :id`` for each row (all with the same keys, ``id`` among them)."""
    if not rows:
        return
    names = list(rows[0])
    plain = sa_table(table.name, *(sa_column(name) for name in names))
    statement = (
        update(plain)
        .where(plain.c.id == bindparam("id_"))
        .values({name: bindparam(name) for name in names if name != "id"})
    )
    for row in rows:
        row["id_"] = row.pop("id")
    execute_rows(session, table, statement, rows)


def execute_rows(
    session: Session, table: Table, statement: UpdateBase, rows: list[dict[str, Any]]
) -> int:
    """Run ``statement`` (on a plain table of ``table``'s columns, so SQLAlchemy converts
    nothing) once for each of ``rows``, their values turned here, in place, into what
    ``table``'s columns store. On SQLite the compiled statement goes straight to the driver's
    ``executemany``. Returns the rows the database says it wrote."""
    dialect = session.get_bind().dialect
    converters = [
        (name, convert)
        for name in rows[0]
        if name in table.c
        if (convert := converter(table.c[name].type, dialect.name)) is not None
    ]
    for row in rows:
        for name, convert in converters:
            value = row[name]
            if value is not None:
                row[name] = convert(value)
    if dialect.name == "sqlite" and len(rows) > 1:
        compiled = statement.compile(dialect=dialect)
        order = compiled.positiontup or []
        params = [tuple(row[name] for name in order) for row in rows]
        return int(session.connection().exec_driver_sql(str(compiled), params).rowcount)
    result = session.execute(statement, rows[0] if len(rows) == 1 else rows)
    return int(result.rowcount)  # type: ignore[attr-defined]


def converter(column_type: Any, dialect: str) -> Callable[[Any], Any] | None:
    """What a column type does to a value when binding it, for the types written in bulk."""
    if isinstance(column_type, UTCDateTime):
        return sqlite_time if dialect == "sqlite" else _utc
    if isinstance(column_type, JSON):
        return json.dumps
    return None


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


@lru_cache(maxsize=8192)
def sqlite_time(value: datetime) -> str:
    """As SQLAlchemy stores a datetime in SQLite (the bookings of a session share their times)."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def select_in(
    session: Session, query: str, values: list[Any], size: int = 2000
) -> Iterator[tuple[Any, ...]]:
    """Rows of ``query`` (SQL ending in ``WHERE <column>``) for each of ``values``, as the
    driver gives them (tuples, times as SQLite's text or PostgreSQL's datetimes).

    Built as text so thousands of values cost one parameter each: ``IN (?, ...)`` on SQLite, one
    array parameter (``= ANY(...)``) on PostgreSQL. Read with the driver's own cursor: a
    re-import reads a row for each of tens of thousands of bookings and people, and SQLAlchemy's
    result rows would cost more than the query.
    """
    connection = session.connection()
    postgres = connection.dialect.name == "postgresql"
    cursor = connection.connection.cursor()
    try:
        for start in range(0, len(values), size):
            chunk = values[start : start + size]
            if postgres:
                cursor.execute(f"{query} = ANY(%s)", (chunk,))
            else:
                cursor.execute(f"{query} IN ({', '.join('?' * len(chunk))})", chunk)
            yield from cursor.fetchall()
    finally:
        cursor.close()
