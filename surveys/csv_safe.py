"""CSV files that a spreadsheet opens as data, never as formulas.

Free text and imported names reach every CSV Evalbot writes. A cell that begins with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return is read by Excel and LibreOffice as a formula
(``=HYPERLINK(...)`` becomes a live link), so such a text cell is written with a leading
apostrophe, which the spreadsheet shows as plain text, as OWASP's guidance on CSV injection
advises. Numbers are written as they are, so a negative score stays a number.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import IO, Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """``value`` as it may stand in a CSV cell."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class SafeWriter:
    """``csv.writer`` with every text cell made safe first."""

    def __init__(self, handle: IO[str], **options: Any) -> None:
        self._writer = csv.writer(handle, **options)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([safe_cell(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(handle: IO[str], **options: Any) -> SafeWriter:
    """A CSV writer for ``handle`` whose text cells cannot become formulas."""
    return SafeWriter(handle, **options)
