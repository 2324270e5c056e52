"""Attendance and outcomes by sector, agency, role and course level, and the partnership's
targets beside the actual figures, on the hand-counted quarter of tests/test_report.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from bot.cli import app
from surveys.models import Course, Person
from tests.report_world import NM, WT, QuarterWorld, read_csv
from tests.report_world import cli_env as cli_env
from tests.report_world import quarter_world as quarter_world


def quarterly(cli: CliRunner, out: Path, *flags: str) -> str:
    result = cli.invoke(app, ["report", "quarterly", "2026Q1", "--out", str(out),
                              "--now", "2026-04-15T10:00", *flags])  # fmt: skip
    assert result.exit_code == 0, result.output
    return (out / "report.html").read_text()


def give_roles_and_levels(w: QuarterWorld) -> None:
    """Working Together is level 3 and Neglect Matters level 2; Alice, Ed and Jo are social
    workers, Chloé a health visitor; the others' roles were not exported."""
    for course in w.session.exec(select(Course)):
        course.level = {WT: "Level 3", NM: "Level 2"}[course.title]
    for first, role in (("Alice", "Social worker"), ("Ed", "Social worker"),
                        ("Jo", "Social worker"), ("Chloé", "Health visitor")):  # fmt: skip
        person = w.session.get(Person, w.people[first].id)
        assert person is not None
        person.role = role
    w.session.commit()


def test_attendance_and_outcomes_by_role_and_course_level(
    quarter_world: QuarterWorld, cli_env: CliRunner, tmp_path: Path
) -> None:
    give_roles_and_levels(quarter_world)
    out = tmp_path / "named"
    html = quarterly(cli_env, out)
    levels = {r["level"]: r for r in read_csv(out / "breakdown_by_level.csv")}
    assert set(levels) == {"Level 3", "Level 2"}
    # Working Together: 8 bookings, 5 holding a place who came or did not (B1-B3, B7, B8).
    assert (levels["Level 3"]["booked"], levels["Level 3"]["holding_a_place"]) == ("8", "5")
    assert levels["Level 3"]["no_show_rate"] == "0.2000"  # Ed, of 5 expected
    # Ratings: Alice 5, 4, 3; Chloé 4, 4, 5; Ian 2: 27 over 7.
    assert (levels["Level 3"]["satisfaction_mean"], levels["Level 3"]["satisfaction_answers"]) == (
        f"{27 / 7:.4f}", "7")  # fmt: skip
    assert (levels["Level 3"]["knowledge_change_pre_to_end"], levels["Level 3"]["pairs"]) == (
        "1.4000", "5")  # fmt: skip
    assert levels["Level 2"]["booked"] == "4"
    roles = {r["role"]: r for r in read_csv(out / "breakdown_by_role.csv")}
    # Social workers: Alice (2 bookings), Ed (2), Jo (2); Chloé 2; the rest not recorded.
    assert (roles["Social worker"]["booked"], roles["Health visitor"]["booked"]) == ("6", "2")
    assert roles["not recorded"]["booked"] == "4"
    assert roles["Social worker"]["no_shows"] == "2"
    sectors = {r["sector"]: r["booked"] for r in read_csv(out / "breakdown_by_sector.csv")}
    assert sectors == {"Children's social care": "6", "Health": "3", "Education": "3"}
    assert "By sector, agency, role and course level" in html
    assert "Health visitor" in html and "Level 3" in html

    anonymous = tmp_path / "anonymous"
    html = quarterly(cli_env, anonymous, "--anonymous")
    roles = {r["role"]: r for r in read_csv(anonymous / "breakdown_by_role.csv")}
    # Chloé's role (2 bookings) and the 4 not recorded are counted together.
    assert set(roles) == {"Social worker", "Other roles"}
    assert roles["Other roles"]["booked"] == "6"
    # Too few answers behind the social workers' change in knowledge: left out, everywhere.
    for row in roles.values():
        assert row["knowledge_change_pre_to_end"] in ("<5", ""), row
    assert "Health visitor" not in html


@pytest.fixture
def targets_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "evalbot.toml"
    monkeypatch.setenv("EVALBOT_CONFIG", str(path))
    return path


def test_targets_are_shown_beside_the_figures_and_marked(
    quarter_world: QuarterWorld, cli_env: CliRunner, tmp_path: Path, targets_file: Path
) -> None:
    targets_file.write_text(
        "[report.targets]\n"
        "voluntary_sector_share = 0.10\n"
        "impact_response_rate = 0.40\n"
        "no_show_rate = 0.20\n"
    )
    out = tmp_path / "q1"
    html = quarterly(cli_env, out)
    rows = {r["key"]: r for r in read_csv(out / "targets.csv")}
    assert list(rows) == ["voluntary_sector_share", "impact_response_rate", "no_show_rate"]
    # No voluntary-sector agency booked a place this quarter.
    assert (rows["voluntary_sector_share"]["actual"], rows["voluntary_sector_share"]["result"]) == (
        "0.0000", "Not met")  # fmt: skip
    # Impact surveys: Alice's and Chloé's finished, Alice's Neglect Matters one open: 2 of 3.
    assert rows["impact_response_rate"]["actual"] == "0.6667"
    assert rows["impact_response_rate"]["result"] == "Met"
    assert (rows["no_show_rate"]["actual"], rows["no_show_rate"]["result"]) == ("0.2500", "Not met")
    section = html[html.index('id="targets"') :]
    assert "at least 10.0%" in section and "at most 20.0%" in section and "66.7%" in section

    annual = tmp_path / "year"
    result = cli_env.invoke(app, ["report", "annual", "2026", "--out", str(annual),
                                  "--now", "2026-12-31T12:00"])  # fmt: skip
    assert result.exit_code == 0, result.output
    year = {r["key"]: r for r in read_csv(annual / "targets.csv")}
    assert year["no_show_rate"]["actual"] == "0.2222"  # 2 of the year's 9 expected


def test_an_unknown_target_stops_start_up_saying_where(
    quarter_world: QuarterWorld, cli_env: CliRunner, tmp_path: Path, targets_file: Path
) -> None:
    targets_file.write_text(
        'partnership_name = "Riverside"\n\n[report.targets]\nfill_rate = 0.8\n  impact_respons_rate = 0.4\n'
    )
    result = cli_env.invoke(app, ["report", "quarterly", "2026Q1", "--out", str(tmp_path / "x")])
    assert result.exit_code != 0
    assert "unknown target 'impact_respons_rate'" in result.output
    assert f"({targets_file}, line 5, column 3)" in result.output
    assert "impact_response_rate" in result.output  # the names it could have meant
    assert not (tmp_path / "x").exists()
