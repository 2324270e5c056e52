"""A delegate chooses email only (and changes their mind) from their survey link, in headless
Chromium against the app under uvicorn on loopback, with axe-core finding no violations."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select

from surveys import tokens
from surveys.models import (
    AuditEntry,
    InvitationStatus,
    LinkPurpose,
    Person,
    Stage,
    SurveyInvitation,
)
from tests import test_browser_form
from tests.test_browser_form import CHROMIUM, NOW, launch

_served = test_browser_form.served  # the app under uvicorn, as the survey form's tests run it

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"no Chromium at {CHROMIUM} (Debian package 'chromium'): the browser test cannot run",
)
MOBILE = "+447700900123"


def survey_link(session: Session, world: Any, settings: Any) -> tuple[str, int]:
    people = world.standard()
    alice: Person = people["alice"]
    alice.mobile = MOBILE
    booking = people["alice_booking"]
    invitation = SurveyInvitation(
        booking_id=booking.id,
        person_id=alice.id,
        stage=Stage.END,
        opens_at=NOW - timedelta(days=1),
        closes_at=NOW + timedelta(days=13),
        status=InvitationStatus.OPEN,
    )
    session.add_all([alice, invitation])
    session.flush()
    token = tokens.issue(
        session,
        settings.secret,
        LinkPurpose.SURVEY,
        subject=f"invitation:{invitation.id}",
        invitation_id=invitation.id,
        expires_at=invitation.closes_at,
    )
    session.commit()
    assert alice.id is not None
    return token, alice.id


def email_only(engine: Any, person_id: int) -> bool:
    with Session(engine) as check:
        person = check.get(Person, person_id)
        assert person is not None
        return person.sms_opt_out


def no_violations(page: Any) -> None:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    assert results.violations_count == 0, results.generate_report()


def test_a_delegate_chooses_email_only_and_back_from_the_survey_page(
    _served: Any, session: Session, world: Any, engine: Any
) -> None:
    base, settings, _app = _served
    token, alice_id = survey_link(session, world, settings)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 360, "height": 640})
            page.goto(f"{base}/s/{token}")
            no_violations(page)
            page.get_by_role("link", name="Text messages: choose email only").click()
            assert page.locator("h1").inner_text() == "Text messages"
            assert "ending 123" in page.content() and MOBILE not in page.content()
            no_violations(page)
            assert not email_only(engine, alice_id)  # opening the page changed nothing

            page.get_by_role("button", name="Email only, please: no text messages").click()
            assert page.get_by_role("status").inner_text() == "Your choice is saved."
            assert page.get_by_text("You chose email only").is_visible()
            no_violations(page)
            assert email_only(engine, alice_id)

            page.get_by_role("button", name="Texts are fine: send reminders by text again").click()
            assert page.get_by_text("We may send survey reminders").is_visible()
            assert not email_only(engine, alice_id)

            page.get_by_role("link", name="Back to the survey").click()
            assert page.url == f"{base}/s/{token}"
        finally:
            browser.close()
    with Session(engine) as check:
        choices = check.exec(
            select(AuditEntry.detail).where(AuditEntry.action == "sms choice")
        ).all()
    assert [c["email_only"] for c in choices] == [True, False]


def test_a_choice_without_the_pages_form_token_is_refused(
    _served: Any, session: Session, world: Any, engine: Any, tmp_path: Path
) -> None:
    base, settings, _app = _served
    token, alice_id = survey_link(session, world, settings)
    with httpx.Client(base_url=base) as client:
        refused = client.post(f"/s/{token}/texts", data={"choice": "email-only", "csrf": "x"})
        assert refused.status_code == 403
        unknown = client.get("/s/not-a-real-token/texts")
        assert unknown.status_code == 404
    assert not email_only(engine, alice_id)
