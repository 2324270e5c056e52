"""Periods side by side: the annual report's tables and charts, and the quarterly report's
comparison with the quarter before. One row per period, in three tables: courses and
attendance, response rates, and outcomes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from markupsafe import Markup

from bot.report.cells import COLOURS, STAGE_NAMES, Column, Delta, Fewer, Table, WithN
from bot.report.charts import figure_for, svg
from surveys.report.rows import Measured, PeriodSummary
from surveys.report.trend import stage_order

CHANGES = [
    ("pre to end", "knowledge"),
    ("pre to end", "confidence"),
    ("end to impact", "knowledge"),
    ("end to impact", "confidence"),
]


def _measured(measured: Measured, smallest: int | None) -> Any:
    if measured.suppressed:
        return Fewer(smallest or 0)
    return WithN(measured.value, measured.n)


def _delta(after: Any, before: Any) -> Delta:
    """``after - before`` for two cells of one column; blank when either has no figure."""
    a = after.value if isinstance(after, WithN) else after
    b = before.value if isinstance(before, WithN) else before
    if not isinstance(a, int | float) or not isinstance(b, int | float):
        return Delta(None)
    return Delta(a - b)


def trend_tables(
    summaries: Sequence[PeriodSummary],
    *,
    prefix: str,
    smallest: int | None = None,
    compare: bool = False,
) -> dict[str, Table]:
    """The three tables, one row per summary; with ``compare`` (two summaries, the earlier
    first) a last row gives the change from the first to the second."""
    stages = stage_order(summaries)

    def table(
        name: str,
        title: str,
        columns: list[Column],
        cells: Callable[[PeriodSummary], list[Any]],
        note: str,
    ) -> Table:
        rows = [[summary.label, *cells(summary)] for summary in summaries]
        totals: list[list[Any]] = []
        if compare and len(rows) == 2:
            totals = [["Change", *(_delta(a, b) if column.numeric else "" for column, a, b
                       in zip(columns, rows[1][1:], rows[0][1:], strict=True))]]  # fmt: skip
        return Table(f"{prefix}_{name}", title, [Column("period", "Period"), *columns], rows,
                     totals=totals, note=note)  # fmt: skip

    tables = [
        table(
            "courses",
            "Courses and attendance",
            [
                Column("sessions_run", "Sessions run", "int"),
                Column("sessions_cancelled", "Cancelled", "int"),
                Column("sessions_to_come", "To come", "int", in_html=False),
                Column("places", "Places", "int"),
                Column("places_taken", "Taken", "int"),
                Column("fill_rate", "Fill rate", "pct"),
                Column("bookings", "Bookings", "int"),
                Column("attendance_rate", "Attended", "pct"),
                Column("no_show_rate", "No-shows", "pct"),
            ],
            lambda s: [
                s.sessions_run,
                s.sessions_cancelled,
                s.sessions_to_come,
                s.places,
                s.places_taken,
                s.fill_rate,
                s.bookings,
                s.attendance_rate,
                s.no_show_rate,
            ],
            "Fill rate: bookings holding a place / places offered on sessions not cancelled "
            "(those with a maximum). Attended (all or part) and no-shows are shares of those "
            "expected on the day.",
        ),
        table(
            "responses",
            "Response rates by stage",
            [
                column
                for stage in stages
                for column in (
                    Column(f"{stage}_finished_rate", STAGE_NAMES.get(stage, stage), "pct"),
                    Column(f"{stage}_sent", f"{stage} sent", "int", in_html=False),
                )
            ],
            lambda s: [
                value
                for stage in stages
                for value in (
                    _measured(s.responses.get(stage, Measured(None, 0)), smallest),
                    s.responses.get(stage, Measured(None, 0)).n,
                )
            ],
            "The share of the surveys sent that were finished, with the number sent in brackets.",
        ),
        table(
            "outcomes",
            "Satisfaction and change",
            [
                Column("satisfaction_mean", "Satisfaction (1-5)", "mean"),
                Column("satisfaction_answers", "answers", "int", in_html=False),
                Column("rated_4_or_5", "Rated 4-5", "pct"),
                *(
                    column
                    for transition, measure in CHANGES
                    for column in (
                        Column(
                            f"{measure}_{transition.replace(' ', '_')}",
                            f"{measure.capitalize()}, {transition}",
                            "change",
                        ),
                        Column(
                            f"{measure}_{transition.replace(' ', '_')}_pairs",
                            "pairs",
                            "int",
                            in_html=False,
                        ),
                    )
                ),
                Column("applied_share", "Applied learning", "pct"),
                Column("applied_answers", "answers", "int", in_html=False),
            ],
            lambda s: [
                _measured(s.satisfaction, smallest),
                s.satisfaction.n,
                None if s.satisfied.suppressed else s.satisfied.value,
                *(
                    value
                    for key in CHANGES
                    for value in (_measured(s.change[key], smallest), s.change[key].n)
                ),
                _measured(s.applied, smallest),
                s.applied.n,
            ],
            "Mean satisfaction over every rating of the end-of-course survey; mean change "
            "(points on 1-5) over matched pairs of one person's answers to the same question, "
            "with the number of pairs in brackets; the share of those asked at impact who had "
            "applied their learning."
            + (
                f" Figures from fewer than {smallest} people are left out (<{smallest})."
                if smallest
                else ""
            ),
        ),
    ]
    return {table.name: table for table in tables}


def trend_charts(summaries: Sequence[PeriodSummary]) -> dict[str, Markup | None]:
    """Two line charts across the periods: the rates, and the mean changes."""
    from bot.report.charts import CHART_STYLE, load_matplotlib

    load_matplotlib()
    import matplotlib

    labels = [summary.label for summary in summaries]
    with matplotlib.rc_context(CHART_STYLE):
        rates: list[tuple[str, list[float | None], str]] = [
            ("Fill rate", [s.fill_rate for s in summaries], COLOURS["partly"]),
            ("Attended", [s.attendance_rate for s in summaries], COLOURS["attended"]),
            ("No-shows", [s.no_show_rate for s in summaries], COLOURS["no_shows"]),
            *(
                (
                    f"{STAGE_NAMES.get(stage, stage)} finished",
                    [s.responses.get(stage, Measured(None, 0)).value for s in summaries],
                    colour,
                )
                for stage, colour in (("end", COLOURS["late"]), ("impact", COLOURS["replaced"]))
            ),
        ]
        changes = [
            (
                f"{measure.capitalize()}, {transition}",
                [s.change[(transition, measure)].value for s in summaries],
                COLOURS[measure],
                "-" if transition == "pre to end" else "--",
            )
            for transition, measure in CHANGES
        ]
        return {
            "rates": _lines(
                labels,
                [(n, v, c, "-") for n, v, c in rates],
                "% of those expected or sent",
                "trend-rates",
                100,
            ),
            "change": _lines(labels, changes, "Mean change (points on 1-5)", "trend-change", 1),
        }


def _lines(
    labels: list[str],
    series: list[tuple[str, list[float | None], str, str]],
    ylabel: str,
    name: str,
    scale: float,
) -> Markup | None:
    import math

    drawn = [s for s in series if any(value is not None for value in s[1])]
    if not drawn:
        return None
    figure = figure_for(7.0, 2.6)
    axes = figure.add_subplot()
    positions = list(range(len(labels)))
    for label, values, colour, style in drawn:
        points = [math.nan if v is None else v * scale for v in values]
        axes.plot(positions, points, style, marker="o", color=colour, label=label, linewidth=1.6)
    axes.set_xticks(positions, labels)
    axes.set_ylabel(ylabel)
    if scale == 100:
        axes.set_ylim(0, 105)
    else:
        axes.axhline(0, color="#6f777b", linewidth=0.8)
    axes.grid(axis="y", color="#e5e6e7", linewidth=0.6)
    axes.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=3, fontsize=7.5)
    return svg(figure, name)
