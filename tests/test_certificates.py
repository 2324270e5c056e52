"""Certificates of attendance: earned by attending every part and finishing the evaluation."""

from __future__ import annotations

import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from bot.links import url_for
from bot.settings import Settings
from schedules.attendance import close_register, mark
from schedules.certificates import (
    CertificateState,
    certificate_link,
    certificate_status,
    queue_certificate_notices,
)
from schedules.policy import Policy, load_policy
from surveys.models import (
    AuditEntry,
    BookingStatus,
    InvitationStatus,
    LinkPurpose,
    OutboxMessage,
    Stage,
    SurveyInvitation,
)
from tests.conftest import utc
from tests.test_cancellation import (
    Mailbox,
    client_at,
    link_in,
    make_settings,
    telegram_texts,
    to,
)

OPENS = utc("2026-03-16 09:15")
END = utc("2026-03-16 16:30")
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path)


@pytest.fixture
def policy(settings: Settings) -> Policy:
    return load_policy(settings.policy)


@pytest.fixture
def people(world, session, settings, policy):
    """Alice attended, Chloé attended part; both have an end-of-course evaluation."""
    people = world.standard()
    mark(
        session,
        people["alice_booking"],
        BookingStatus.ATTENDED,
        now=OPENS,
        actor="t",
        policy=policy,
        secret=settings.secret,
    )
    mark(
        session,
        people["chloe_booking"],
        BookingStatus.PARTLY_ATTENDED,
        now=OPENS,
        actor="t",
        policy=policy,
    )
    close_register(session, people["session"], now=END, actor="t", policy=policy)
    for name in ("alice", "chloe"):
        booking = people[f"{name}_booking"]
        people[f"{name}_evaluation"] = SurveyInvitation(
            booking_id=booking.id,
            person_id=booking.delegate_id,
            stage=Stage.END,
            opens_at=END,
            closes_at=END + timedelta(days=14),
            status=InvitationStatus.OPEN,
        )
        session.add(people[f"{name}_evaluation"])
    session.commit()
    return people


def finish(session, invitation, at=utc("2026-03-16 17:00")):
    invitation.status = InvitationStatus.FINISHED
    invitation.finished_at = at
    session.add(invitation)
    session.commit()


def certificate_url(settings, booking) -> str:
    return url_for(settings, LinkPurpose.CERTIFICATE, f"booking:{booking.id}").removeprefix(
        "http://testserver"
    )


def test_attended_and_finished_gets_a_certificate(people, session, engine, settings):
    alice = people["alice_booking"]
    assert certificate_status(session, alice).state is CertificateState.EVALUATION_UNFINISHED
    finish(session, people["alice_evaluation"])
    status = certificate_status(session, alice)
    assert status.ready and status.duration_text == "7 hours" and status.day_length == "full day"

    # Marking her attended recorded the link, so the thank-you page can show it at once.
    page = client_at(settings, engine, utc("2026-03-16 17:01")).get(
        certificate_url(settings, alice)
    )
    assert page.status_code == 200
    text = re.sub(r"\s+", " ", page.text)
    assert "Certificate of attendance" in text
    assert "Alice Okafor" in text
    assert "Working Together to Safeguard Children" in text
    assert "on Monday 16 March 2026, 09:30 to 16:30" in text
    assert "Duration: 7 hours (full day)" in text
    assert "Riverside Safeguarding Children Partnership" in text
    assert "@page { size: A4 portrait; margin: 0; }" in text


def test_partly_attended_gets_no_certificate_and_is_told_why(people, session, engine, settings):
    chloe = people["chloe_booking"]
    finish(session, people["chloe_evaluation"])
    status = certificate_status(session, chloe)
    assert status.state is CertificateState.PARTLY_ATTENDED and not status.ready
    assert "only for attending every part of a course" in status.message
    token = certificate_link(session, chloe, secret=settings.secret)
    session.commit()
    page = client_at(settings, engine, utc("2026-03-17 09:00")).get(f"/certificate/{token}")
    assert page.status_code == 200
    assert "only for attending every part of a course" in page.text
    assert "Certificate of attendance</p>" not in page.text
    assert "Chloé O&#39;Brien &lt;Health &amp; Care&gt;" in page.text and "<Health" not in page.text
    # Nor is a certificate email queued for her.
    assert (
        queue_certificate_notices(
            session,
            now=utc("2026-03-17 09:00"),
            policy=load_policy({}),
            zone=settings.zone,
            secret=settings.secret,
        )
        == 0
    )


