"""The quarterly report as files: ``report.html`` and a CSV for every table.

``report.html`` is one self-contained file: its styles are inline, its charts are SVG drawn by
matplotlib and embedded in the page, and it prints on A4 (``@page``). The figures all come from
``surveys.report``, which computes them in SQL; this module only lays them out. With
``anonymous`` no person's name appears anywhere: the trainer column is left out of the
sessions table and its CSV (agencies are organisations and stay), and every survey figure that
rests on fewer than five people is left out (``surveys.report.suppress_small_groups``), its
count shown as "<5". Free-text examples are never shown with who wrote them, in either edition,
and the names, email addresses and phone numbers in them are taken out
(``surveys.report.NameScrubber``).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from markupsafe import Markup
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from bot.templating import environment
from surveys.models import Stage
from surveys.report import (
    NO_AGENCY,
    AppliedRow,
    AttendanceRow,
    ChangeRow,
    Quarter,
    QuarterlyReport,
    all_examples,
    quarterly_report,
    suppress_small_groups,
)

Kind = Literal["text", "int", "pct", "mean", "change", "money", "date"]
STAGE_NAMES = {
    Stage.PRE.value: "Pre-course",
    Stage.END.value: "End of course",
    Stage.IMPACT.value: "Impact",
    Stage.MANAGER.value: "Manager",
}
# Colours that stay apart for colour-blind readers and in greyscale print.
COLOURS = {
    "attended": "#1d4f91",
    "partly": "#6fa1d8",
    "no_shows": "#d4351c",
    "late": "#f47738",
    "cancelled": "#b1b4b6",
    "knowledge": "#1d4f91",
    "confidence": "#f47738",
    "started": "#6fa1d8",
    "finished": "#1d4f91",
    "bar": "#1d4f91",
}


@dataclass(frozen=True)
class Fewer:
    """A count left out of the anonymous edition because it is below ``than``: shows "<5"."""

    than: int

    def __str__(self) -> str:
        return f"<{self.than}"


@dataclass(frozen=True)
class Column:
    key: str  # the CSV header
    header: str  # the HTML header
    kind: Kind = "text"
    in_html: bool = True
    nowrap: bool = False  # codes such as session refs, which read badly broken

    @property
    def numeric(self) -> bool:
        return self.kind != "text" and self.kind != "date"

    @property
    def css(self) -> str:
        return "num" if self.numeric else "nowrap" if self.nowrap or self.kind == "date" else ""


@dataclass
class Table:
    """One table of the report: shown in the HTML (unless ``in_html`` is off) and a CSV."""

    name: str  # the CSV's file name without .csv
    title: str
    columns: list[Column]
    rows: list[list[Any]]
    totals: list[list[Any]] = field(default_factory=list)  # last rows, in bold; in the CSV too
    note: str = ""
    in_html: bool = True

    def html_columns(self) -> list[Column]:
        return [c for c in self.columns if c.in_html]

    def html_rows(self, zone: ZoneInfo) -> list[list[tuple[str, str]]]:
        return [self._cells(row, zone) for row in self.rows]

    def html_totals(self, zone: ZoneInfo) -> list[list[tuple[str, str]]]:
        return [self._cells(row, zone) for row in self.totals]

    def _cells(self, row: Sequence[Any], zone: ZoneInfo) -> list[tuple[str, str]]:
        """Each shown cell's text and its CSS class."""
        return [
            (show(value, column.kind, zone), column.css)
            for column, value in zip(self.columns, row, strict=True)
            if column.in_html
        ]


def plural(count: int, one: str, many: str) -> str:
    return f"{count:,} {one if count == 1 else many}"


def show(value: Any, kind: Kind, zone: ZoneInfo) -> str:
    """A value as the HTML shows it."""
    if isinstance(value, Fewer):
        return str(value)
    if value is None:
        return "–"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "pct":
        return f"{value * 100:.1f}%"
    if kind == "mean":
        return f"{value:.2f}"
    if kind == "change":
        return f"{value:+.2f}"
    if kind == "money":
        return f"£{value / 100:,.2f}"
    if kind == "date":
        return f"{value.astimezone(zone):%a %-d %b, %H:%M}"  # the year is the report's
    return str(value)


