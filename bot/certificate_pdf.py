"""Certificates of attendance as PDF: one delegate's, to attach to the certificate email or
download, and a whole session's or agency's in one file for the training team.

Only bookings that have earned a certificate (``schedules.certificates.certificate_status``:
attended the whole course and finished the end-of-course evaluation) are included; asking for
one that has not is an error saying why, in the words the delegate would read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from bot.channels.base import Attachment
from bot.report.pdf import html_to_pdf
from bot.templating import environment
from schedules.certificates import TEMPLATE as CERTIFICATE_TEMPLATE
from schedules.certificates import CertificateState, CertificateStatus, certificate_status
from surveys.models import Booking, BookingStatus, CourseSession, Person


class NoCertificate(ValueError):
    """What was asked for has no certificate; the message says why."""


def _pdf(certificates: list[CertificateStatus], *, partnership: str, zone: str) -> bytes:
    html = (
        environment()
        .get_template("certificates/certificates.html")
        .render(certificates=certificates, partnership=partnership, zone=zone)
    )
    return html_to_pdf(html)


def certificate_pdf(session: Session, booking: Booking, *, partnership: str, zone: str) -> bytes:
    """One delegate's certificate, one A4 page; ``NoCertificate`` if it is not earned."""
    status = certificate_status(session, booking)
    if not status.ready:
        raise NoCertificate(status.message)
    return _pdf([status], partnership=partnership, zone=zone)


def certificate_attachment(
    template: str, context: Mapping[str, Any], *, partnership: str, zone: str
) -> Attachment | None:
    """The certificate as a PDF attachment of the "certificate ready" email, made from the
    message's own context (which the tick wrote when the certificate was earned), or None for
    any other message."""
    if template != CERTIFICATE_TEMPLATE:
        return None
    status = CertificateStatus(
        state=CertificateState.READY,
        message="",
        booking_ref=context["booking_ref"],
        delegate_name=context["delegate_name"],
        course_title=context["course_title"],
        starts_at=datetime.fromisoformat(context["session_starts_at"]),
        ends_at=datetime.fromisoformat(context["session_ends_at"]),
        day_length=context["day_length"],
    )
    data = _pdf([status], partnership=partnership, zone=zone)
    name = f"certificate-{context['booking_ref']}.pdf".replace("/", "-")
    return Attachment(filename=name, content_type="application/pdf", data=data)


def certificates_pdf(
    session: Session, bookings: Iterable[Booking], *, partnership: str, zone: str
) -> bytes:
    """Every earned certificate among ``bookings``, one page each, in one file, in the order
    given; ``NoCertificate`` when none of them has one."""
    ready = [s for s in (certificate_status(session, b) for b in bookings) if s.ready]
    if not ready:
        raise NoCertificate("None of these bookings has a certificate of attendance yet.")
    return _pdf(ready, partnership=partnership, zone=zone)


def session_certificates_pdf(
    session: Session, course_session_id: int, *, partnership: str, zone: str
) -> bytes:
    """The certificates of one session's delegates, by name."""
    bookings = session.exec(
        select(Booking)
        .join(Person, col(Person.id) == Booking.delegate_id)
        .where(Booking.session_id == course_session_id, Booking.status == BookingStatus.ATTENDED)
        .order_by(col(Person.name), col(Booking.id))
    ).all()
    return certificates_pdf(session, bookings, partnership=partnership, zone=zone)


def agency_certificates_pdf(
    session: Session,
    agency_id: int,
    *,
    partnership: str,
    zone: str,
    date_from: date | None = None,
    date_to: date | None = None,
) -> bytes:
    """The certificates of one agency's delegates, on sessions between the two local dates
    (inclusive, either open), by date then name."""
    local = ZoneInfo(zone)
    query = (
        select(Booking)
        .join(Person, col(Person.id) == Booking.delegate_id)
        .join(CourseSession, col(CourseSession.id) == Booking.session_id)
        .where(Person.agency_id == agency_id, Booking.status == BookingStatus.ATTENDED)
        .order_by(col(CourseSession.starts_at), col(Person.name), col(Booking.id))
    )
    if date_from is not None:
        query = query.where(CourseSession.starts_at >= _midnight(date_from, local))
    if date_to is not None:
        query = query.where(CourseSession.starts_at < _midnight(date_to + timedelta(days=1), local))
    return certificates_pdf(session, session.exec(query).all(), partnership=partnership, zone=zone)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)
