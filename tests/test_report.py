"""The quarterly report against the hand-counted quarter of tests/report_world.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from bot.cli import app
from surveys.report import Quarter, QuarterError, all_examples, parse_quarter
from tests.conftest import utc
from tests.report_world import (
    LONDON,
    NAMES,
    NM,
    TRAINER_HEADER,
    WT,
    QuarterWorld,
    approx,
    build_quarter,
    figures,
    read_csv,
)
from tests.report_world import cli_env as cli_env
from tests.report_world import quarter_world as quarter_world


def test_quarters_calendar_and_financial() -> None:
    q1 = parse_quarter("2026Q1")
    assert (q1.first_day.isoformat(), q1.last_day.isoformat()) == ("2026-01-01", "2026-03-31")
    assert q1.label == "2026 Q1" and q1.months == "January to March 2026"
    # The quarter ends at local midnight: 23:00 UTC once British Summer Time has begun.
    assert q1.bounds(LONDON) == (utc("2026-01-01 00:00"), utc("2026-03-31 23:00"))
    fq1 = parse_quarter("2026Q1", "financial")
    assert (fq1.first_day.isoformat(), fq1.last_day.isoformat()) == ("2026-04-01", "2026-06-30")
    assert fq1.label == "2026/27 Q1"
    fq4 = parse_quarter("2026/27 Q4", "financial")
    assert (fq4.first_day.isoformat(), fq4.last_day.isoformat()) == ("2027-01-01", "2027-03-31")
    assert parse_quarter("2025-q4", "calendar").months == "October to December 2025"
    with pytest.raises(QuarterError, match="like 2026Q1"):
        parse_quarter("2026Q5")
    with pytest.raises(QuarterError, match="financial year"):
        parse_quarter("2026/27 Q1", "calendar")


def test_figures_match_the_hand_count(session: Session, quarter_world: QuarterWorld) -> None:
    report = figures(session, Quarter(2026, 1))

    assert [s.ref for s in report.sessions] == ["WT-2026-01-20", "NM-2026-02-10", "WT-2026-03-16"]
    s1 = report.sessions[0]
    assert (s1.max_places, s1.bookings, s1.active, s1.cancelled, s1.replaced) == (20, 8, 5, 2, 1)
    assert (s1.attended, s1.partly, s1.no_shows, s1.unmarked, s1.trainer) == (
        3,
        1,
        1,
        0,
        "Tariq Aziz",
    )
    assert report.overview.sessions_run == 2 and report.overview.sessions_cancelled == 1
    assert report.overview.places == 32 and report.overview.delegates == 4

    agencies = {row.group: row for row in report.by_agency}
    riverside = agencies["Riverside Children's Services"]
    assert (riverside.booked, riverside.attended, riverside.partly, riverside.no_shows) == (
        6,
        3,
        1,
        2,
    )
    assert riverside.charges_pence == 11250 and riverside.no_show_rate == approx(2 / 6)
    northgate = agencies["Northgate NHS Trust"]
    assert (northgate.booked, northgate.attended, northgate.late_cancellations) == (3, 1, 1)
    assert (northgate.unmarked, northgate.charges_pence, northgate.no_show_rate) == (1, 7500, 0.0)
    hillside = agencies["Hillside Primary School"]
    assert (hillside.booked, hillside.attended, hillside.cancellations, hillside.replaced) == (
        3,
        1,
        1,
        1,
    )
    total = report.totals
    assert (total.booked, total.attended, total.partly, total.no_shows) == (12, 5, 1, 2)
    assert (total.late_cancellations, total.cancellations, total.replaced, total.unmarked) == (
        1,
        1,
        1,
        1,
    )
    assert total.charges_pence == 18750 and total.no_show_rate == approx(2 / 8)
    sectors = {row.group: row.booked for row in report.by_sector}
    assert sectors == {"children's social care": 6, "health": 3, "education": 3}
    courses = {row.group: row for row in report.by_course}
    assert courses[WT].booked == 8 and courses[WT].no_show_rate == approx(1 / 5)
    assert courses[NM].booked == 4 and courses[NM].no_show_rate == approx(1 / 3)

    responses = {r.stage: (r.planned, r.sent, r.started, r.finished) for r in report.responses}
    assert responses == {"pre": (0, 5, 4, 3), "end": (0, 6, 4, 3), "impact": (1, 3, 2, 2),
                         "manager": (0, 1, 1, 1)}  # fmt: skip
    end = next(r for r in report.responses if r.stage == "end")
    assert end.started_rate == approx(4 / 6) and end.finished_rate == approx(3 / 6)

    rated = {(r.course, r.item): (r.answers, r.mean, r.satisfied) for r in report.satisfaction}
    assert rated[(WT, "satisfaction_content")] == (3, approx(11 / 3), 2)
    assert rated[(WT, "satisfaction_venue")] == (2, approx(4.0), 1)
    assert rated[(NM, "satisfaction_trainer")] == (1, approx(5.0), 1)
    assert rated[("All courses", "satisfaction_content")] == (4, approx(3.5), 2)
    assert rated[("All courses", "satisfaction_trainer")] == (3, approx(13 / 3), 3)

    change = {(r.course, r.transition, r.measure): r for r in report.change}
    k = change[(WT, "pre to end", "knowledge")]
    assert (k.pairs, k.improved) == (5, 4)
    assert (k.mean_before, k.mean_after, k.mean_change) == (approx(2.2), approx(3.6), approx(1.4))
    c = change[(WT, "pre to end", "confidence")]
    assert (c.pairs, c.improved, c.mean_change) == (6, 4, approx(4 / 6))
    assert change[(NM, "pre to end", "knowledge")].mean_change == approx(1.0)
    assert change[(NM, "pre to end", "confidence")].improved_share == approx(1.0)
    every = change[("All courses", "pre to end", "knowledge")]
    assert (every.pairs, every.improved, every.mean_change) == (7, 5, approx(9 / 7))
    assert change[("All courses", "pre to end", "confidence")].mean_change == approx(7 / 8)
    later = change[(WT, "end to impact", "knowledge")]
    assert (later.pairs, later.mean_change, later.improved_share) == (
        4,
        approx(-0.25),
        approx(0.25),
    )
    assert change[(WT, "end to impact", "confidence")].mean_change == approx(4 / 6)
    assert (NM, "end to impact", "knowledge") not in change
    outcome = next(
        r for r in report.change_by_outcome
        if r.course == WT and r.outcome_index == 0 and r.measure == "knowledge"
        and r.transition == "pre to end"
    )  # fmt: skip
    assert (outcome.outcome, outcome.pairs, outcome.mean_change) == (
        "recognise neglect",
        2,
        approx(1.5),
    )

    assert [(r.course, r.answers, r.applied) for r in report.applied] == [
        (WT, 2, 1),
        ("All courses", 2, 1),
    ]
    assert {(b.key, b.count) for b in report.barriers} == {("time", 1), ("support", 1)}
    assert report.barrier_respondents == 1
    # Labels come from the impact survey's definition.
    assert {b.label for b in report.barriers} == {
        "Workload or lack of time",
        "Lack of support from my manager or team",
    }
    assert report.example_count == 1 and report.examples[0].course == WT
    managers = {m.item: (m.answers, m.yes_no, m.mean) for m in report.manager}
    assert managers == {"manager_change_seen": (1, True, approx(1.0)),
                        "manager_rating": (1, False, approx(4.0))}  # fmt: skip

    issues = {(i.kind, i.subject) for i in report.issues}
    assert issues == {
        ("Agency no-show rate", "Riverside Children's Services"),
        ("Course no-show rate", NM),
        ("Below the minimum", f"{WT} (WT-2026-01-20)"),
        ("Register not closed", f"{NM} (NM-2026-02-10)"),
        ("Session cancelled", f"{WT} (WT-2026-03-16)"),
    }


def test_the_alert_rate_decides_which_no_show_rates_are_flagged(
    session: Session, quarter_world: QuarterWorld
) -> None:
    strict = figures(session, Quarter(2026, 1), rate=0.15)
    flagged = {i.subject for i in strict.issues if "no-show" in i.kind}
    assert flagged == {"Riverside Children's Services", NM, WT}
    lenient = figures(session, Quarter(2026, 1), rate=0.5)
    assert not [i for i in lenient.issues if "no-show" in i.kind]


def test_cli_writes_the_report_and_a_csv_per_table(
    quarter_world: QuarterWorld, cli_env: CliRunner, tmp_path: Path
) -> None:
    out = tmp_path / "q1"
    result = cli_env.invoke(
        app, ["report", "quarterly", "2026Q1", "--out", str(out), "--now", "2026-04-15T10:00"]
    )
    assert result.exit_code == 0, result.output
    assert "2026 Q1" in result.output
    html = (out / "report.html").read_text()
    assert "<svg" in html and "@page" in html and "size: A4" in html
    assert "<script" not in html and 'src="http' not in html  # self-contained
    assert "Riverside &amp; Northgate Safeguarding Partnership" in html
    assert "Tariq Aziz" in html and TRAINER_HEADER in html  # outside the anonymous edition
    for name in NAMES:  # no delegate's or manager's name, ever
        assert name not in html and name.replace("'", "&#39;") not in html
    assert "I noticed the signs of neglect" in html

    agencies = {r["agency"]: r for r in read_csv(out / "attendance_by_agency.csv")}
    assert agencies["Riverside Children's Services"]["no_shows"] == "2"
    assert agencies["Riverside Children's Services"]["charges_gbp"] == "112.50"
    assert agencies["Riverside Children's Services"]["no_show_rate"] == "0.3333"
    assert agencies["All agencies"]["booked"] == "12"
    rates = {r["stage"]: r for r in read_csv(out / "response_rates.csv")}
    assert (rates["End of course"]["sent"], rates["End of course"]["finished_rate"]) == (
        "6",
        "0.5000",
    )
    change = read_csv(out / "change_pre_to_end.csv")
    assert {
        "course": WT,
        "measure": "Knowledge",
        "pairs": "5",
        "mean_change": "1.4000",
    }.items() <= next(
        r for r in change if r["course"] == WT and r["measure"] == "Knowledge"
    ).items()
    sessions = read_csv(out / "sessions.csv")
    assert sessions[0]["session"] == "WT-2026-01-20"
    assert sessions[0]["trainer"] == "Tariq Aziz"
    assert sessions[0]["starts_at"] == "2026-01-20T09:30+00:00"
    assert read_csv(out / "impact_examples.csv") == [
        {"course": WT, "example": "I noticed the signs of neglect in a family sooner and referred "
         "them to early help."}
    ]  # fmt: skip
    issues = read_csv(out / "notable_issues.csv")
    assert len(issues) == 5
    expected = {"sessions", "attendance_by_agency", "attendance_by_sector", "attendance_by_course",
                "response_rates", "satisfaction", "change_pre_to_end", "change_end_to_impact",
                "compared_courses", "compared_responses", "compared_outcomes",
                "breakdown_by_sector", "breakdown_by_agency", "breakdown_by_role",
                "breakdown_by_level",
                "change_by_outcome", "impact_applied", "impact_barriers", "manager_view", "place_offers",
                "notable_issues", "impact_examples"}  # fmt: skip
    assert {p.stem for p in out.glob("*.csv")} == expected
    for stem in expected:  # every CSV the page names is there, and the page links it
        assert f'href="{stem}.csv"' in html


def test_anonymous_report_leaves_out_every_name(
    quarter_world: QuarterWorld, cli_env: CliRunner, tmp_path: Path
) -> None:
    out = tmp_path / "anon"
    result = cli_env.invoke(
        app, ["report", "quarterly", "2026Q1", "--out", str(out), "--anonymous"]
    )
    assert result.exit_code == 0, result.output
    html = (out / "report.html").read_text()
    assert "Anonymous edition" in html
    everything = html + "".join(p.read_text(encoding="utf-8-sig") for p in out.glob("*.csv"))
    for name in (*NAMES, "Tariq", "Aziz"):
        assert name not in everything
    assert TRAINER_HEADER not in html
    assert "trainer" not in read_csv(out / "sessions.csv")[0]
    # The organisations and the figures are all still there.
    assert "Riverside Children&#39;s Services" in html
    assert read_csv(out / "attendance_by_agency.csv")[-1]["booked"] == "12"


def test_financial_quarters(
    quarter_world: QuarterWorld, cli_env: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calendar = tmp_path / "calendar"
    assert (
        cli_env.invoke(app, ["report", "quarterly", "2026Q1", "--out", str(calendar)]).exit_code
        == 0
    )
    monkeypatch.setenv("EVALBOT_QUARTERS", "financial")
    # January to March 2026 is the fourth quarter of the financial year 2025/26.
    q4 = tmp_path / "fq4"
    result = cli_env.invoke(app, ["report", "quarterly", "2025Q4", "--out", str(q4)])
    assert result.exit_code == 0, result.output
    assert "2025/26 Q4" in result.output
    for name in ("attendance_by_agency", "response_rates", "change_pre_to_end", "satisfaction"):
        assert read_csv(q4 / f"{name}.csv") == read_csv(calendar / f"{name}.csv")
    # Its first quarter is April to June 2026: only the session that starts on 1 April (local).
    q1 = tmp_path / "fq1"
    assert cli_env.invoke(app, ["report", "quarterly", "2026Q1", "--out", str(q1)]).exit_code == 0
    assert [r["session"] for r in read_csv(q1 / "sessions.csv")] == ["NM-2026-04-01"]
    assert (
        read_csv(q1 / "attendance_by_course.csv")[0] | {}
        == read_csv(q1 / "attendance_by_course.csv")[0]
    )
    assert read_csv(q1 / "attendance_by_course.csv")[0]["attended"] == "1"
    assert "2026/27 Q1" in (q1 / "report.html").read_text()


def test_an_empty_quarter_still_makes_a_report(
    quarter_world: QuarterWorld, cli_env: CliRunner, tmp_path: Path
) -> None:
    out = tmp_path / "empty"
    result = cli_env.invoke(app, ["report", "quarterly", "2027Q3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = (out / "report.html").read_text()
    assert "Nothing to show for this quarter" in html
    assert read_csv(out / "attendance_by_agency.csv") == [
        {**{k: "0" for k in read_csv(out / "attendance_by_agency.csv")[0]},
         "agency": "All agencies", "sector": "", "charges_gbp": "0.00", "no_show_rate": ""}
    ]  # fmt: skip


def test_bad_quarter_is_refused_with_the_expected_form(
    cli_env: CliRunner, engine: Engine, tmp_path: Path
) -> None:
    result = cli_env.invoke(app, ["report", "quarterly", "Q1-2026", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "like 2026Q1" in result.output


def test_the_same_figures_on_postgresql(postgres_engine: Engine) -> None:
    with Session(postgres_engine) as session:
        build_quarter(session)
        report = figures(session, Quarter(2026, 1))
        anonymous = list(all_examples(session.connection(), Quarter(2026, 1), LONDON, smallest=5))
    assert [(e.course, e.course_examples) for e in anonymous] == [("Other courses", 1)]
    assert report.totals.booked == 12 and report.totals.no_show_rate == approx(0.25)
    change = {(r.course, r.transition, r.measure): r for r in report.change}
    assert change[(WT, "pre to end", "knowledge")].mean_change == approx(1.4)
    assert {(b.key, b.count) for b in report.barriers} == {("time", 1), ("support", 1)}
    assert [i.kind for i in report.issues].count("Session cancelled") == 1