def stored(value: Any, kind: Kind, zone: ZoneInfo) -> Any:
    """A value as the CSV holds it: plain numbers (rates as fractions), ISO local times."""
    if isinstance(value, Fewer):
        return str(value)
    if value is None:
        return ""
    if kind in ("pct", "mean", "change"):
        return f"{value:.4f}"
    if kind == "money":
        return f"{value / 100:.2f}"
    if kind == "date":
        return value.astimezone(zone).isoformat(timespec="minutes")
    return value


# Tables ----------------------------------------------------------------------------------------


ATTENDANCE_COLUMNS = [
    Column("booked", "Booked", "int"),
    Column("attended", "Attended", "int"),
    Column("partly_attended", "Partly", "int"),
    Column("no_shows", "No-shows", "int"),
    Column("late_cancellations", "Late canc.", "int"),
    Column("cancellations", "Cancelled", "int"),
    Column("replaced", "Replaced", "int"),
    Column("not_marked", "Not marked", "int"),
    Column("charges_gbp", "Charges", "money"),
    Column("no_show_rate", "No-show rate", "pct"),
]


def _attendance_values(row: AttendanceRow) -> list[Any]:
    return [
        row.booked,
        row.attended,
        row.partly,
        row.no_shows,
        row.late_cancellations,
        row.cancellations,
        row.replaced,
        row.unmarked,
        row.charges_pence,
        row.no_show_rate,
    ]


# The figures of a change table, after the columns that say which change it is.
CHANGE_COLUMNS = [
    Column("pairs", "Pairs", "int"),
    Column("mean_before", "Before", "mean"),
    Column("mean_after", "After", "mean"),
    Column("mean_change", "Change", "change"),
    Column("improved", "Improved", "int"),
    Column("share_improved", "Share improved", "pct"),
]


