"""The quarterly report against a quarter whose figures are worked out by hand.

The quarter (2026 Q1, calendar) is built with the models.

Two sessions run in the quarter, one more is cancelled, and two fall just outside it:

- WT-2026-01-20, Working Together (3 outcomes), 20 places, minimum 5, trainer Tariq Aziz:
  Alice (Riverside) attended; Chloé (Northgate) attended; Ed (Riverside) no-show, charged
  £75; Fay (Northgate) late cancellation, charged £75; Gus (Hillside) cancelled; Hana
  (Hillside) replaced by Ian (Hillside), who attended; Jo (Riverside) partly attended.
- NM-2026-02-10, Neglect Matters (2 outcomes), 12 places, minimum 6: Alice attended; Ed
  no-show, charged £37.50; Jo attended; Chloé still booked (register open).
- WT-2026-03-16 was cancelled (Fay's booking cancelled with it).
- WT-2025-12-15 (the quarter before) and NM-2026-04-01, which starts at 23:30 UTC on
  31 March: 00:30 on 1 April in London, so in the next quarter.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from surveys.models import (
    Agency,
    Answer,
    Booking,
    BookingStatus,
    Course,
    CourseSession,
    InvitationStatus,
    Person,
    Sector,
    SessionStatus,
    Stage,
    SurveyInvitation,
)
from tests.conftest import utc

WT = "Working Together to Safeguard Children"
NM = "Neglect Matters"


class QuarterWorld:
    def __init__(self, session: Session):
        self.session = session
        self.people: dict[str, Person] = {}
        self.bookings: dict[str, Booking] = {}

    def add(self, row: Any) -> Any:
        self.session.add(row)
        self.session.flush()
        return row

    def person(self, name: str, agency: Agency | None) -> Person:
        email = name.split()[0].lower().replace("é", "e") + "@example.org"
        person = self.add(Person(name=name, email=email, agency_id=agency.id if agency else None))
        self.people[name.split()[0]] = person
        return person

    def booking(
        self, ref: str, course_session: CourseSession, who: str, status: BookingStatus, **extra: Any
    ) -> Booking:
        booking = self.add(
            Booking(
                ref=ref,
                session_id=course_session.id,
                delegate_id=self.people[who].id,
                manager_id=self.people["Bob"].id,
                booked_at=course_session.starts_at - timedelta(days=30),
                status=status,
                **extra,
            )
        )
        self.bookings[ref] = booking
        return booking

    def invitation(
        self,
        booking: str,
        stage: Stage,
        status: InvitationStatus,
        answers: dict[str, Any] | None = None,
        *,
        started: bool | None = None,
        person: str | None = None,
    ) -> SurveyInvitation:
        row = self.bookings[booking]
        opens = utc("2026-01-01 09:00")
        started = bool(answers) if started is None else started
        invitation = self.add(
            SurveyInvitation(
                booking_id=row.id,
                person_id=self.people[person].id if person else row.delegate_id,
                stage=stage,
                opens_at=opens,
                closes_at=opens + timedelta(days=14),
                status=status,
                started_at=opens + timedelta(hours=1) if started else None,
                finished_at=opens + timedelta(hours=2)
                if status == InvitationStatus.FINISHED
                else None,
            )
        )
        for key, value in (answers or {}).items():
            self.answer(invitation, key, value)
        return invitation

    def answer(self, invitation: SurveyInvitation, key: str, value: Any) -> None:
        item, _, index = key.partition(".")
        answer = Answer(
            invitation_id=invitation.id,
            question_key=key,
            item=item,
            measure=item if item in ("knowledge", "confidence") else None,
            outcome_index=int(index) if index else None,
            answered_at=utc("2026-01-01 10:00"),
        )
        if isinstance(value, list):
            answer.value_json = value
        elif value in ("yes", "no"):
            answer.value_text = value
            answer.value_num = 1.0 if value == "yes" else 0.0
        elif isinstance(value, str):
            answer.value_text = value
        else:
            answer.value_num = float(value)
        self.add(answer)


def scores(knowledge: list[int | None], confidence: list[int | None]) -> dict[str, int]:
    """``knowledge.N``/``confidence.N`` answers; None leaves that outcome unanswered."""
    found: dict[str, int] = {}
    for measure, values in (("knowledge", knowledge), ("confidence", confidence)):
        for index, value in enumerate(values):
            if value is not None:
                found[f"{measure}.{index}"] = value
    return found


def build_quarter(session: Session) -> QuarterWorld:
    w = QuarterWorld(session)
    riverside = w.add(
        Agency(name="Riverside Children's Services", sector=Sector.CHILDRENS_SOCIAL_CARE)
    )
    northgate = w.add(Agency(name="Northgate NHS Trust", sector=Sector.HEALTH))
    hillside = w.add(Agency(name="Hillside Primary School", sector=Sector.EDUCATION))
    for name, agency in (
        ("Alice Okafor", riverside),
        ("Bob Whitfield", riverside),
        ("Chloé O'Brien <Health & Care>", northgate),
        ("Ed Marsh", riverside),
        ("Fay Lund", northgate),
        ("Gus Ward", hillside),
        ("Hana Sato", hillside),
        ("Ian Cole", hillside),
        ("Jo Reyes", riverside),
        ("Tariq Aziz", None),
    ):
        w.person(name, agency)
    wt = w.add(
        Course(title=WT, learning_outcomes=["recognise neglect", "share information", "refer"])
    )
    nm = w.add(Course(title=NM, learning_outcomes=["spot neglect early", "use the toolkit"]))

    def run(course: Course, ref: str, starts: datetime, **extra: Any) -> CourseSession:
        return w.add(
            CourseSession(
                ref=ref,
                course_id=course.id,
                starts_at=starts,
                ends_at=starts + timedelta(hours=6),
                **extra,
            )
        )

    s1 = run(wt, "WT-2026-01-20", utc("2026-01-20 09:30"), max_places=20, min_places=5,
             trainer_id=w.people["Tariq"].id, venue="Civic Centre")  # fmt: skip
    s2 = run(nm, "NM-2026-02-10", utc("2026-02-10 09:30"), max_places=12, min_places=6, online=True)
    s3 = run(wt, "WT-2026-03-16", utc("2026-03-16 09:30"), max_places=20,
             status=SessionStatus.CANCELLED)  # fmt: skip
    s4 = run(wt, "WT-2025-12-15", utc("2025-12-15 09:30"), max_places=20)
    s5 = run(nm, "NM-2026-04-01", utc("2026-03-31 23:30"), max_places=12)

    B = BookingStatus
    w.booking("B1", s1, "Alice", B.ATTENDED)
    w.booking("B2", s1, "Chloé", B.ATTENDED)
    w.booking("B3", s1, "Ed", B.NO_SHOW, charge_pence=7500)
    w.booking("B4", s1, "Fay", B.LATE_CANCELLATION, charge_pence=7500)
    w.booking("B5", s1, "Gus", B.CANCELLED)
    b6 = w.booking("B6", s1, "Hana", B.REPLACED)
    b7 = w.booking("B7", s1, "Ian", B.ATTENDED, replaces_id=b6.id)
    b6.replaced_by_id = b7.id
    w.booking("B8", s1, "Jo", B.PARTLY_ATTENDED)
    w.booking("C1", s2, "Alice", B.ATTENDED)
    w.booking("C2", s2, "Ed", B.NO_SHOW, charge_pence=3750)
    w.booking("C3", s2, "Jo", B.ATTENDED)
    w.booking("C4", s2, "Chloé", B.BOOKED)
    w.booking("D1", s3, "Fay", B.CANCELLED)
    w.booking("E1", s4, "Alice", B.ATTENDED)
    w.booking("F1", s5, "Gus", B.ATTENDED)

    St = InvitationStatus
    P, E, M, IM = Stage.PRE, Stage.END, Stage.MANAGER, Stage.IMPACT
    sat = ("satisfaction_content", "satisfaction_trainer", "satisfaction_venue")
    # Alice on Working Together.
    w.invitation("B1", P, St.FINISHED, scores([2, 3, 1], [2, 2, 3]))
    w.invitation(
        "B1",
        E,
        St.FINISHED,
        {**scores([4, 3, 3], [3, 4, 2]), **dict(zip(sat, [5, 4, 3], strict=True))},
    )
    w.invitation("B1", IM, St.FINISHED, {**scores([4, 4, 2], [4, 4, 4]), "applied": "yes",
                 "example": "I noticed the signs of neglect in a family sooner and referred them to early help."})  # fmt: skip
    w.invitation("B1", M, St.FINISHED, {"manager_change_seen": "yes", "manager_rating": 4},
                 person="Bob")  # fmt: skip
    # Chloé on Working Together: some outcomes left unanswered, so fewer pairs.
    w.invitation("B2", P, St.FINISHED, scores([3, 2, None], [3, 3, 3]))
    w.invitation(
        "B2",
        E,
        St.FINISHED,
        {**scores([4, 4, 4], [4, 3, 4]), **dict(zip(sat, [4, 4, 5], strict=True))},
    )
    w.invitation("B2", IM, St.FINISHED, {**scores([3, None, None], [5, 3, 4]), "applied": "no",
                 "barriers": ["time", "support"]})  # fmt: skip
    # Ed started his pre-course survey and then did not come: no end-of-course survey, no pair.
    w.invitation("B3", P, St.CLOSED, scores([1], []))
    # Fay's pre-course answer was withdrawn with her late cancellation: it counts nowhere.
    w.invitation("B4", P, St.WITHDRAWN, scores([1], []))
    # Ian, the replacement, answered part of his evaluation; he has no pre-course survey.
    w.invitation("B7", E, St.OPEN, {"knowledge.0": 5, "satisfaction_content": 2})
    w.invitation("B7", IM, St.PLANNED)
    # Jo: a pre-course survey never answered, an evaluation open and not started.
    w.invitation("B8", P, St.CLOSED)
    w.invitation("B8", E, St.OPEN)
    # Alice on Neglect Matters.
    w.invitation("C1", P, St.FINISHED, scores([1, 2], [2, 2]))
    w.invitation(
        "C1", E, St.FINISHED, {**scores([3, 2], [4, 3]), **dict(zip(sat, [3, 5, 4], strict=True))}
    )
    w.invitation("C1", IM, St.OPEN)
    w.invitation("C3", E, St.CLOSED)
    # Outside the quarter: must not count anywhere.
    w.invitation("E1", P, St.FINISHED, scores([1], [1]))
    w.invitation("E1", E, St.FINISHED, {**scores([5], [5]), "satisfaction_content": 1})
    w.invitation("F1", E, St.FINISHED, {**scores([5], [5]), "satisfaction_content": 1})
    session.commit()
    return w


# --- the tests -------------------------------------------------------------------------------

import csv  # noqa: E402
from pathlib import Path  # noqa: E402
from zoneinfo import ZoneInfo  # noqa: E402

import pytest  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from bot.cli import app  # noqa: E402
from surveys.report import (  # noqa: E402
    Quarter,
    QuarterError,
    all_examples,
    parse_quarter,
    quarterly_report,
    suppress_small_groups,
)

LONDON = ZoneInfo("Europe/London")
AS_AT = utc("2026-04-15 09:00")
NAMES = ("Alice", "Okafor", "Chloé", "O'Brien", "Ed Marsh", "Fay Lund", "Gus Ward", "Hana",
         "Ian Cole", "Jo Reyes", "Whitfield")  # fmt: skip


TRAINER_HEADER = 'Session</th><th scope="col">Trainer</th>'


def figures(
    session: Session, quarter: Quarter, rate: float = 0.25, *, now: datetime = AS_AT
) -> Any:
    return quarterly_report(session, quarter, zone=LONDON, now=now, no_show_alert_rate=rate)


def approx(value: float | None) -> Any:
    return pytest.approx(value, abs=1e-9)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def quarter_world(session: Session) -> QuarterWorld:
    return build_quarter(session)


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("EVALBOT_DATABASE_URL", database_url)
    monkeypatch.setenv("EVALBOT_PARTNERSHIP_NAME", "Riverside & Northgate Safeguarding Partnership")
    monkeypatch.setenv("EVALBOT_POLICY", '{"no_show_alert_rate": 0.25}')
    return CliRunner()


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
                "change_by_outcome", "impact_applied", "impact_barriers", "manager_view",
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


# --- privacy: names in free text, and small groups in the anonymous edition -------------------

CE = "Child Exploitation"
CE_PEOPLE = ("Uma Price", "Vic Stone", "Wyn Doyle", "Xan Ruiz", "Yas Khan", "Zed Moss")


def add_a_larger_course(w: QuarterWorld) -> None:
    """Six delegates on one more course, enough to show their figures in the anonymous edition.

    Each rated knowledge and confidence 2 before; after, knowledge 4 for five of them and 2 for
    Zed, confidence 3 for all; satisfaction with the content 5, 5, 4, 4, 3, 3 (mean 4.00).
    Pre to end, knowledge: 6 pairs, mean change (5 x 2 + 0) / 6 = +1.67, 5 improved (83.3%).
    """
    agency = w.session.get(Agency, w.people["Alice"].agency_id)
    course = w.add(Course(title=CE, learning_outcomes=["spot the signs"]))
    starts = utc("2026-03-03 09:30")
    ce = w.add(CourseSession(ref="CE-2026-03-03", course_id=course.id, starts_at=starts,
                             ends_at=starts + timedelta(hours=6), max_places=10))  # fmt: skip
    for n, (name, rating) in enumerate(zip(CE_PEOPLE, (5, 5, 4, 4, 3, 3), strict=True)):
        w.person(name, agency)
        ref = f"G{n}"
        w.booking(ref, ce, name.split()[0], BookingStatus.ATTENDED)
        after = 2 if name.startswith("Zed") else 4
        w.invitation(ref, Stage.PRE, InvitationStatus.FINISHED, scores([2], [2]))
        w.invitation(ref, Stage.END, InvitationStatus.FINISHED,
                     {**scores([after], [3]), "satisfaction_content": rating})  # fmt: skip
    w.session.commit()


def write(cli: CliRunner, out: Path, *flags: str) -> str:
    result = cli.invoke(app, ["report", "quarterly", "2026Q1", "--out", str(out),
                              "--now", "2026-04-15T10:00", *flags])  # fmt: skip
    assert result.exit_code == 0, result.output
    return (out / "report.html").read_text()


def test_names_contacts_in_examples_are_taken_out(
    quarter_world: QuarterWorld, cli_env: CliRunner, tmp_path: Path
) -> None:
    w = quarter_world
    # Chloé's impact survey: an example naming a colleague (a delegate Evalbot knows) and Alice.
    impact = w.session.exec(
        select(SurveyInvitation).where(
            SurveyInvitation.booking_id == w.bookings["B2"].id,
            SurveyInvitation.stage == Stage.IMPACT,
        )
    ).one()
    w.answer(impact, "example", "Ed Marsh and I now meet the school nurse weekly, and Alice's "
             "manager joins us. Email ed.marsh@example.org or ring 07700 900123.")  # fmt: skip
    w.session.commit()
    for edition, flags in (("named", ()), ("anonymous", ("--anonymous",))):
        out = tmp_path / edition
        html = write(cli_env, out, *flags)
        quoted = ("[name] and I now meet the school nurse weekly, and [name]&#39;s manager "
                  "joins us. Email [email] or ring [phone].")  # fmt: skip
        assert quoted in html, edition
        examples = read_csv(out / "impact_examples.csv")
        assert len(examples) == 2
        everything = html + "".join(p.read_text(encoding="utf-8-sig") for p in out.glob("*.csv"))
        for leak in ("Marsh", "Alice", "ed.marsh@", "07700"):
            assert leak not in everything, (edition, leak)
        # Course and agency words are not mistaken for names.
        assert "referred them to early help" in html and "Riverside Children" in html


def test_anonymous_edition_leaves_out_figures_from_fewer_than_five_people(
    quarter_world: QuarterWorld, cli_env: CliRunner, tmp_path: Path
) -> None:
    add_a_larger_course(quarter_world)
    named = write(cli_env, tmp_path / "named")
    html = write(cli_env, tmp_path / "anon", "--anonymous")
    anon = tmp_path / "anon"
    assert "+1.40" in named and "+1.40" not in html  # Working Together: 3 people, suppressed
    assert "rest on fewer than 5 people" in html and "&lt;5" in html

    change = {(r["course"], r["measure"]): r for r in read_csv(anon / "change_pre_to_end.csv")}
    assert change[(WT, "Knowledge")]["pairs"] == "<5"
    assert change[(WT, "Knowledge")]["mean_change"] == ""
    assert change[(WT, "Knowledge")]["share_improved"] == ""
    # Six people: shown, as worked out by hand.
    ce = change[(CE, "Knowledge")]
    assert (ce["pairs"], ce["mean_change"], ce["improved"], ce["share_improved"]) == (
        "6", "1.6667", "5", "0.8333")  # fmt: skip
    assert "+1.67" in html
    # All courses (13 pairs, +1.46) less Child Exploitation would give the other courses' four
    # people's change back: the total goes too, and with it the headline tile.
    every = change[("All courses", "Knowledge")]
    assert (every["pairs"], every["mean_change"]) == ("<5", "")
    assert "+1.46" in named and "+1.46" not in html

    rated = {(r["course"], r["item"]): r for r in read_csv(anon / "satisfaction.csv")}
    assert rated[(CE, "Content")]["answers"] == "6" and rated[(CE, "Content")]["mean"] == "4.0000"
    assert rated[(NM, "Trainer")]["answers"] == "<5" and rated[(NM, "Trainer")]["mean"] == ""
    assert "4.00 (6)" in html and "– (&lt;5)" in html
    # Content was rated by 4 people on the other courses, too few to be the difference.
    assert rated[("All courses", "Content")]["answers"] == "<5"

    # Two impact answers, one barrier answer, one manager: all too few to show.
    applied = read_csv(anon / "impact_applied.csv")
    assert [(r["answers"], r["share_applied"]) for r in applied] == [("<5", ""), ("<5", "")]
    assert {r["times_chosen"] for r in read_csv(anon / "impact_barriers.csv")} == {"<5"}
    assert "too few to show in this anonymous edition" in html
    assert {r["answers"] for r in read_csv(anon / "manager_view.csv")} == {"<5"}
    assert "too few people to show" in html  # the "applying their learning" tile
    # Counts of bookings and surveys are not opinions: they stay as they are.
    assert read_csv(anon / "attendance_by_agency.csv")[-1]["booked"] == "18"
    assert read_csv(anon / "response_rates.csv") == read_csv(
        tmp_path / "named" / "response_rates.csv"
    )
    for name in CE_PEOPLE:
        assert name not in html
    # The one example is Working Together's: too few to say which course it came from.
    example = "I noticed the signs of neglect in a family sooner and referred them to early help."
    assert read_csv(anon / "impact_examples.csv") == [
        {"course": "Other courses", "example": example}
    ]
    assert '<span class="course-name">Other courses</span><blockquote>' + example in html
    assert f'<span class="course-name">{WT}</span><blockquote>' + example in named


def test_a_total_is_shown_once_what_it_hides_is_itself_enough_people(
    session: Session, quarter_world: QuarterWorld
) -> None:
    add_a_larger_course(quarter_world)
    report = figures(session, Quarter(2026, 1))

    def knowledge(smallest: int) -> dict[str, bool]:
        shown = suppress_small_groups(report, smallest)
        return {
            r.course: r.suppressed
            for r in shown.change
            if r.transition == "pre to end" and r.measure == "knowledge"
        }

    # Pre to end, knowledge: Child Exploitation 6 people, Working Together 2 (at most 2 pairs
    # per outcome), Neglect Matters 1. Leaving out 2 + 1 = 3 people: a total of the rest is
    # fine at 3, and gives them away at 4.
    assert knowledge(3) == {CE: False, NM: True, WT: True, "All courses": False}
    assert knowledge(4) == {CE: False, NM: True, WT: True, "All courses": True}
    assert knowledge(1) == dict.fromkeys((CE, NM, WT, "All courses"), False)
    assert suppress_small_groups(report, 3).smallest_group == 3

    # Per outcome: where one of a course's outcomes is hidden, all of them are, or the course's
    # figure less the others would give the hidden one back.
    for smallest in (2, 3, 4):
        by_course: dict[tuple[str, str, str], set[bool]] = {}
        for row in suppress_small_groups(report, smallest).change_by_outcome:
            key = (row.course, row.transition, row.measure)
            by_course.setdefault(key, set()).add(row.suppressed)
        assert all(len(states) == 1 for states in by_course.values()), (smallest, by_course)
    assert report.smallest_group is None  # the named edition's figures are left as they were
