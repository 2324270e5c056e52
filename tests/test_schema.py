"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL.

A column added to a model without a migration (or a migration that differs from its model) would
work in tests that create tables from the models and fail on a real database after
``evalbot db upgrade``; this compares the two the way Alembic's autogenerate does.
"""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

import surveys.models  # noqa: F401  (registers every table)


def _differences(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))


def test_the_migrated_sqlite_schema_matches_the_models(engine: Engine) -> None:
    assert _differences(engine) == []


def test_the_migrated_postgresql_schema_matches_the_models(postgres_engine: Engine) -> None:
    assert _differences(postgres_engine) == []