def _label(key: str, prefix: str = "") -> str:
    text = key.removeprefix(prefix).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def build_tables(report: QuarterlyReport, *, anonymous: bool) -> dict[str, Table]:
    """Every table of the report, by CSV name, in the order the report shows them."""
    tables: dict[str, Table] = {}
    smallest = report.smallest_group or 0
    # A suppressed row shows "<5" for its count and nothing for its other figures.
    few_note = (
        f" Figures from fewer than {smallest} people are left out of this anonymous edition "
        f"(shown as <{smallest})."
        if smallest
        else ""
    )

    def count(row: Any, value: Any) -> Any:
        return Fewer(smallest) if row.suppressed else value

    def figure(row: Any, value: Any) -> Any:
        return None if row.suppressed else value

    def change_figures(row: ChangeRow) -> list[Any]:
        """The row's values under ``CHANGE_COLUMNS``: "<5" and blanks when suppressed."""
        return [
            count(row, row.pairs),
            *(
                figure(row, value)
                for value in (
                    row.mean_before,
                    row.mean_after,
                    row.mean_change,
                    row.improved,
                    row.improved_share,
                )
            ),
        ]

    session_columns = [
        Column("starts_at", "Date", "date"),
        Column("course", "Course"),
        Column("session", "Session", nowrap=True),
        *([] if anonymous else [Column("trainer", "Trainer")]),
        Column("venue", "Venue", in_html=False),
        Column("status", "Status", in_html=False),
        Column("min_places", "Min", "int", in_html=False),
        Column("max_places", "Places", "int"),
        Column("bookings", "Booked", "int"),
        Column("holding_a_place", "Holding", "int", in_html=False),
        Column("cancelled", "Cancelled", "int"),
        Column("replaced", "Replaced", "int", in_html=False),
        Column("attended", "Attended", "int"),
        Column("partly_attended", "Partly", "int"),
        Column("no_shows", "No-shows", "int"),
        Column("not_marked", "Not marked", "int"),
    ]
    tables["sessions"] = Table(
        "sessions",
        "Courses run in the quarter",
        session_columns,
        [
            [
                row.starts_at,
                row.course + (" (cancelled)" if row.status == "cancelled" else ""),
                row.ref,
                *([] if anonymous else [row.trainer]),
                "online" if row.online else row.venue,
                row.status,
                row.min_places,
                row.max_places,
                row.bookings,
                row.active,
                row.cancelled,
                row.replaced,
                row.attended,
                row.partly,
                row.no_shows,
                row.unmarked,
            ]
            for row in report.sessions
        ],
        note=(
            "Every session that starts in the quarter. Booked counts every booking made, "
            "cancelled ones included; cancelled counts cancellations in time and late. The "
            "CSV adds the venue, the minimum, replacements and the bookings holding a place."
        ),
    )
    tables["attendance_by_agency"] = Table(
        "attendance_by_agency",
        "Attendance by agency",
        [Column("agency", "Agency"), Column("sector", "Sector"), *ATTENDANCE_COLUMNS],
        [[row.group, row.sector or "", *_attendance_values(row)] for row in report.by_agency],
        totals=[["All agencies", "", *_attendance_values(report.totals)]],
        note=(
            "Bookings on the quarter's sessions that ran, by the delegate's agency. "
            "The no-show rate is no-shows / (attended + partly attended + no-shows)."
        ),
    )
    tables["attendance_by_sector"] = Table(
        "attendance_by_sector",
        "Attendance by sector",
        [Column("sector", "Sector"), *ATTENDANCE_COLUMNS],
        [[_label(row.group), *_attendance_values(row)] for row in report.by_sector],
        totals=[["All sectors", *_attendance_values(report.totals)]],
    )
    tables["attendance_by_course"] = Table(
        "attendance_by_course",
        "Attendance by course",
        [Column("course", "Course"), *ATTENDANCE_COLUMNS],
        [[row.group, *_attendance_values(row)] for row in report.by_course],
        totals=[["All courses", *_attendance_values(report.totals)]],
    )
    tables["response_rates"] = Table(
        "response_rates",
        "Response rates by stage",
        [
            Column("stage", "Survey"),
            Column("not_yet_sent", "Not yet sent", "int"),
            Column("sent", "Sent", "int"),
            Column("started", "Started", "int"),
            Column("finished", "Finished", "int"),
            Column("started_rate", "Started %", "pct"),
            Column("finished_rate", "Finished %", "pct"),
        ],
        [
            [
                STAGE_NAMES.get(row.stage, row.stage),
                row.planned,
                row.sent,
                row.started,
                row.finished,
                row.started_rate,
                row.finished_rate,
            ]
            for row in report.responses
        ],
        note=(
            "Surveys of the bookings on the quarter's sessions. Sent: the survey has opened "
            "(and its invitation was sent); started: at least one answer; finished: completed. "
            "Rates are of those sent. Withdrawn surveys (cancelled bookings) are left out."
        ),
    )
    tables["satisfaction"] = Table(
        "satisfaction",
        "Satisfaction per course",
        [
            Column("course", "Course"),
            Column("item", "Item"),
            Column("answers", "Answers", "int"),
            Column("mean", "Mean (1-5)", "mean"),
            Column("rated_4_or_5", "Rated 4-5", "int"),
            Column("share_rated_4_or_5", "Share 4-5", "pct"),
        ],
        [
            [
                row.course,
                _label(row.item, "satisfaction_"),
                count(row, row.answers),
                figure(row, row.mean),
                figure(row, row.satisfied),
                figure(row, row.satisfied_share),
            ]
            for row in report.satisfaction
        ],
        in_html=False,  # shown as the pivot below
    )
    change_columns = [
        Column("course", "Course"),
        Column("measure", "Measure"),
        Column("stages", "Stages", in_html=False),
        *CHANGE_COLUMNS,
    ]

    def change_values(row: ChangeRow) -> list[Any]:
        return [row.course, _label(row.measure), row.transition, *change_figures(row)]

    for transition, title in (("pre to end", "Pre-course to end of course"),
                              ("end to impact", "End of course to impact")):  # fmt: skip
        name = "change_" + transition.replace(" to ", "_to_")
        rows = [r for r in report.change if r.transition == transition]
        tables[name] = Table(
            name,
            f"Change in knowledge and confidence: {title.lower()}",
            change_columns,
            [change_values(r) for r in rows if r.course != "All courses"],
            totals=[change_values(r) for r in rows if r.course == "All courses"],
            note=few_note.strip(),
        )
    tables["change_by_outcome"] = Table(
        "change_by_outcome",
        "Change by learning outcome",
        [
            Column("course", "Course"),
            Column("outcome_number", "Outcome", "int"),
            Column("outcome", "Learning outcome"),
            Column("measure", "Measure"),
            Column("stages", "Stages"),
            *CHANGE_COLUMNS,
        ],
        [
            [
                row.course,
                None if row.outcome_index is None else row.outcome_index + 1,
                row.outcome or "",
                _label(row.measure),
                row.transition,
                *change_figures(row),
            ]
            for row in report.change_by_outcome
        ],
        in_html=False,
    )

    def applied_values(row: AppliedRow) -> list[Any]:
        return [
            row.course,
            count(row, row.answers),
            figure(row, row.applied),
            figure(row, row.share),
        ]

    tables["impact_applied"] = Table(
        "impact_applied",
        "Applying the learning",
        [
            Column("course", "Course"),
            Column("answers", "Answered", "int"),
            Column("applied", "Applied", "int"),
            Column("share_applied", "Share applied", "pct"),
        ],
        [applied_values(r) for r in report.applied if r.course != "All courses"],
        totals=[applied_values(r) for r in report.applied if r.course == "All courses"],
        note="Impact surveys' answers to whether the learning has been used in practice."
        + few_note,
    )  # fmt: skip
    tables["impact_barriers"] = Table(
        "impact_barriers",
        "What got in the way",
        [
            Column("barrier", "Barrier"),
            Column("key", "Key", in_html=False),
            Column("times_chosen", "Times chosen", "int"),
            Column("share_of_those_answering", "Share of those answering", "pct"),
        ],
        [[r.label, r.key, count(r, r.count), figure(r, r.share)] for r in report.barriers],
        note=(
            f"Fewer than {smallest} people who had not applied their learning said what got in "
            "the way, too few to show in this anonymous edition."
            if any(r.suppressed for r in report.barriers)
            else f"{plural(report.barrier_respondents, 'person', 'people')} who had not applied "
            "their learning said what got in the way; each could choose several."
        ),
    )
    tables["manager_view"] = Table(
        "manager_view",
        "Managers' view",
        [
            Column("item", "Question"),
            Column("key", "Key", in_html=False),
            Column("answers", "Answers", "int"),
            Column("kind", "Kind", in_html=False),
            Column("share_yes_or_mean", "Share yes / mean", "mean"),
        ],
        [
            [r.label, r.item, count(r, r.answers), "yes/no" if r.yes_no else "rating",
             figure(r, r.mean)]
            for r in report.manager
        ],
        note="For a yes/no question the figure is the share answering yes (1.00 = all)."
        + few_note,
    )  # fmt: skip
    tables["notable_issues"] = Table(
        "notable_issues",
        "Notable issues",
        [Column("kind", "Issue"), Column("subject", "Where"), Column("detail", "Detail")],
        [[r.kind, r.subject, r.detail] for r in report.issues],
    )
    return tables