def test_unfinished_evaluation_asks_to_finish_it_first(people, session, engine, settings):
    alice = people["alice_booking"]
    evaluation = people["alice_evaluation"]
    page = client_at(settings, engine, utc("2026-03-16 17:01")).get(
        certificate_url(settings, alice)
    )
    assert page.status_code == 200
    assert "Please finish the end-of-course evaluation first" in page.text
    survey = url_for(settings, LinkPurpose.SURVEY, f"invitation:{evaluation.id}")
    assert f'href="{survey}"' in page.text and "Finish the evaluation" in page.text
    assert "Duration:" not in page.text


def test_the_certificate_email_goes_once_to_those_who_earned_it(
    people, session, engine, settings, policy
):
    finish(session, people["alice_evaluation"], at=utc("2026-03-16 19:00"))
    finish(session, people["chloe_evaluation"], at=utc("2026-03-16 19:00"))
    now = utc("2026-03-16 19:01")
    assert (
        queue_certificate_notices(
            session, now=now, policy=policy, zone=settings.zone, secret=settings.secret
        )
        == 1
    )
    assert (
        queue_certificate_notices(
            session, now=now, policy=policy, zone=settings.zone, secret=settings.secret
        )
        == 0
    )
    session.commit()
    mailbox = Mailbox(engine, settings)
    assert mailbox.deliver(now) == [], "waits for the sending window"
    mails = mailbox.deliver(utc("2026-03-17 08:00"))
    assert len(mails) == 1
    mail = to(mails, "alice.okafor")[0]
    assert mail.subject == "Your certificate of attendance: Working Together to Safeguard Children"
    link = link_in(mail.text, "/certificate/")
    page = client_at(settings, engine, utc("2026-03-17 08:05")).get(link)
    assert page.status_code == 200 and "Alice Okafor" in page.text
    entries = session.exec(select(AuditEntry).where(AuditEntry.action == "certificate.sent")).all()
    assert [entry.detail["booking"] for entry in entries] == ["BK-1001"]
    assert len(session.exec(select(OutboxMessage)).all()) == 1
    telegram = telegram_texts(session, settings)["certificate-ready"]
    assert '<a href="http://testserver/certificate/' in telegram


def test_a_no_show_has_no_certificate(world, session, settings, policy):
    people = world.standard()
    mark(
        session, people["alice_booking"], BookingStatus.NO_SHOW, now=OPENS, actor="t", policy=policy
    )
    status = certificate_status(session, people["alice_booking"])
    assert status.state is CertificateState.NOT_ATTENDED
    assert "recorded as no-show" in status.message
    status = certificate_status(session, people["chloe_booking"])
    assert status.state is CertificateState.NOT_MARKED


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}")
def test_the_certificate_prints_on_one_a4_page(people, session, engine, settings):
    from playwright.sync_api import sync_playwright

    finish(session, people["alice_evaluation"])
    html = (
        client_at(settings, engine, utc("2026-03-17 09:00"))
        .get(certificate_url(settings, people["alice_booking"]))
        .text
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=shutil.which("chromium") or CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page()
            page.set_content(html)
            page.emulate_media(media="print")
            assert not page.locator("header.site").is_visible()
            assert not page.locator("footer").is_visible()
            box = page.locator(".sheet").bounding_box()
            pdf = page.pdf(prefer_css_page_size=True, print_background=True)
        finally:
            browser.close()
    pages = re.findall(rb"/Type\s*/Page(?!s)", pdf)
    assert len(pages) == 1
    size = re.search(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", pdf)
    assert size is not None
    width, height = float(size.group(1)), float(size.group(2))
    assert abs(width - 595.3) < 2 and abs(height - 841.9) < 2  # A4 in points
    assert box is not None and box["width"] > 700  # the sheet spans the page, not a narrow column


def test_the_evaluation_invitation_promises_a_certificate_only_for_the_whole_course(
    people, engine, settings, policy
):
    from schedules.tick import tick

    tick(engine, now=END, policy=policy, zone=settings.zone, secret=settings.secret)
    mails = Mailbox(engine, settings).deliver(END + timedelta(minutes=1))
    [alice] = [m for m in to(mails, "alice.okafor") if m.subject.startswith("How was")]
    [chloe] = [m for m in to(mails, "chloe.obrien") if m.subject.startswith("How was")]
    assert alice.subject.endswith("Your evaluation and certificate")
    assert "Thank you for attending" not in alice.text
    assert (
        "Your certificate of attendance comes when you have finished this and the register "
        "shows you attended the whole course." in alice.text
    )
    assert "when you have finished this and the register shows you attended" in alice.html
    assert "certificate" not in chloe.subject, "she attended part of the course"
    assert "certificate" not in chloe.text and "certificate" not in chloe.html
