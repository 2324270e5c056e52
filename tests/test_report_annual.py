"""The annual report, each quarter beside the others, and the quarterly report's comparison with
the quarter before, on the hand-counted quarter of tests/test_report.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from surveys.report import Quarter
from tests.report_world import QuarterWorld, approx, figures, read_csv
from tests.report_world import cli_env as cli_env
from tests.report_world import quarter_world as quarter_world

AS_AT = "2026-12-31T12:00"


def annual(cli: CliRunner, out: Path, year: str, *flags: str) -> str:
    result = cli.invoke(app, ["report", "annual", year, "--out", str(out), "--now", AS_AT, *flags])
    assert result.exit_code == 0, result.output
    return (out / "report.html").read_text()


def by_period(path: Path) -> dict[str, dict[str, str]]:
    return {row["period"]: row for row in read_csv(path)}


def test_each_quarter_beside_the_others_and_the_year(
    quarter_world: QuarterWorld, cli_env: CliRunner, tmp_path: Path
) -> None:
    out = tmp_path / "2026"
    html = annual(cli_env, out, "2026")
    courses = by_period(out / "annual_courses.csv")
    assert list(courses) == ["2026 Q1", "2026 Q2", "2026 Q3", "2026 Q4", "2026"]
    q1, q2, year = courses["2026 Q1"], courses["2026 Q2"], courses["2026"]
    # Q1: two sessions ran (20 and 12 places) and one was cancelled; 9 bookings hold a place.
    assert (q1["sessions_run"], q1["sessions_cancelled"], q1["places"], q1["places_taken"]) == (
        "2", "1", "32", "9")  # fmt: skip
    assert q1["fill_rate"] == "0.2812" or q1["fill_rate"] == "0.2813"
    assert (q1["attendance_rate"], q1["no_show_rate"]) == ("0.7500", "0.2500")
    # Q2: the Neglect Matters session of 1 April (local), 12 places, Gus attended.
    assert (q2["sessions_run"], q2["places"], q2["places_taken"], q2["no_show_rate"]) == (
        "1", "12", "1", "0.0000")  # fmt: skip
    assert courses["2026 Q3"]["sessions_run"] == "0" and courses["2026 Q3"]["fill_rate"] == ""
    # The year is its own period, not a sum of averages.
    assert (year["sessions_run"], year["places"], year["places_taken"]) == ("3", "44", "10")
    assert year["no_show_rate"] == "0.2222"  # 2 of the 9 expected

    # The survey figures of a quarter are those of its quarterly report.
    report = figures(quarter_world.session, Quarter(2026, 1))
    outcomes = by_period(out / "annual_outcomes.csv")
    knowledge = next(
        r for r in report.change
        if r.course == "All courses" and r.transition == "pre to end" and r.measure == "knowledge"
    )  # fmt: skip
    assert float(outcomes["2026 Q1"]["knowledge_pre_to_end"]) == approx(
        round(knowledge.mean_change, 4)
    )
    assert outcomes["2026 Q1"]["knowledge_pre_to_end_pairs"] == str(knowledge.pairs)
    assert outcomes["2026"]["knowledge_pre_to_end_pairs"] == str(knowledge.pairs)
    responses = by_period(out / "annual_responses.csv")
    end = next(r for r in report.responses if r.stage == "end")
    assert responses["2026 Q1"]["end_sent"] == str(end.sent)
    assert responses["2026 Q1"]["end_finished_rate"] == f"{end.finished_rate:.4f}"

    assert "annual report" in html and "2026 Q1" in html and "January 2026 to December 2026" in html
    assert html.count("<svg") == 2  # the rates and the change, by quarter
    for stem in ("annual_courses", "annual_responses", "annual_outcomes"):
        assert f'href="{stem}.csv"' in html


def test_a_financial_year_runs_from_april(
    quarter_world: QuarterWorld,
    cli_env: CliRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVALBOT_QUARTERS", "financial")
    out = tmp_path / "fy"
    html = annual(cli_env, out, "2025/26")
    courses = by_period(out / "annual_courses.csv")
    assert list(courses) == ["2025/26 Q1", "2025/26 Q2", "2025/26 Q3", "2025/26 Q4", "2025/26"]
    assert courses["2025/26 Q3"]["sessions_run"] == "1"  # 15 December 2025
    assert courses["2025/26 Q4"]["sessions_run"] == "2"  # January to March 2026
    assert courses["2025/26"]["sessions_run"] == "3"
    assert "April 2025 to March 2026" in html and "financial year" in html


def test_the_anonymous_annual_report_leaves_out_figures_from_few_people(
    quarter_world: QuarterWorld, cli_env: CliRunner, tmp_path: Path
) -> None:
    out = tmp_path / "anonymous"
    html = annual(cli_env, out, "2026", "--anonymous")
    outcomes = by_period(out / "annual_outcomes.csv")
    # Q2 has one satisfaction rating (Gus's): too few to show.
    assert outcomes["2026 Q2"]["satisfaction_mean"] == "<5"
    # The year less the quarters shown would give Gus's rating back: the year's goes too.
    assert outcomes["2026 Q1"]["satisfaction_mean"] != "<5"
    assert outcomes["2026"]["satisfaction_mean"] == "<5"
    assert "&lt;5" in html and "Anonymous edition" in html
    assert by_period(out / "annual_courses.csv")["2026 Q2"]["sessions_run"] == "1"


def test_a_year_that_cannot_be_read_is_refused(
    quarter_world: QuarterWorld, cli_env: CliRunner, tmp_path: Path
) -> None:
    result = cli_env.invoke(app, ["report", "annual", "twenty", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "like 2026" in result.output
    result = cli_env.invoke(app, ["report", "annual", "2026/27", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "financial year" in result.output


def test_the_quarterly_report_compares_with_the_quarter_before(
    quarter_world: QuarterWorld, cli_env: CliRunner, tmp_path: Path
) -> None:
    out = tmp_path / "q1"
    result = cli_env.invoke(
        app, ["report", "quarterly", "2026Q1", "--out", str(out), "--now", "2026-04-15T10:00"]
    )
    assert result.exit_code == 0, result.output
    html = (out / "report.html").read_text()
    rows = by_period(out / "compared_courses.csv")
    assert list(rows) == ["2025 Q4", "2026 Q1", "Change"]
    # 2025 Q4: one session of 20 places, Alice attended.
    assert (rows["2025 Q4"]["sessions_run"], rows["2025 Q4"]["places_taken"]) == ("1", "1")
    assert rows["2025 Q4"]["fill_rate"] == "0.0500"
    assert rows["Change"]["sessions_run"] == "1" and rows["Change"]["places"] == "12"
    assert rows["Change"]["no_show_rate"] == "0.2500"
    outcomes = by_period(out / "compared_outcomes.csv")
    # Alice, December: knowledge 1 before and 5 after, one pair.
    assert outcomes["2025 Q4"]["knowledge_pre_to_end"] == "4.0000"
    assert outcomes["2025 Q4"]["knowledge_pre_to_end_pairs"] == "1"
    section = html[html.index('id="compared"') : html.index('id="courses"')]
    assert "2025 Q4" in section and "+23.1 pts" in section  # fill rate, 5.0% to 28.1%
    assert re.search(r"\+4\.00 \(1\)", section)  # the December pair, with its n
