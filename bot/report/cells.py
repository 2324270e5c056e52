"""How the report shows a value: in a table cell, in a CSV; the tables' columns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo

from surveys.models import Stage

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
    "replaced": "#85994b",
    "unmarked": "#ffdd00",
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
    in_csv: bool = True

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
    # The page shows at most this many rows (a board reads a page, not thousands of rows);
    # the CSV has them all.
    html_limit: int | None = None

    def html_columns(self) -> list[Column]:
        return [c for c in self.columns if c.in_html]

    def html_rows(self, zone: ZoneInfo) -> list[list[tuple[str, str]]]:
        return [self._cells(row, zone) for row in self.rows[: self.html_limit]]

    @property
    def rows_left_out(self) -> int:
        """How many rows the page leaves to the CSV."""
        return 0 if self.html_limit is None else max(0, len(self.rows) - self.html_limit)

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


@dataclass(frozen=True)
class WithN:
    """A figure shown with the number it rests on, "+0.42 (35)"; the CSV has the figure only
    (the number goes in a column of its own)."""

    value: Any
    n: int


@dataclass(frozen=True)
class Delta:
    """A difference between two periods, shown signed: "+3", "-1.5 pts", "+0.12"."""

    value: float | int | None


def show(value: Any, kind: Kind, zone: ZoneInfo) -> str:
    """A value as the HTML shows it."""
    if isinstance(value, Fewer):
        return str(value)
    if isinstance(value, WithN):
        return f"{show(value.value, kind, zone)} ({value.n:,})"
    if isinstance(value, Delta):
        if value.value is None:
            return "–"
        if kind == "pct":
            return f"{value.value * 100:+.1f} pts"
        return f"{value.value:+,}" if kind == "int" else f"{value.value:+.2f}"
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
    if isinstance(value, WithN | Delta):
        return stored(value.value, kind, zone)
    if value is None:
        return ""
    if kind in ("pct", "mean", "change"):
        return f"{value:.4f}"
    if kind == "money":
        return f"{value / 100:.2f}"
    if kind == "date":
        return value.astimezone(zone).isoformat(timespec="minutes")
    return value


def readable(key: str, prefix: str = "") -> str:
    text = key.removeprefix(prefix).replace("_", " ").strip()
    return text[:1].upper() + text[1:]
