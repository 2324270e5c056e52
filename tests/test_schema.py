"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL.

A column added to a model without a migration (or a migration that differs from its model) would
work in tests that create tables from the models and fail on a real database after
``evalbot db upgrade``; this compares the two the way Alembic's autogenerate does.
"""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, select

import surveys.models  # noqa: F401  (registers every table)
from surveys.models import Person


def _differences(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))


def test_the_migrated_sqlite_schema_matches_the_models(engine: Engine) -> None:
    assert _differences(engine) == []


def test_the_migrated_postgresql_schema_matches_the_models(postgres_engine: Engine) -> None:
    assert _differences(postgres_engine) == []


def _chat_taken_twice(engine: Engine) -> None:
    """A Telegram chat belongs to one person at most; any number of people have none."""
    with Session(engine) as session:
        session.add_all([Person(name=f"P{n}", email=f"p{n}@x.example") for n in range(3)])
        session.commit()
        first, second, _ = session.exec(select(Person).order_by(Person.id)).all()  # type: ignore[arg-type]
        first.telegram_chat_id = 4242
        session.commit()
        second.telegram_chat_id = 4242
        with pytest.raises(IntegrityError):
            session.commit()


def test_a_chat_belongs_to_one_person_on_sqlite(engine: Engine) -> None:
    _chat_taken_twice(engine)
    with engine.connect() as connection:
        made = connection.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE name = 'ix_person_telegram_chat_id'"
        ).scalar()
    assert made is not None and "WHERE telegram_chat_id IS NOT NULL" in made


def test_a_chat_belongs_to_one_person_on_postgresql(postgres_engine: Engine) -> None:
    _chat_taken_twice(postgres_engine)
