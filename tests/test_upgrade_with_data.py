"""`evalbot db upgrade` on a SQLite database in use: answers, messages and links point to the
survey invitations that a migration rebuilds. The upgrade keeps every row and every reference,
and a migration that fails part-way leaves the database as it was."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from bot.cli import app
from surveys import db
from surveys.models import Answer, OutboxMessage, Stage, SurveyInvitation
from tests.conftest import World, utc

BEFORE_TRAINERS = "0003_survey_variants"


def in_use(engine: Engine) -> dict[str, int]:
    """A database with delegates' invitations, an answer and a message pointing to them."""
    with Session(engine) as session:
        people = World(session).standard()
        invitation = SurveyInvitation(
            booking_id=people["alice_booking"].id,
            person_id=people["alice"].id,
            stage=Stage.END,
            opens_at=utc("2026-03-16 16:30"),
            closes_at=utc("2026-03-23 16:30"),
        )
        session.add(invitation)
        session.flush()
        session.add(
            Answer(
                invitation_id=invitation.id,
                question_key="satisfaction",
                item="satisfaction",
                value_num=5,
                answered_at=utc("2026-03-16 17:00"),
            )
        )
        session.add(
            OutboxMessage(
                idempotency_key="invitation:end:1",
                person_id=people["alice"].id,
                channel="email",
                recipient="alice.okafor@riverside.example",
                template="survey-invitation",
                context={},
                due_at=utc("2026-03-16 16:30"),
                available_at=utc("2026-03-16 16:30"),
                invitation_id=invitation.id,
            )
        )
        session.commit()
    return counts(engine)


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("survey_invitation", "answer", "outbox", "booking")
        }


def foreign_keys_hold(engine: Engine) -> bool:
    with engine.connect() as connection:
        enforced = connection.exec_driver_sql("PRAGMA foreign_keys").scalar()
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    return enforced == 1 and broken == []


def test_the_upgrade_keeps_answers_and_messages_pointing_to_their_invitations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'evalbot.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    held = in_use(engine)
    db.migrate(engine, command.downgrade, BEFORE_TRAINERS)  # as a database of the last release
    assert db.stored_revision(engine) == BEFORE_TRAINERS and counts(engine) == held

    monkeypatch.setenv("EVALBOT_DATABASE_URL", url)
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert f"Upgraded the database from {BEFORE_TRAINERS} to revision" in result.output
    assert counts(engine) == held, "no row lost"
    assert foreign_keys_hold(engine), "every reference holds, and is enforced again"
    assert "session_id" in {c["name"] for c in inspect(engine).get_columns("survey_invitation")}
    engine.dispose()


def test_a_migration_that_fails_part_way_changes_nothing(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'evalbot.db'}")
    db.upgrade(engine)
    held = in_use(engine)
    db.migrate(engine, command.downgrade, BEFORE_TRAINERS)

    def upgrade_then_fail(config: Config, revision: str) -> None:
        command.upgrade(config, revision)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        db.migrate(engine, upgrade_then_fail, "head")
    assert db.stored_revision(engine) == BEFORE_TRAINERS
    tables = inspect(engine).get_table_names()
    assert not [name for name in tables if name.startswith("_alembic")], "no half-built table"
    assert "session_id" not in {c["name"] for c in inspect(engine).get_columns("survey_invitation")}
    assert counts(engine) == held and foreign_keys_hold(engine)
    assert db.upgrade(engine)[1] == db.head_revision(), "and it upgrades afterwards"
    engine.dispose()


def test_the_upgrade_holds_the_write_lock_from_its_first_step(tmp_path: Path) -> None:
    """A tick or the web app writing during an upgrade waits for it (SQLite's busy timeout)
    rather than making it fail part-way with "database is locked" once it has read."""
    import sqlite3

    path = tmp_path / "evalbot.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    held = in_use(engine)
    db.migrate(engine, command.downgrade, BEFORE_TRAINERS)
    refused: list[str] = []

    def read_then_upgrade(config: Config, revision: str) -> None:
        connection = config.attributes["connection"]
        connection.exec_driver_sql("SELECT version_num FROM alembic_version").all()
        writer = sqlite3.connect(path, timeout=0)  # another process, not willing to wait
        try:
            writer.execute("UPDATE person SET name = name")
        except sqlite3.OperationalError as error:
            refused.append(str(error))
        finally:
            writer.close()
        command.upgrade(config, revision)

    db.migrate(engine, read_then_upgrade, "head")
    assert refused == ["database is locked"], "the writer would have waited for the upgrade"
    assert db.stored_revision(engine) == db.head_revision() and counts(engine) == held
    engine.dispose()
