"""``evalbot demo``: a quarter played in a scratch database, through the real command line."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app


@pytest.fixture
def user_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's own folder, with a database the demo must never touch."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "evalbot.db").write_bytes(b"not touched")
    monkeypatch.chdir(folder)
    monkeypatch.delenv("EVALBOT_DATABASE_URL", raising=False)
    return folder


def test_the_demo_plays_a_quarter_and_shows_where_its_results_are(user_folder, tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = result.output
    assert (user_folder / "evalbot.db").read_bytes() == b"not touched"

    # What it says it produced is what is there.
    sent = dict(re.findall(r"^  ([a-z-]+): (\d+)$", text, re.MULTILINE))
    total = int(re.search(r"Messages delivered: (\d+)", text).group(1))
    emails = list((out / "mail").glob("*.eml"))
    assert len(emails) == total == sum(int(n) for n in sent.values())
    for kind in (
        "booking-confirmation",
        "survey-invitation",
        "survey-reminder",
        "cancellation-confirmed",
        "nominate-request",
        "replacement-joining",
        "no-show-delegate",
        "no-show-manager",
        "certificate-ready",
    ):
        assert int(sent.get(kind, 0)) > 0, f"no {kind} in:\n{text}"
    assert int(sent["booking-confirmation"]) == 8  # one per booking of the sample export
    assert "BK-24006 cancelled (late cancellation)" in text
    assert "nominated Jo Reid (BK-24006-R1)" in text
    assert "register for WT-2026-12-01 closed: 3 attended, 1 no-show" in text
    assert re.search(r"reminder campaign for the end-of-course survey \(\d+ queued\)", text)

    finished = dict(
        re.findall(r"(pre|end|impact|trainer) (\d+)", text.split("Surveys finished:")[1])
    )
    answers = int(re.search(r"answers saved: (\d+)", text).group(1))
    with sqlite3.connect(out / "demo.db") as db:
        assert db.execute("select count(*) from answer").fetchone()[0] == answers
        by_stage = dict(
            db.execute(
                "select stage, count(*) from survey_invitation where status = 'finished' "
                "group by stage"
            ).fetchall()
        )
        assert by_stage == {stage: int(count) for stage, count in finished.items()}
        with_trainer = db.execute(
            "select count(*) from course_session where trainer_id is not null"
        ).fetchone()[0]
        replaced = db.execute("select status from booking where ref = 'BK-24006'").fetchone()
        assert replaced == ("replaced",)
    assert 0 < int(finished["impact"]) < int(finished["end"])  # fewer answer months later
    assert 0 < int(finished["trainer"]) <= with_trainer  # one report per session at most

    report = out / "report" / "report.html"
    assert f"Quarterly report (2026Q4): {report.resolve()}" in text
    assert "2026" in report.read_text() and "Working Together" in report.read_text()
    assert f"Mail folder: {(out / 'mail').resolve()}" in text


def test_the_demo_never_writes_into_a_folder_in_use(user_folder):
    result = CliRunner().invoke(app, ["demo", "--out", str(user_folder)])
    assert result.exit_code == 2
    assert "already exists and is not an empty folder" in result.output
    assert sorted(p.name for p in user_folder.iterdir()) == ["evalbot.db"]