def satisfaction_pivot(report: QuarterlyReport) -> tuple[list[str], list[list[str]]]:
    """Satisfaction as a course-by-item grid of "mean (answers)" for the HTML."""
    items = sorted({row.item for row in report.satisfaction})
    grid: dict[str, dict[str, str]] = {}
    for row in report.satisfaction:
        mean = "–" if row.mean is None else f"{row.mean:.2f}"
        answers = f"<{report.smallest_group}" if row.suppressed else str(row.answers)
        grid.setdefault(row.course, {})[row.item] = f"{mean} ({answers})"
    headers = [_label(item, "satisfaction_") for item in items]
    rows = [[course, *(cells.get(item, "–") for item in items)] for course, cells in grid.items()]
    return headers, rows


# Charts ----------------------------------------------------------------------------------------


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    return figure


def _svg(figure: Any, name: str) -> Markup:
    import matplotlib

    buffer = io.StringIO()
    # A salt of its own per chart keeps the SVG ids of several charts in one page apart.
    with matplotlib.rc_context({"svg.hashsalt": f"evalbot-{name}"}):
        figure.savefig(buffer, format="svg")
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.DOTALL)
    return Markup(text)  # matplotlib's own output: it escapes the text it draws


CHART_STYLE: Any = {
    "svg.fonttype": "none",  # text stays text: sharp, searchable, small
    "font.family": "sans-serif",
    "font.sans-serif": ["Arial", "Helvetica", "DejaVu Sans"],
    "font.size": 8.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#6f777b",
    "axes.labelcolor": "#1b1b1b",
    "xtick.color": "#1b1b1b",
    "ytick.color": "#1b1b1b",
    "legend.frameon": False,
}


