"""The quarterly report's figures, every one computed by the database.

What a quarter covers: the sessions that start in it (by their local date). Courses, attendance
and the evaluation all follow those sessions' bookings, so the impact results of a quarter fill
in as its impact surveys come back: run the report again later and it is more complete. The
report says the date its figures stand at.

Definitions (the report repeats them where it shows each figure):

- attendance counts bookings on sessions that were not cancelled, one column per booking status;
  a booking's agency is its delegate's agency;
- the no-show rate is no-shows / (attended + partly attended + no-shows): of those expected on the
  day after every cancellation, the share who did not come;
- a survey is sent once its invitation has opened (open, finished or closed; withdrawn ones, of
  cancelled bookings, are left out), started once a first answer came, finished when completed;
- a matched pair is two answers of one booking to the same item and learning outcome, one in each
  stage; its change is the later value minus the earlier, and it improved when the change is
  above zero. Answers count whether or not the survey was finished.

Every section function (one module per concern in this package) runs aggregate queries
(GROUP BY, CASE) and returns their rows; Python only arranges them. Two things are done to the
results in Python, neither a figure: the free-text examples have the names in them taken out
(``NameScrubber``), and the anonymous edition leaves out the figures that rest on too few people
(``suppress_small_groups``).
"""

from __future__ import annotations

from surveys.report.annual import AnnualReport, annual_report
from surveys.report.anonymity import (
    OTHER_AGENCIES,
    OTHER_SECTORS,
    merge_small,
    suppress_small_groups,
)
from surveys.report.attendance import (
    AttendanceLevel,
    attendance,
    overview,
    response_rates,
    sessions,
)
from surveys.report.evaluation import applied, barriers, change, manager, satisfaction
from surveys.report.examples import OTHER_COURSES, all_examples, examples
from surveys.report.export import EXPORT_COLUMNS, export_answers
from surveys.report.issues import issues
from surveys.report.labels import item_labels
from surveys.report.periods import (
    MONTHS,
    Period,
    Quarter,
    QuarterError,
    QuarterScheme,
    Year,
    parse_quarter,
    parse_year,
)
from surveys.report.quarterly import quarterly_report
from surveys.report.query import (
    AGENCY,
    ANSWER,
    BOOKING,
    COURSE,
    DEFINITION,
    EXPECTED,
    INVITATION,
    MEASURES,
    NO_AGENCY,
    NO_SECTOR,
    PERSON,
    SENT,
    SESSION,
    TRANSITIONS,
)
from surveys.report.rows import (
    AppliedRow,
    AttendanceRow,
    BarrierRow,
    ChangeRow,
    ExampleRow,
    IssueRow,
    ManagerRow,
    Measured,
    Overview,
    PeriodSummary,
    QuarterlyReport,
    ResponseRow,
    SatisfactionRow,
    SessionRow,
)
from surveys.report.scrub import NAME_MARK, NameScrubber, name_scrubber
from surveys.report.trend import period_summary

__all__ = [
    "AGENCY",
    "ANSWER",
    "BOOKING",
    "COURSE",
    "DEFINITION",
    "EXPECTED",
    "EXPORT_COLUMNS",
    "INVITATION",
    "MEASURES",
    "MONTHS",
    "NAME_MARK",
    "NO_AGENCY",
    "NO_SECTOR",
    "OTHER_AGENCIES",
    "OTHER_COURSES",
    "OTHER_SECTORS",
    "PERSON",
    "SENT",
    "SESSION",
    "TRANSITIONS",
    "AnnualReport",
    "AppliedRow",
    "AttendanceLevel",
    "AttendanceRow",
    "BarrierRow",
    "ChangeRow",
    "ExampleRow",
    "IssueRow",
    "ManagerRow",
    "Measured",
    "NameScrubber",
    "Overview",
    "Period",
    "PeriodSummary",
    "Quarter",
    "QuarterError",
    "QuarterScheme",
    "QuarterlyReport",
    "ResponseRow",
    "SatisfactionRow",
    "SessionRow",
    "Year",
    "all_examples",
    "annual_report",
    "applied",
    "attendance",
    "barriers",
    "change",
    "examples",
    "export_answers",
    "issues",
    "item_labels",
    "manager",
    "merge_small",
    "name_scrubber",
    "overview",
    "parse_quarter",
    "parse_year",
    "period_summary",
    "quarterly_report",
    "response_rates",
    "satisfaction",
    "sessions",
    "suppress_small_groups",
]
