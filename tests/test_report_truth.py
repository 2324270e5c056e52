"""The quarterly report tells the truth: sessions still to come, its attendance chart, and an
anonymous edition that names nobody through a small agency's attendance."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from surveys.models import Agency, BookingStatus, Sector
from surveys.report import Quarter
from tests.conftest import utc
from tests.report_world import NM, QuarterWorld, figures, read_csv
from tests.report_world import cli_env as cli_env
from tests.report_world import quarter_world as quarter_world

STATUSES = {"Attended", "Partly attended", "No-show", "Late cancellation", "Cancelled",
            "Replaced", "Not marked yet"}  # fmt: skip


def run(cli: CliRunner, out: Path, *flags: str, quarter: str = "2026Q1") -> str:
    result = cli.invoke(app, ["report", "quarterly", quarter, "--out", str(out), *flags])
    assert result.exit_code == 0, result.output
    return (out / "report.html").read_text()


def attendance_svg(html: str) -> str:
    start = html.index('<h2 id="attendance">')
    figure = html[start : html.index("</figure>", start)]
    return figure[figure.index("<svg") :]


def texts(svg: str) -> list[str]:
    return re.findall(r"<text[^>]*>([^<]*)</text>", svg)


def tick_labels(svg: str) -> list[str]:
    return re.findall(r'<g id="xtick_\d+">.*?<text[^>]*>([^<]*)</text>', svg, re.DOTALL)


def fills(svg: str) -> set[str]:
    patches = re.findall(r'<g id="patch_\d+">\s*<path[^>]*style="fill: (#[0-9a-f]{6})', svg)
    return set(patches) - {"#ffffff"}


def test_a_session_still_to_come_is_not_counted_as_run(
    quarter_world: QuarterWorld, cli_env: CliRunner, tmp_path: Path
) -> None:
    # On 1 February, Neglect Matters (10 February) has not happened yet.
    early = figures(quarter_world.session, Quarter(2026, 1), now=utc("2026-02-01 12:00"))
    assert early.overview.sessions_run == 1
    assert early.overview.sessions_to_come == 1
    assert early.overview.sessions_cancelled == 1
    later = figures(quarter_world.session, Quarter(2026, 1))
    assert (later.overview.sessions_run, later.overview.sessions_to_come) == (2, 0)

    html = run(cli_env, tmp_path / "early", "--now", "2026-02-01T12:00")
    tile = re.search(r'<span class="value">(\d+)</span><span class="label">sessions run</span>'
                     r'<span class="note">([^<]*)</span>', html)  # fmt: skip
    assert tile is not None
    assert tile[1] == "1" and tile[2] == "1 cancelled, 1 still to come"
    sessions = {r["session"]: r for r in read_csv(tmp_path / "early" / "sessions.csv")}
    assert sessions["NM-2026-02-10"]["course"] == f"{NM} (to come)"
    assert sessions["WT-2026-01-20"]["course"].endswith("Children")


def test_the_attendance_chart_counts_in_whole_bookings_and_its_legend_names_every_colour(
    quarter_world: QuarterWorld, cli_env: CliRunner, tmp_path: Path
) -> None:
    svg = attendance_svg(run(cli_env, tmp_path / "q1", "--now", "2026-04-15T10:00"))
    legend = svg[svg.index('<g id="legend_1">') :]
    bars = svg[: svg.index('<g id="legend_1">')]
    # The quarter has a replaced booking and one not yet marked: both are drawn and named.
    assert set(texts(legend)) == STATUSES
    assert fills(bars) == fills(legend) and len(fills(legend)) == len(STATUSES)
    assert tick_labels(svg) == ["0", "1", "2", "3", "4", "5", "6"]


def test_a_quarter_of_one_booking_has_no_fractional_count_axis(
    quarter_world: QuarterWorld, cli_env: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALBOT_QUARTERS", "financial")
    # April to June 2026: one session, one booking, attended.
    svg = attendance_svg(run(cli_env, tmp_path / "fq1", "--now", "2026-07-15T10:00"))
    ticks = tick_labels(svg)
    assert ticks and all(re.fullmatch(r"\d+", tick) for tick in ticks), ticks
    legend = svg[svg.index('<g id="legend_1">') :]
    assert texts(legend) == ["Attended"]  # no colour in the legend that the chart does not use


def add_a_one_person_agency(w: QuarterWorld) -> None:
    """Kim, the only delegate of a nursery, booked on Working Together and did not come."""
    nursery = w.add(Agency(name="Eastfield Nursery", sector=Sector.EDUCATION))
    w.person("Kim Lowe", nursery)
    session_id = w.bookings["B1"].session_id
    from surveys.models import CourseSession

    course_session = w.session.get(CourseSession, session_id)
    assert course_session is not None
    w.booking("B9", course_session, "Kim", BookingStatus.NO_SHOW)
    w.session.commit()


def test_the_anonymous_edition_hides_an_agency_of_one_booking(
    quarter_world: QuarterWorld, cli_env: CliRunner, tmp_path: Path
) -> None:
    add_a_one_person_agency(quarter_world)
    named = tmp_path / "named"
    html = run(cli_env, named, "--now", "2026-04-15T10:00")
    agencies = {r["agency"]: r for r in read_csv(named / "attendance_by_agency.csv")}
    assert (
        agencies["Eastfield Nursery"]["booked"],
        agencies["Eastfield Nursery"]["no_show_rate"],
    ) == ("1", "1.0000")
    assert "Agency no-show rate" in html and "Eastfield Nursery" in html

    anonymous = tmp_path / "anonymous"
    html = run(cli_env, anonymous, "--now", "2026-04-15T10:00", "--anonymous")
    everything = html + "".join(p.read_text(encoding="utf-8-sig") for p in anonymous.glob("*.csv"))
    assert "Eastfield" not in everything
    rows = {r["agency"]: r for r in read_csv(anonymous / "attendance_by_agency.csv")}
    # Northgate (3 bookings), Hillside (3) and Eastfield (1) are counted together; Riverside
    # (6) stands alone, and the total is unchanged.
    assert set(rows) == {"Riverside Children's Services", "Other agencies", "All agencies"}
    assert rows["Other agencies"]["booked"] == "7"
    assert rows["Other agencies"]["no_shows"] == "1"
    assert rows["All agencies"]["booked"] == "13"
    sectors = {r["sector"]: r["booked"] for r in read_csv(anonymous / "attendance_by_sector.csv")}
    assert sectors == {"Children's social care": "6", "Other sectors": "7", "All sectors": "13"}
    assert "fewer than 5 bookings are counted together" in html


def test_the_smallest_group_is_a_setting(
    quarter_world: QuarterWorld, cli_env: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_a_one_person_agency(quarter_world)
    monkeypatch.setenv("EVALBOT_REPORT_MIN_GROUP", "3")
    out = tmp_path / "three"
    html = run(cli_env, out, "--now", "2026-04-15T10:00", "--anonymous")
    rows = {r["agency"]: r["booked"] for r in read_csv(out / "attendance_by_agency.csv")}
    # Eastfield alone would be a group of one, so the smallest agency shown joins it.
    assert rows == {"Riverside Children's Services": "6", "Northgate NHS Trust": "3",
                    "Other agencies": "4", "All agencies": "13"}  # fmt: skip
    assert "fewer than 3 people" in html
    monkeypatch.setenv("EVALBOT_REPORT_MIN_GROUP", "1")
    result = cli_env.invoke(app, ["report", "quarterly", "2026Q1", "--out", str(tmp_path / "x")])
    assert result.exit_code != 0
    assert "EVALBOT_REPORT_MIN_GROUP" in result.output