def _short(text: str, width: int = 38) -> str:
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def attendance_chart(report: QuarterlyReport) -> Markup | None:
    rows = [r for r in report.by_sector if r.booked]
    if not rows:
        return None
    figure = _figure(7.0, 0.9 + 0.32 * len(rows))
    axes = figure.add_subplot()
    labels = [_label(r.group) for r in rows][::-1]
    parts = [
        ("Attended", [r.attended for r in rows], COLOURS["attended"]),
        ("Partly attended", [r.partly for r in rows], COLOURS["partly"]),
        ("No-show", [r.no_shows for r in rows], COLOURS["no_shows"]),
        ("Late cancellation", [r.late_cancellations for r in rows], COLOURS["late"]),
        ("Cancelled", [r.cancellations for r in rows], COLOURS["cancelled"]),
    ]
    left = [0] * len(rows)
    for label, values, colour in parts:
        values = values[::-1]
        axes.barh(labels, values, left=left, color=colour, label=label, height=0.62)
        left = [a + b for a, b in zip(left, values, strict=True)]
    axes.set_xlabel("Bookings")
    axes.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=5, fontsize=7.5)
    axes.grid(axis="x", color="#e5e6e7", linewidth=0.6)
    axes.set_axisbelow(True)
    return _svg(figure, "attendance")


def response_chart(report: QuarterlyReport) -> Markup | None:
    rows = [r for r in report.responses if r.sent]
    if not rows:
        return None
    figure = _figure(7.0, 2.3)
    axes = figure.add_subplot()
    positions = list(range(len(rows)))
    width = 0.36
    for offset, label, values, colour in (
        (-width / 2, "Started", [r.started_rate or 0 for r in rows], COLOURS["started"]),
        (width / 2, "Finished", [r.finished_rate or 0 for r in rows], COLOURS["finished"]),
    ):
        bars = axes.bar(
            [p + offset for p in positions],
            [v * 100 for v in values],
            width=width,
            color=colour,
            label=label,
        )
        axes.bar_label(bars, labels=[f"{v:.0%}" for v in values], fontsize=7.5, padding=2)
    axes.set_xticks(
        positions,
        [f"{STAGE_NAMES.get(r.stage, r.stage)}\n{r.sent:,} sent" for r in rows],
    )
    axes.set_ylim(0, 110)
    axes.set_ylabel("% of those sent")
    axes.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2, fontsize=7.5)
    return _svg(figure, "responses")


