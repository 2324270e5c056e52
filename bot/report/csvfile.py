"""Every CSV the reports write goes through ``write_csv_rows``: one place to decide how a cell is
written. Text that a spreadsheet would run as a formula is written as plain text
(``surveys.csv_safe``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from bot.report.cells import Table, stored
from surveys import csv_safe


def write_csv_rows(handle: TextIO, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Write the header and the rows to an open text file; returns how many rows."""
    writer = csv_safe.writer(handle)
    writer.writerow(headers)
    count = 0
    for row in rows:
        writer.writerow(row)
        count += 1
    return count


def write_csv(path: Path, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    # utf-8-sig: Excel, which most partnerships open CSVs with, then reads the accents right.
    with path.open("w", newline="", encoding="utf-8-sig") as handle:
        return write_csv_rows(handle, headers, rows)


def write_table(folder: Path, table: Table, zone: ZoneInfo) -> Path:
    """A table's CSV, ``<name>.csv``: its rows then its totals, values as ``stored`` keeps them."""
    path = folder / f"{table.name}.csv"
    write_csv(
        path,
        [c.key for c in table.columns if c.in_csv],
        (
            [stored(v, c.kind, zone) for c, v in zip(table.columns, row, strict=True) if c.in_csv]
            for row in [*table.rows, *table.totals]
        ),
    )
    return path
