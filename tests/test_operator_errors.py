"""A mistake in the settings file or an unreachable database: one message saying where and what to
do, a non-zero exit, and no traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ('timezone = "Europe/London"\nweb_port = \n', "line 2, column 12"),
        ('partnership_name = "Riverside\n', "line 1, column"),
        ("[policy\ncut_off_working_days = 2\n", "line 1, column 8"),
    ],
)
def test_a_syntax_error_in_the_settings_file_names_its_line(
    tmp_path: Path, content: str, where: str
) -> None:
    (tmp_path / "evalbot.toml").write_text(content, encoding="utf-8")
    result = run("status")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert f"evalbot.toml, {where}" in lines[0]
    assert "Correct the TOML there" in lines[0]
    assert "Traceback" not in result.output and result.exception.__class__ is SystemExit


def test_a_settings_file_that_is_not_text_is_named(tmp_path: Path) -> None:
    (tmp_path / "evalbot.toml").write_bytes("timezone = 'Europe/London'".encode("utf-16"))
    result = run("status")
    assert result.exit_code == 2
    assert "cannot read the settings file evalbot.toml" in result.output
    assert "UTF-8" in result.output


@pytest.mark.parametrize("command", [["status"], ["db", "upgrade"], ["person", "export", "a@b.c"]])
def test_an_unreachable_postgresql_is_one_message_naming_the_host(
    monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    port = closed_port()
    monkeypatch.setenv(
        "EVALBOT_DATABASE_URL", f"postgresql://evalbot:hunter2@127.0.0.1:{port}/partnership"
    )
    result = run(*command)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert f"cannot reach the database 'partnership' on 127.0.0.1:{port}" in lines[0]
    assert "Check that the database server is running" in lines[0]
    assert "hunter2" not in result.output
    assert result.exception.__class__ is SystemExit


def test_a_sqlite_file_that_cannot_be_opened_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "no-such-folder" / "evalbot.db"
    monkeypatch.setenv("EVALBOT_DATABASE_URL", f"sqlite:///{missing}")
    result = run("db", "upgrade")  # would create the file, but its folder is not there
    assert result.exit_code == 2
    assert f"cannot use the SQLite database {missing}" in result.output
    assert "Traceback" not in result.output
    # ``status`` creates nothing: it says there is no database there.
    result = run("status")
    assert result.exit_code == 1
    assert f"There is no Evalbot database here: {missing} does not exist" in result.output
