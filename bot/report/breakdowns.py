"""The breakdowns (by sector, agency, role and course level) and the targets as tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from bot.report.cells import Column, Fewer, Table, WithN, readable, show
from surveys.report.breakdowns import DIMENSION_NAMES, DIMENSIONS
from surveys.report.rows import BreakdownRow
from surveys.report.targets import TargetResult


def breakdown_tables(
    found: dict[str, list[BreakdownRow]], smallest: int | None, *, what: str
) -> dict[str, Table]:
    """A table per dimension, ``breakdown_by_<dimension>``; ``what`` is "quarter" or "year"."""

    def measured(row: BreakdownRow, measure: str, value: float | None, n: int) -> Any:
        if measure in row.hidden:
            return Fewer(smallest or 0)
        return WithN(value, n)

    tables = {}
    for dimension in DIMENSIONS:
        name = f"breakdown_by_{dimension}"
        tables[name] = Table(
            name,
            f"By {DIMENSION_NAMES[dimension].lower()}",
            [
                Column(dimension, DIMENSION_NAMES[dimension]),
                Column("booked", "Booked", "int"),
                Column("holding_a_place", "Holding a place", "int"),
                Column("attended", "Attended", "int"),
                Column("no_shows", "No-shows", "int", in_html=False),
                Column("no_show_rate", "No-show rate", "pct"),
                Column("satisfaction_mean", "Satisfaction (1-5)", "mean"),
                Column("satisfaction_answers", "answers", "int", in_html=False),
                Column("knowledge_change_pre_to_end", "Knowledge, pre to end", "change"),
                Column("pairs", "pairs", "int", in_html=False),
                Column("applied_share", "Applied learning", "pct"),
                Column("applied_answers", "answers", "int", in_html=False),
            ],
            [
                [
                    readable(row.group) if dimension in ("sector", "level") else row.group,
                    row.booked,
                    row.held,
                    row.attended,
                    row.no_shows,
                    row.no_show_rate,
                    measured(row, "satisfaction", row.satisfaction, row.ratings),
                    None if "satisfaction" in row.hidden else row.ratings,
                    measured(row, "knowledge", row.knowledge_change, row.pairs),
                    None if "knowledge" in row.hidden else row.pairs,
                    measured(row, "applied", row.applied_share, row.applied_answers),
                    None if "applied" in row.hidden else row.applied_answers,
                ]
                for row in found.get(dimension, [])
            ],
            note=(
                f"Bookings on the {what}'s sessions that ran, by the delegate's "
                f"{'agency' if dimension in ('sector', 'agency') else dimension}; a role or "
                "level the booking export did not give is 'not recorded'. Satisfaction, the "
                "change in knowledge and applying the learning are shown with how many answers "
                "(pairs) they rest on."
                + (
                    f" Groups with fewer than {smallest} bookings are counted together, and "
                    f"figures from fewer than {smallest} answers left out (<{smallest})."
                    if smallest
                    else ""
                )
            ),
        )
    return tables


def target_table(
    results: Sequence[TargetResult], zone: ZoneInfo, *, name: str = "targets"
) -> Table:
    """The targets beside the actual figures, each marked met or not."""

    def figure(value: float | None, kind: Any) -> str:
        return show(value, kind, zone)

    return Table(
        name,
        "Targets",
        [
            Column("label", "Target"),
            Column("key", "Key", in_html=False),
            Column("aim_text", "Aim", in_csv=False),
            Column("actual_text", "Actual", in_csv=False),
            Column("aim", "aim", "mean", in_html=False),
            Column("actual", "actual", "mean", in_html=False),
            Column("result", "Result"),
        ],
        [
            [
                result.label,
                result.key,
                ("at most " if result.at_most else "at least ") + figure(result.aim, result.kind),
                figure(result.actual, result.kind),
                result.aim,
                result.actual,
                result.verdict,
            ]
            for result in results
        ],
        note="The partnership's targets ([report.targets] in evalbot.toml) beside the figure "
        "this report computes. Rates and shares are of the same figures as the tables below.",
    )
