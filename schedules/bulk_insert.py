"""Planning's bulk writes: ``INSERT ... ON CONFLICT`` of many rows at once, their values bound
as the import's are (``surveys.bulk.execute_rows``) rather than by SQLAlchemy."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy import column as sa_column
from sqlalchemy import table as sa_table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from surveys.bulk import execute_rows


def _bulk_insert(
    session: Session,
    table: Table,
    rows: list[dict[str, Any]],
    unique: str | list[str],
    refresh: list[str],
) -> int:
    """``INSERT ... ON CONFLICT (unique)``: do nothing, or update the ``refresh`` columns.

    Planning writes hundreds of thousands of rows after a big import, where SQLAlchemy's
    per-value work would cost more than the database's (``execute_rows``). ``rows`` are changed
    in place. Returns the rows written.
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
    return execute_rows(session, table, statement, rows)
