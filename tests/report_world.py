"""A quarter whose report figures are worked out by hand, and the helpers its tests share.

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

import csv
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

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
from surveys.report import (
    Quarter,
    quarterly_report,
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
