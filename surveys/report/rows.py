"""The rows each section of the report returns, and the report that holds them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from surveys.report.periods import (
    Quarter,
)

if TYPE_CHECKING:
    from surveys.report.offers import OfferRow
    from surveys.report.trainers import TrainerReports


@dataclass(frozen=True)
class SessionRow:
    course: str
    ref: str
    starts_at: datetime
    venue: str | None
    online: bool
    trainer: str | None
    status: str
    min_places: int | None
    max_places: int | None
    bookings: int  # every booking made, whatever became of it
    active: int  # holding a place: booked, attended, partly attended, no-show
    cancelled: int  # in time or late
    replaced: int
    attended: int
    partly: int
    no_shows: int
    unmarked: int  # still "booked": the register has not been closed


@dataclass(frozen=True)
class AttendanceRow:
    group: str  # an agency, a sector, a course, or "All"
    sector: str | None  # for agency rows
    booked: int
    attended: int
    partly: int
    no_shows: int
    late_cancellations: int
    cancellations: int
    replaced: int
    unmarked: int
    charges_pence: int
    no_show_rate: float | None


@dataclass(frozen=True)
class ResponseRow:
    stage: str
    planned: int  # not opened yet
    sent: int
    started: int
    finished: int
    started_rate: float | None
    finished_rate: float | None


@dataclass(frozen=True)
class SatisfactionRow:
    course: str
    item: str
    answers: int
    mean: float | None
    satisfied: int  # 4 or 5 on a 1-5 scale
    satisfied_share: float | None
    suppressed: bool = False  # from too few people for the anonymous edition: no figures
    # The course's type (face to face, e-learning, ...): its end-of-course survey may be that
    # type's variant, so its items are compared with courses of the same type. None: all courses.
    course_type: str | None = None


@dataclass(frozen=True)
class ChangeRow:
    course: str
    measure: str
    transition: str  # "pre to end" / "end to impact"
    outcome_index: int | None  # None: all outcomes together
    outcome: str | None
    pairs: int
    mean_before: float | None
    mean_after: float | None
    mean_change: float | None
    improved: int
    improved_share: float | None
    suppressed: bool = False


@dataclass(frozen=True)
class AppliedRow:
    course: str
    answers: int
    applied: int
    share: float | None
    suppressed: bool = False


@dataclass(frozen=True)
class BarrierRow:
    key: str
    label: str
    count: int
    share: float | None  # of the people who answered the question
    suppressed: bool = False


@dataclass(frozen=True)
class Overview:
    sessions_run: int  # not cancelled, and started by the time the figures stand at
    sessions_cancelled: int
    places: int  # the maximum places of the sessions not cancelled, where set
    delegates: int  # distinct people who attended all or part of a session
    sessions_to_come: int = 0  # not cancelled, not started yet
    places_run: int = 0  # the maximum places of the sessions that ran, where set


@dataclass(frozen=True)
class ExampleRow:
    course: str
    text: str
    course_examples: int = 0  # how many examples its course has in the quarter


@dataclass(frozen=True)
class ManagerRow:
    item: str
    label: str
    answers: int
    yes_no: bool
    mean: float | None  # for a yes/no item: the share answering yes
    suppressed: bool = False


@dataclass(frozen=True)
class IssueRow:
    kind: str
    subject: str
    detail: str


@dataclass(frozen=True)
class Measured:
    """A mean (or share) and the number of people or answers it rests on."""

    value: float | None
    n: int
    suppressed: bool = False


@dataclass(frozen=True)
class PeriodSummary:
    label: str
    sessions_run: int
    sessions_cancelled: int
    sessions_to_come: int
    places: int  # of the sessions not cancelled, where set
    places_taken: int  # bookings holding a place on those sessions
    bookings: int
    expected: int  # attended + partly attended + no-shows
    attended: int  # all or part
    no_shows: int
    # Stage value -> (finished / sent, sent).
    responses: dict[str, Measured]
    satisfaction: Measured  # mean rating 1-5 over every satisfaction item, n answers
    satisfied: Measured  # share rating 4 or 5
    # ("pre to end" | "end to impact", "knowledge" | "confidence") -> mean change, n pairs.
    change: dict[tuple[str, str], Measured]
    applied: Measured  # share who applied their learning, n answers
    # Bookings holding a place (booked, attended, partly attended, no-show) by agency sector.
    held_by_sector: dict[str, int] = field(default_factory=dict)

    @property
    def fill_rate(self) -> float | None:
        return self.places_taken / self.places if self.places else None

    @property
    def attendance_rate(self) -> float | None:
        return self.attended / self.expected if self.expected else None

    @property
    def no_show_rate(self) -> float | None:
        return self.no_shows / self.expected if self.expected else None


@dataclass(frozen=True)
class BreakdownRow:
    dimension: str
    group: str
    booked: int = 0  # every booking on the sessions that ran
    held: int = 0  # holding a place: booked, attended, partly attended, no-show
    attended: int = 0  # all or part
    no_shows: int = 0
    ratings: int = 0  # end-of-course satisfaction answers
    rating_sum: float = 0.0
    pairs: int = 0  # knowledge, pre-course to end of course
    change_sum: float = 0.0
    applied_answers: int = 0
    applied_yes: int = 0
    hidden: frozenset[str] = frozenset()  # measures left out of the anonymous edition

    @property
    def no_show_rate(self) -> float | None:
        expected = self.attended + self.no_shows
        return self.no_shows / expected if expected else None

    @property
    def satisfaction(self) -> float | None:
        return None if "satisfaction" in self.hidden or not self.ratings else (
            self.rating_sum / self.ratings
        )  # fmt: skip

    @property
    def knowledge_change(self) -> float | None:
        return None if "knowledge" in self.hidden or not self.pairs else (
            self.change_sum / self.pairs
        )  # fmt: skip

    @property
    def applied_share(self) -> float | None:
        if "applied" in self.hidden or not self.applied_answers:
            return None
        return self.applied_yes / self.applied_answers


@dataclass(frozen=True)
class Voices:
    accessibility: dict[str, int]  # option key -> people choosing it
    accessibility_answers: int
    accessibility_details: list[str]  # what made it harder, a few, names taken out
    theme_words: list[tuple[str, int]]  # the most frequent words, with how many comments
    comments: int
    comment_examples: list[str]
    child_examples: list[str]  # impact examples involving a child, a few
    child_example_count: int
    example_count: int
    suppressed: set[str] = field(default_factory=set)  # parts left out: too few people


@dataclass
class QuarterlyReport:
    quarter: Quarter
    zone: ZoneInfo
    generated_at: datetime
    no_show_alert_rate: float
    overview: Overview
    sessions: list[SessionRow]
    totals: AttendanceRow
    by_agency: list[AttendanceRow]
    by_sector: list[AttendanceRow]
    by_course: list[AttendanceRow]
    responses: list[ResponseRow]
    satisfaction: list[SatisfactionRow]
    change: list[ChangeRow]
    change_by_outcome: list[ChangeRow]
    applied: list[AppliedRow]
    barriers: list[BarrierRow]
    barrier_respondents: int
    examples: list[ExampleRow]
    example_count: int
    manager: list[ManagerRow]
    issues: list[IssueRow] = field(default_factory=list)
    # Set by ``suppress_small_groups``: figures from fewer people than this are left out.
    smallest_group: int | None = None
    # This quarter's headline figures and the previous quarter's, to compare.
    summary: PeriodSummary | None = None
    previous: PeriodSummary | None = None
    # By "sector", "agency", "role" and "level": attendance and outcomes of each group.
    breakdowns: dict[str, list[BreakdownRow]] = field(default_factory=dict)
    # Accessibility, comment themes, examples involving a child.
    voices: Voices | None = None
    # Places freed and offered to the waiting list, per course then in all (surveys/report/offers).
    offers: list[OfferRow] = field(default_factory=list)
    # The trainers' own reports on the quarter's sessions (surveys/report/trainers).
    trainers: TrainerReports | None = None
