"""Certificates of attendance as PDF, for one delegate and a whole session or agency, opened
with pypdf, on the hand-counted quarter of tests/test_report.py."""

from __future__ import annotations

import io
from datetime import date

import pytest
from pypdf import PdfReader
from sqlmodel import Session

from bot.certificate_pdf import (
    NoCertificate,
    agency_certificates_pdf,
    certificate_pdf,
    session_certificates_pdf,
)
from surveys.models import Agency, Person
from tests.report_world import NM, WT, QuarterWorld
from tests.report_world import quarter_world as quarter_world

SETTINGS = {
    "partnership": "Riverside & Northgate Safeguarding Partnership",
    "zone": "Europe/London",
}


def pages(data: bytes) -> list[str]:
    assert data.startswith(b"%PDF")
    return [" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(data)).pages]


def test_one_delegates_certificate(session: Session, quarter_world: QuarterWorld) -> None:
    w = quarter_world
    (text,) = pages(certificate_pdf(session, w.bookings["B1"], **SETTINGS))
    for words in ("Certificate of attendance", "This is to certify that", "Alice Okafor",
                  "attended the whole of the course", WT, "on Tuesday 20 January 2026, 09:30 to "
                  "15:30", "Duration: 6 hours (full day)", "Riverside & Northgate Safeguarding "
                  "Partnership", "Booking B1"):  # fmt: skip
        assert words in text, words
    reader = PdfReader(io.BytesIO(certificate_pdf(session, w.bookings["B1"], **SETTINGS)))
    width, height = (float(v) for v in reader.pages[0].mediabox.upper_right)
    assert (round(width / 72 * 25.4), round(height / 72 * 25.4)) == (210, 297)
    # Jo attended part of the course: no certificate, and the reason.
    with pytest.raises(NoCertificate, match="attended part of the course"):
        certificate_pdf(session, w.bookings["B8"], **SETTINGS)
    # Ian has not finished his evaluation yet.
    with pytest.raises(NoCertificate, match="finish the end-of-course evaluation"):
        certificate_pdf(session, w.bookings["B7"], **SETTINGS)


def test_a_whole_session_and_a_whole_agency_in_one_file(
    session: Session, quarter_world: QuarterWorld
) -> None:
    w = quarter_world
    first = w.bookings["B1"].session_id
    # Working Together, 20 January: Alice and Chloé have earned theirs; Ian has not yet.
    texts = pages(session_certificates_pdf(session, first, **SETTINGS))
    assert len(texts) == 2
    assert "Alice Okafor" in texts[0] and "Chloé O'Brien" in texts[1]
    assert all("Ian Cole" not in text for text in texts)
    riverside = w.session.get(Person, w.people["Alice"].id)
    assert riverside is not None and riverside.agency_id is not None
    agency = w.session.get(Agency, riverside.agency_id)
    assert agency is not None and agency.id is not None
    # Riverside: Alice's Working Together in December and January, and Neglect Matters.
    texts = pages(agency_certificates_pdf(session, agency.id, **SETTINGS))
    assert [(WT in t, NM in t) for t in texts] == [(True, False), (True, False), (False, True)]
    assert "Monday 15 December 2025" in texts[0]
    later = agency_certificates_pdf(session, agency.id, date_from=date(2026, 2, 1), **SETTINGS)
    assert len(pages(later)) == 1
    with pytest.raises(NoCertificate, match="None of these bookings"):
        agency_certificates_pdf(session, agency.id, date_to=date(2025, 12, 1), **SETTINGS)
