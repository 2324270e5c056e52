"""Planning's bulk writes: ``INSERT ... ON CONFLICT`` of many rows at once, their values bound
here rather than by SQLAlchemy (see ``_bulk_insert``), by the same converters as the
import's (``surveys.bulk.converter``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy import column as sa_column
from sqlalchemy import table as sa_table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from surveys.bulk import converter


def _bulk_insert(
    session: Session,
    table: Table,
    rows: list[dict[str, Any]],
    unique: str | list[str],
    refresh: list[str],
) -> int:
    """``INSERT ... ON CONFLICT (unique)``: do nothing, or update the ``refresh`` columns.

    Planning writes hundreds of thousands of rows after a big import, where SQLAlchemy's
    per-value work would cost more than the database's: the rows' values are turned here into
    what their column types would store, and on SQLite the compiled statement goes straight to
    the driver's ``executemany``. ``rows`` are changed in place. Returns the rows written.
    """
    dialect = session.get_bind().dialect
    names = list(rows[0])
    unique = [unique] if isinstance(unique, str) else unique
    plain = sa_table(table.name, *(sa_column(name) for name in names))
    insert_for = pg_insert if dialect.name == "postgresql" else sqlite_insert
    statement = insert_for(plain)
    if refresh:
        statement = statement.on_conflict_do_update(
            index_elements=unique, set_={name: statement.excluded[name] for name in refresh}
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=unique)
    converters = [
        (name, convert)
        for name in names
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
        return session.connection().exec_driver_sql(str(compiled), params).rowcount
    result = session.execute(statement, rows[0] if len(rows) == 1 else rows)
    return int(result.rowcount)  # type: ignore[attr-defined]
