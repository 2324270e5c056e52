"""The report's charts: SVG drawn by matplotlib, text kept as text."""

from __future__ import annotations

import io
import math
import re
from typing import Any

from markupsafe import Markup

from bot.report.cells import (
    COLOURS,
    STAGE_NAMES,
    readable,
)
from surveys.report import (
    QuarterlyReport,
)

# Charts ----------------------------------------------------------------------------------------


def figure_for(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    return figure


def svg(figure: Any, name: str) -> Markup:
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
    """Bookings by sector, one bar each split by what became of them, to the whole booked.

    Every part drawn has its colour in the legend, and only those (a status no booking has is
    neither drawn nor listed); the count axis has whole numbers only.
    """
    from matplotlib.ticker import MaxNLocator

    rows = [r for r in report.by_sector if r.booked]
    if not rows:
        return None
    parts = [
        (label, values[::-1], colour)
        for label, values, colour in (
            ("Attended", [r.attended for r in rows], COLOURS["attended"]),
            ("Partly attended", [r.partly for r in rows], COLOURS["partly"]),
            ("No-show", [r.no_shows for r in rows], COLOURS["no_shows"]),
            ("Late cancellation", [r.late_cancellations for r in rows], COLOURS["late"]),
            ("Cancelled", [r.cancellations for r in rows], COLOURS["cancelled"]),
            ("Replaced", [r.replaced for r in rows], COLOURS["replaced"]),
            ("Not marked yet", [r.unmarked for r in rows], COLOURS["unmarked"]),
        )
        if any(values)
    ]
    figure = figure_for(7.0, 1.1 + 0.32 * len(rows))
    axes = figure.add_subplot()
    labels = [readable(r.group) for r in rows][::-1]
    left = [0] * len(rows)
    for name, values, colour in parts:
        axes.barh(labels, values, left=left, color=colour, label=name, height=0.62)
        left = [a + b for a, b in zip(left, values, strict=True)]
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # bookings: no half a booking
    axes.set_xlabel("Bookings")
    axes.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=4, fontsize=7.5)
    axes.grid(axis="x", color="#e5e6e7", linewidth=0.6)
    axes.set_axisbelow(True)
    return svg(figure, "attendance")


def response_chart(report: QuarterlyReport) -> Markup | None:
    rows = [r for r in report.responses if r.sent]
    if not rows:
        return None
    figure = figure_for(7.0, 2.3)
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
    return svg(figure, "responses")


def change_chart(report: QuarterlyReport) -> Markup | None:
    rows = [r for r in report.change if r.course != "All courses" and not r.suppressed]
    if not rows:
        return None
    courses = sorted({r.course for r in rows}, key=str.casefold)
    transitions = [
        t for t in ("pre to end", "end to impact") if any(r.transition == t for r in rows)
    ]
    figure = figure_for(7.0, 1.0 + 0.36 * len(courses))
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
    return svg(figure, "change")


def barrier_chart(report: QuarterlyReport) -> Markup | None:
    if not report.barriers or any(r.suppressed for r in report.barriers):
        return None
    from matplotlib.ticker import MaxNLocator

    rows = report.barriers[::-1]
    figure = figure_for(7.0, 0.7 + 0.3 * len(rows))
    axes = figure.add_subplot()
    bars = axes.barh(
        [_short(r.label, 60) for r in rows], [r.count for r in rows], color=COLOURS["bar"]
    )
    axes.bar_label(bars, labels=[f"{r.count:,}" for r in rows], fontsize=7.5, padding=2)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 0.2 of a time
    axes.set_xlabel("Times chosen")
    return svg(figure, "barriers")


def load_matplotlib() -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display: draw to files only
    import matplotlib.figure


def charts(report: QuarterlyReport) -> dict[str, Markup | None]:
    load_matplotlib()
    import matplotlib

    with matplotlib.rc_context(CHART_STYLE):
        return {
            "attendance": attendance_chart(report),
            "responses": response_chart(report),
            "change": change_chart(report),
            "barriers": barrier_chart(report),
        }
