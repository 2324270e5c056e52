"""The quarterly report as files: ``report.html`` and a CSV for every table.

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

from bot.report.csvfile import write_table
from bot.report.files import ReportFiles, write_report
from bot.report.tables import build_tables

__all__ = ["ReportFiles", "build_tables", "write_report", "write_table"]