def change_chart(report: QuarterlyReport) -> Markup | None:
    rows = [r for r in report.change if r.course != "All courses" and not r.suppressed]
    if not rows:
        return None
    courses = sorted({r.course for r in rows}, key=str.casefold)
    transitions = [
        t for t in ("pre to end", "end to impact") if any(r.transition == t for r in rows)
    ]
    figure = _figure(7.0, 1.0 + 0.36 * len(courses))
    axes_list = figure.subplots(1, len(transitions), sharex=True, sharey=True, squeeze=False)[0]
    labels = [_short(c) for c in courses][::-1]
    height = 0.38
    for axes, transition in zip(axes_list, transitions, strict=True):
        for offset, measure in ((height / 2, "knowledge"), (-height / 2, "confidence")):
            found = {
                r.course: r.mean_change or 0.0
                for r in rows
                if r.transition == transition and r.measure == measure
            }
            # No bar where there is no figure: a gap, not a change of 0.
            values = [found.get(c, math.nan) for c in courses][::-1]
            axes.barh(
                [i + offset for i in range(len(courses))],
                values,
                height=height,
                color=COLOURS[measure],
                label=measure.capitalize(),
            )
        axes.axvline(0, color="#6f777b", linewidth=0.8)
        axes.set_title(transition.capitalize(), fontsize=9)
        axes.set_xlabel("Mean change (points on 1-5)")
        axes.grid(axis="x", color="#e5e6e7", linewidth=0.6)
        axes.set_axisbelow(True)
    axes_list[0].set_yticks(range(len(courses)), labels)
    figure.legend(
        *axes_list[0].get_legend_handles_labels(), loc="outside upper center", ncols=2,
        fontsize=7.5,
    )  # fmt: skip
    return _svg(figure, "change")


def barrier_chart(report: QuarterlyReport) -> Markup | None:
    if not report.barriers or any(r.suppressed for r in report.barriers):
        return None
    from matplotlib.ticker import MaxNLocator

    rows = report.barriers[::-1]
    figure = _figure(7.0, 0.7 + 0.3 * len(rows))
    axes = figure.add_subplot()
    bars = axes.barh(
        [_short(r.label, 60) for r in rows], [r.count for r in rows], color=COLOURS["bar"]
    )
    axes.bar_label(bars, labels=[f"{r.count:,}" for r in rows], fontsize=7.5, padding=2)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 0.2 of a time
    axes.set_xlabel("Times chosen")
    return _svg(figure, "barriers")


def _load_matplotlib() -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display: draw to files only
    import matplotlib.figure


def charts(report: QuarterlyReport) -> dict[str, Markup | None]:
    _load_matplotlib()
    import matplotlib

    with matplotlib.rc_context(CHART_STYLE):
        return {
            "attendance": attendance_chart(report),
            "responses": response_chart(report),
            "change": change_chart(report),
            "barriers": barrier_chart(report),
        }


# Writing ---------------------------------------------------------------------------------------


@dataclass
class ReportFiles:
    folder: Path
    html: Path
    csvs: list[Path] = field(default_factory=list)


