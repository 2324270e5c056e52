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


def _png(width: int = 8, height: int = 4) -> bytes:
    """A small valid PNG: solid dark blue."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + b"\x00\x4b\x87" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def test_the_partnerships_logo_is_on_the_certificate(
    session: Session, quarter_world: QuarterWorld, tmp_path
) -> None:
    from bot.settings import load_settings

    logo = tmp_path / "logo.png"
    logo.write_bytes(_png())
    load_settings(logo=logo)  # sets the templates' look for the process, as start-up does
    reader = PdfReader(
        io.BytesIO(certificate_pdf(session, quarter_world.bookings["B1"], **SETTINGS))
    )
    assert len(reader.pages[0].images) == 1
    load_settings()  # and back to no logo
    plain = PdfReader(
        io.BytesIO(certificate_pdf(session, quarter_world.bookings["B1"], **SETTINGS))
    )
    assert len(plain.pages[0].images) == 0
