"""The quarterly and annual reports as files: ``report.html``, a CSV for every table, and on
request ``report.pdf``.

The modules: ``cells`` (how a value is shown and stored), ``tables`` (the quarterly report's
tables), ``trend`` (periods side by side: the annual report, and the comparison with the previous
quarter), ``breakdowns`` (by group, and the targets), ``levels`` (the Kirkpatrick levels and the
coordinator's notes), ``charts``, ``csvfile`` (every CSV is written there), ``files`` and
``annual`` (writing each report), ``pdf`` (WeasyPrint).

``report.html`` is one self-contained file: its styles are inline, its charts are SVG drawn by
matplotlib and embedded in the page, and it prints on A4 (``@page``). The figures all come from
``surveys.report``, which computes them in SQL; this module only lays them out. With
``anonymous`` no person's name appears anywhere: the trainer column is left out of the
sessions table and its CSV (agencies are organisations and stay, but one with fewer bookings
than ``EVALBOT_REPORT_MIN_GROUP`` is merged into "Other agencies"), and every survey figure that
rests on fewer people than that is left out (``surveys.report.suppress_small_groups``), its
count shown as "<5". Free-text examples are never shown with who wrote them, in either edition,
and the names, email addresses and phone numbers in them are taken out
(``surveys.report.NameScrubber``).
"""

from __future__ import annotations

from bot.report.annual import write_annual
from bot.report.csvfile import write_csv, write_csv_rows, write_table
from bot.report.files import ReportFiles, write_report
from bot.report.pdf import html_to_pdf, write_pdf
from bot.report.tables import build_tables

__all__ = [
    "ReportFiles",
    "build_tables",
    "html_to_pdf",
    "write_annual",
    "write_csv",
    "write_csv_rows",
    "write_pdf",
    "write_report",
    "write_table",
]
