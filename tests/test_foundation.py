"""Migrations, the schema check, settings and the command line's first impression."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from sqlalchemy import inspect
from typer.testing import CliRunner

from bot.cli import AREAS, app, build
from bot.settings import SettingsError, load_settings
from surveys import db

runner = CliRunner()


def test_upgrade_builds_every_table_on_empty_sqlite(tmp_path: Path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    before, after = db.upgrade(engine)
    assert before is None and after == db.head_revision()
    tables = set(inspect(engine).get_table_names())
    assert {
        "agency",
        "person",
        "course",
        "course_session",
        "booking",
        "survey_invitation",
        "answer",
        "outbox",
        "campaign",
        "link",
        "audit_log",
        "survey_definition_version",
    } <= tables
    assert db.upgrade(engine) == (after, after)  # a second upgrade changes nothing
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA page_size").scalar() == 8192


def test_a_database_made_with_smaller_pages_keeps_them(tmp_path: Path):
    path = tmp_path / "older.db"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA page_size=4096")
        connection.execute("PRAGMA journal_mode=WAL")
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA page_size").scalar() == 4096
        assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"


def test_upgrade_on_postgres(postgres_engine):
    assert db.current_revision(postgres_engine) == db.head_revision()
    assert db.stored_revision(postgres_engine) == db.head_revision()
    assert "booking" in inspect(postgres_engine).get_table_names()


def test_the_schema_check_reads_what_alembic_reads(tmp_path: Path):
    """Every command checks the schema without loading alembic: the revisions it reads are
    alembic's, for the migration files and for an empty, a migrated and an older database."""
    assert db.newest_revision() == db.head_revision() is not None
    engine = db.make_engine(f"sqlite:///{tmp_path / 'check.db'}")
    assert db.stored_revision(engine) is None is db.current_revision(engine)
    db.upgrade(engine)
    assert db.stored_revision(engine) == db.current_revision(engine) == db.head_revision()
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0002'")
    assert db.stored_revision(engine) == db.current_revision(engine) == "0002"
    with pytest.raises(db.SchemaOutOfDate, match="is at schema revision 0002"):
        db.ensure_current(engine)


def test_commands_refuse_an_out_of_date_database(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("EVALBOT_DATABASE_URL", f"sqlite:///{tmp_path / 'old.db'}")
    (tmp_path / "old.db").touch()  # a file with no schema yet (no file at all: see status)
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 2
    assert "Run `evalbot db upgrade` first" in result.output
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    assert runner.invoke(app, ["status"]).exit_code == 0


def test_bad_setting_names_it_and_says_what_is_allowed(monkeypatch):
    monkeypatch.setenv("EVALBOT_SMTP_SECURITY", "ssl")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "EVALBOT_SMTP_SECURITY" in str(caught.value) and "'starttls'" in str(caught.value)
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 2 and "EVALBOT_SMTP_SECURITY" in result.output


def test_unknown_time_zone(monkeypatch):
    monkeypatch.setenv("EVALBOT_TIMEZONE", "Europe/Londres")
    with pytest.raises(SettingsError, match=r"EVALBOT_TIMEZONE: .*unknown time zone"):
        load_settings()


def test_secret_from_file_and_settings_from_toml(tmp_path: Path, monkeypatch):
    secret = tmp_path / "smtp-password"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("EVALBOT_SMTP_PASSWORD_FILE", str(secret))
    (tmp_path / "evalbot.toml").write_text(
        'timezone = "Europe/Dublin"\nsmtp_host = "smtp.example"\n'
    )
    monkeypatch.setenv("EVALBOT_SMTP_HOST", "relay.example")  # the environment wins
    settings = load_settings()
    assert settings.smtp_password is not None
    assert settings.smtp_password.get_secret_value() == "s3cret"
    assert settings.timezone == "Europe/Dublin" and settings.smtp_host == "relay.example"


def test_unreadable_secret_file_and_unknown_toml_key(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("EVALBOT_TELEGRAM_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(SettingsError, match="EVALBOT_TELEGRAM_TOKEN_FILE: cannot read"):
        load_settings()
    monkeypatch.delenv("EVALBOT_TELEGRAM_TOKEN_FILE")
    (tmp_path / "evalbot.toml").write_text("smtp_hots = 'typo'\n")
    with pytest.raises(SettingsError, match="EVALBOT_SMTP_HOTS: not a setting Evalbot knows"):
        load_settings()


def test_python_dash_m_bot_is_the_same_command():
    result = subprocess.run(
        [sys.executable, "-m", "bot", "--help"], capture_output=True, text=True, check=True
    )
    assert "import" in result.stdout and "status" in result.stdout


def test_each_command_is_found_in_the_area_that_loads_it():
    """`evalbot CMD` from the shell loads only the module that defines CMD (``AREAS``): every
    command must be listed there, once."""
    for area, names in AREAS.items():
        assert set(typer.main.get_command(build((area,))).commands) == set(names), area
    every = [name for names in AREAS.values() for name in names]
    assert sorted(typer.main.get_command(build()).commands) == sorted(every)


def test_an_import_run_from_the_shell(tmp_path: Path):
    env = {**os.environ, "EVALBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'shell.db'}"}
    for command in (["db", "upgrade"], ["import", "bookings", "examples/bookings.csv"]):
        result = subprocess.run(
            [sys.executable, "-m", "bot", *command],
            capture_output=True,
            text=True,
            env=env,
            cwd=Path(__file__).resolve().parent.parent,
        )
        assert result.returncode == 0, result.stderr
    assert "Imported 8 booking rows" in result.stdout
    # The command ends without Python's teardown (``bot.cli.leave``), but with its work done:
    # its connection closed, so SQLite's write-ahead log is back in the database file.
    assert not (tmp_path / "shell.db-wal").exists()
    with sqlite3.connect(tmp_path / "shell.db") as connection:
        assert connection.execute("select count(*) from booking").fetchone() == (8,)
    missing = subprocess.run(
        [sys.executable, "-m", "bot", "import", "bookings", str(tmp_path / "nowhere.csv")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert missing.returncode == 1
    assert "nowhere.csv" in missing.stdout + missing.stderr


def test_an_import_loads_neither_the_templates_nor_the_bank_holidays(tmp_path: Path):
    """Settings and policy load for every command; what only rendering (Jinja), a send time
    (holidays, dateutil) or PostgreSQL needs is loaded when first used, not by every command's
    start. The command runs with the cycle collector on, the objects of its start set aside."""
    url = f"sqlite:///{tmp_path / 'lean.db'}"
    db.upgrade(db.make_engine(url))
    unused = {"jinja2", "holidays", "dateutil", "xml", "sqlalchemy.dialects.postgresql"}
    script = (  # the command ends by running what is registered to run at exit
        "import atexit, gc, sys\n"
        "atexit.register(\n"
        f"    lambda: print(sorted({unused!r} & set(sys.modules)),\n"
        "                  gc.isenabled(), gc.get_freeze_count() > 10_000)\n"
        ")\n"
        "from bot.launch import main\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, "import", "bookings", "examples/bookings.csv"],
        capture_output=True,
        text=True,
        env={**os.environ, "EVALBOT_DATABASE_URL": url},
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert result.returncode == 0, result.stderr
    assert "Imported 8 booking rows" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[] True True"
