"""A trainer marks and closes a register on a 320 px phone, by keyboard alone, from the link in
the register reminder Evalbot emailed; axe-core finds nothing wrong on any page of the way."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select

from surveys.models import Booking, BookingStatus, CourseSession, OutboxMessage
from tests.accessibility import assert_accessible
from tests.conftest import utc
from tests.test_browser_form import CHROMIUM, active, launch, served, tab_to
from tests.test_cancellation import link_in, read_mail
from tests.timeline import Timeline

__all__ = ["served"]  # the fixture, shared with the survey form's browser tests

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"no Chromium at {CHROMIUM} (Debian package 'chromium'): the browser test cannot run",
)
TARIQ = "tariq.aziz@partnership.example"


def fits(page) -> bool:
    return bool(page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"))


def test_a_trainer_closes_the_register_from_the_reminder_on_a_phone(
    served, session: Session, world
):
    base, settings, app = served
    people = world.standard()
    timeline = Timeline(app.state.engine, settings)
    for moment in ("2026-03-02 09:00", "2026-03-16 16:30", "2026-03-17 16:30"):
        timeline.tick(moment)
    mails = [read_mail(path) for path in sorted(Path(settings.mail_dir).glob("*.eml"))]
    (reminder,) = [m for m in mails if TARIQ in m.to and "Register" in m.subject]
    link = base + link_in(reminder.text.replace(base, "http://testserver"), "/register/")
    app.state.clock = lambda: utc("2026-03-17 17:05")

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 320, "height": 568})
            page.goto(link)
            assert page.locator("h1").inner_text() == "Register"
            assert page.locator("script").count() == 0, "the register needs no script"
            assert fits(page), "the register scrolls sideways at 320px"
            assert page.get_by_text("2 of 2 still to mark").is_visible()
            assert_accessible(page)

            # Alice: into her group with Tab, Space for the first mark (Attended).
            tab_to(page, "input:radio:attended")
            page.keyboard.press("Space")
            # Chloé: Tab to her group, the arrow keys to No-show.
            page.keyboard.press("Tab")
            assert active(page) == "input:radio:attended"
            page.keyboard.press("ArrowDown")
            page.keyboard.press("ArrowDown")
            assert active(page) == "input:radio:no-show"
            assert (
                page.get_by_role("group", name="Alice Okafor")
                .get_by_role("radio", name="Attended", exact=True)
                .is_checked()
            )
            assert (
                page.get_by_role("group", name="Chloé O'Brien <Health & Care>")
                .get_by_role("radio", name="No-show")
                .is_checked()
            )

            tab_to(page, "button:submit:Save and close the register")
            outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
            assert outline != "none", "the focused button shows no focus outline"
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert page.locator("h1").inner_text() == "Close the register?"
            assert page.get_by_text("Attended: 1").is_visible()
            assert page.get_by_text("Chloé O'Brien <Health & Care> (BK-1002)").is_visible()
            assert fits(page)
            assert_accessible(page)

            tab_to(page, "button:submit:Yes, close the register")
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert page.locator("h1").inner_text() == "The register is closed"
            assert fits(page)
            assert_accessible(page)

            # Back on the register: closed, corrections still possible.
            tab_to(page, "a:Back to the register")
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert page.get_by_text("The register was closed at 17:05").is_visible()
            assert_accessible(page)
        finally:
            browser.close()

    session.expire_all()
    course_session = session.get(CourseSession, people["session"].id)
    assert course_session.register_closed_at == utc("2026-03-17 17:05")
    assert session.get(Booking, people["alice_booking"].id).status == BookingStatus.ATTENDED
    assert session.get(Booking, people["chloe_booking"].id).status == BookingStatus.NO_SHOW
    # The next tick queues the no-show notices to Chloé and the manager who approved her place.
    assert timeline.tick(utc("2026-03-17 17:06"), deliver=False).no_show_notices == 1
    session.expire_all()
    notices = session.exec(
        select(OutboxMessage.template, OutboxMessage.recipient).where(
            OutboxMessage.template.startswith("no-show")  # type: ignore[attr-defined]
        )
    ).all()
    assert sorted(notices) == [
        ("no-show-delegate", "chloe.obrien@northgate.example"),
        ("no-show-manager", "dev.patel@northgate.example"),
    ]