def _write_csv(path: Path, headers: list[str], rows: Iterable[Sequence[Any]]) -> None:
    # utf-8-sig: Excel, which most partnerships open CSVs with, then reads the accents right.
    with path.open("w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.writer(handle)
        writer.writerow(headers)
        writer.writerows(rows)


def write_table(folder: Path, table: Table, zone: ZoneInfo) -> Path:
    path = folder / f"{table.name}.csv"
    rows = [*table.rows, *table.totals]
    _write_csv(
        path,
        [c.key for c in table.columns],
        (
            [stored(v, c.kind, zone) for c, v in zip(table.columns, row, strict=True)]
            for row in rows
        ),
    )
    return path


def write_report(
    session: Session,
    quarter: Quarter,
    out: Path,
    *,
    zone: ZoneInfo,
    now: datetime,
    no_show_alert_rate: float,
    anonymous: bool = False,
    partnership: str = "Safeguarding Children Partnership",
    definitions_dir: Path | None = None,
    examples_per_course: int = 3,
    progress: Callable[[str], None] | None = None,
) -> ReportFiles:
    """Compute the quarter's figures and write ``report.html`` and the CSVs into ``out``."""
    step = progress or (lambda _: None)
    out.mkdir(parents=True, exist_ok=True)
    step("figures")
    files = ReportFiles(folder=out, html=out / "report.html")
    bind = session.get_bind()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="report-files") as pool:
        # matplotlib takes a second to import: it loads while the database works.
        loading = pool.submit(_load_matplotlib)
        report = quarterly_report(
            session,
            quarter,
            zone=zone,
            now=now,
            no_show_alert_rate=no_show_alert_rate,
            examples_per_course=examples_per_course,
            definitions_dir=definitions_dir,
        )
        if anonymous:
            report = suppress_small_groups(report)
        smallest = report.smallest_group
        loading.result()
        # Every example goes to its CSV while the charts are drawn, on a connection of its own.
        examples_path = out / "impact_examples.csv"
        writing = (
            pool.submit(_write_examples, bind, examples_path, quarter, zone, smallest)
            if isinstance(bind, Engine)
            else None
        )
        if writing is None:
            _write_examples(session.connection(), examples_path, quarter, zone, smallest)
        tables = build_tables(report, anonymous=anonymous)
        step("tables")
        for table in tables.values():
            files.csvs.append(write_table(out, table, zone))
        step("charts")
        drawn = charts(report)
        if writing is not None:
            writing.result()
    files.csvs.append(examples_path)
    step("page")
    headers, pivot = satisfaction_pivot(report)
    html = (
        environment()
        .get_template("reports/quarterly.html")
        .render(
            report=report,
            quarter=quarter,
            tables=tables,
            charts=drawn,
            zone=zone,
            partnership=partnership,
            anonymous=anonymous,
            satisfaction_headers=headers,
            satisfaction_rows=pivot,
            headline=_headline(report),
            csv_files=[p.name for p in files.csvs],
            no_agency=NO_AGENCY,
            stage_names=STAGE_NAMES,
        )
    )
    files.html.write_text(html, encoding="utf-8")
    return files


def _write_examples(
    source: Engine | Connection,
    path: Path,
    quarter: Quarter,
    zone: ZoneInfo,
    smallest: int | None,
) -> None:
    def write(connection: Connection) -> None:
        rows = all_examples(connection, quarter, zone, smallest=smallest)
        _write_csv(path, ["course", "example"], ([row.course, row.text] for row in rows))

    if isinstance(source, Engine):
        with source.connect() as connection:
            write(connection)
    else:
        write(source)


def _headline(report: QuarterlyReport) -> list[tuple[str, str, str]]:
    """The figures at the top of the page: (value, label, note), each read from a SQL row."""
    zone = report.zone
    end = next((r for r in report.responses if r.stage == Stage.END.value), None)
    knowledge = next(
        (
            r
            for r in report.change
            if r.course == "All courses" and r.transition == "pre to end"
            and r.measure == "knowledge"
        ),
        None,
    )  # fmt: skip
    applied = next((r for r in report.applied if r.course == "All courses"), None)
    few = f"too few people to show (under {report.smallest_group})"
    return [
        (show(report.overview.sessions_run, "int", zone), "sessions run",
         f"{report.overview.sessions_cancelled} cancelled"),
        (show(report.overview.places, "int", zone), "places offered", ""),
        (show(report.totals.booked, "int", zone), "bookings", ""),
        (show(report.overview.delegates, "int", zone), "people trained",
         "attended all or part"),
        (show(report.totals.no_show_rate, "pct", zone), "no-show rate",
         f"{report.totals.no_shows} no-shows"),
        (show(end.finished_rate if end else None, "pct", zone), "finished the evaluation",
         f"of {end.sent if end else 0} sent"),
        (show(knowledge.mean_change if knowledge else None, "change", zone),
         "knowledge, pre to end",
         few if knowledge and knowledge.suppressed
         else f"{knowledge.pairs if knowledge else 0} matched pairs"),
        (show(applied.share if applied else None, "pct", zone), "applying their learning",
         few if applied and applied.suppressed
         else f"of {applied.answers if applied else 0} asked"),
    ]  # fmt: skip
