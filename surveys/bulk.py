"""Writing many rows at once, with each value turned once into what its column stores.

SQLAlchemy's per-value work (type processors, the ORM's unit of work) costs more than the
database's for tens of thousands of rows; here values are converted by their column's type and,
on SQLite, the compiled statement goes straight to the driver's ``executemany``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, Row, Table, bindparam, insert, update
from sqlalchemy import column as sa_column
from sqlalchemy import table as sa_table
from sqlmodel import Session

from surveys.models import UTCDateTime


def insert_rows(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """``INSERT`` every row (all with the same keys)."""
    if not rows:
        return
    names = list(rows[0])
    plain = sa_table(table.name, *(sa_column(name) for name in names))
    _execute(session, table, insert(plain), names, rows)


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
    _execute(session, table, statement, [*(n for n in names if n != "id"), "id_"], rows)


def _execute(
    session: Session, table: Table, statement: Any, names: list[str], rows: list[dict[str, Any]]
) -> None:
    dialect = session.get_bind().dialect
    converters = [
        (name, convert)
        for name in names
        if (convert := converter(table.c[name.removesuffix("_")].type, dialect.name)) is not None
    ]
    for row in rows:
        for name, convert in converters:
            value = row[name]
            if value is not None:
                row[name] = convert(value)
    if dialect.name == "sqlite":
        compiled = statement.compile(dialect=dialect)
        order = compiled.positiontup or []
        values = itemgetter(*order) if len(order) > 1 else lambda row: (row[order[0]],)
        params = [values(row) for row in rows]
        session.connection().exec_driver_sql(str(compiled), params)
    else:
        session.execute(statement, rows)


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
) -> Iterator[Row[Any]]:
    """Rows of ``query`` (SQL ending in ``WHERE <column>``) for each of ``values``.

    Built as text so thousands of values cost one parameter each: ``IN (?, ...)`` on SQLite, one
    array parameter (``= ANY(...)``) on PostgreSQL.
    """
    connection = session.connection()
    postgres = connection.dialect.name == "postgresql"
    for start in range(0, len(values), size):
        chunk = values[start : start + size]
        if postgres:
            yield from connection.exec_driver_sql(f"{query} = ANY(%(values)s)", {"values": chunk})
        else:
            marks = ", ".join("?" * len(chunk))
            yield from connection.exec_driver_sql(f"{query} IN ({marks})", tuple(chunk))
