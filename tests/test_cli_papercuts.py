"""Command-line papercuts: unknown names, UK dates, declining, plurals, the screen, no database."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from bot.cli import app
from tests.test_campaigns import NOW_TEXT, Partnership, counts
from tests.test_campaigns import cli as cli
from tests.test_campaigns import p as p
from tests.test_export import HEADER
from tests.test_report import build_quarter


def remind(cli: CliRunner, *options: str, input: str | None = None):
    return cli.invoke(
        app, ["campaign", "remind", "--stage", "end", "--now", NOW_TEXT, *options], input=input
    )


def test_a_campaign_for_a_course_or_session_that_does_not_exist_says_so(
    session: Session, p: Partnership, cli: CliRunner
) -> None:
    result = remind(cli, "--course", "Neglect Maters", "--dry-run")
    assert result.exit_code == 1
    assert "no course is called 'Neglect Maters'" in result.output
    result = remind(cli, "--session", "WT-2099-01-01", "--dry-run")
    assert result.exit_code == 1 and "no session has the ref 'WT-2099-01-01'" in result.output
    assert remind(cli, "--course", "neglect matters", "--dry-run").exit_code == 0
    assert counts(session) == (0, 0, 0)


def test_campaign_dates_are_written_as_the_export_writes_them(
    session: Session, p: Partnership, cli: CliRunner
) -> None:
    uk = remind(cli, "--from", "24/02/2026", "--to", "26/02/2026", "--dry-run")
    iso = remind(cli, "--from", "2026-02-24", "--to", "2026-02-26", "--dry-run")
    assert uk.exit_code == iso.exit_code == 0, uk.output
    assert re.search(r"to message:\s+2", uk.output)
    assert uk.output == iso.output
    narrow = remind(cli, "--from", "25/02/2026", "--dry-run")
    assert re.search(r"to message:\s+1", narrow.output), narrow.output
    wrong = remind(cli, "--from", "next week", "--dry-run")
    assert wrong.exit_code == 2
    assert "--from: expected a date like 31/03/2026 or 2026-03-31" in wrong.output
    assert "date_from" not in wrong.output
    unreal = remind(cli, "--to", "30/02/2027", "--dry-run")
    assert unreal.exit_code == 2 and "--to: '30/02/2027' is not a real date" in unreal.output
    backwards = remind(cli, "--from", "26/02/2026", "--to", "24/02/2026", "--dry-run")
    assert backwards.exit_code == 1 and "--from 26/02/2026 is after --to 24/02/2026" in (
        backwards.output
    )


def test_declining_sends_nothing_and_is_not_an_error(
    session: Session, p: Partnership, cli: CliRunner
) -> None:
    result = remind(cli, input="n\n")
    assert result.exit_code == 0, result.output
    assert "Nothing sent." in result.output and "Aborted" not in result.output
    assert counts(session) == (0, 0, 0)
    one = remind(cli, "--course", "Neglect Matters", input="y\n")
    assert "Queue 1 message now?" in one.output
    assert "1 message queued" in one.output and "1 messages" not in one.output


def test_export_answers_without_out_writes_to_the_screen(
    session: Session, database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    build_quarter(session)
    monkeypatch.setenv("EVALBOT_DATABASE_URL", database_url)
    options = ["--stage", "end", "--from", "1/1/2026", "--to", "31/03/2026"]
    result = CliRunner().invoke(app, ["export", "answers", *options])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == HEADER
    assert {row[6] for row in rows[1:]} == {"end"}
    assert "Wrote" not in result.stdout
    out = tmp_path / "end.csv"
    to_file = CliRunner().invoke(app, ["export", "answers", *options, "--out", str(out)])
    assert to_file.exit_code == 0, to_file.output
    with out.open(encoding="utf-8-sig", newline="") as handle:
        assert list(csv.reader(handle)) == rows
    assert f"Wrote {len(rows) - 1} answers to {out}." in to_file.output


def test_status_in_a_folder_without_a_database_says_so_and_creates_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EVALBOT_DATABASE_URL", raising=False)
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 1
    assert "There is no Evalbot database here" in result.output
    assert "evalbot db upgrade" in result.output
    assert not (tmp_path / "evalbot.db").exists()
